package scalebench

import (
	"fmt"

	"github.com/paystream/paystream/pkg/ingest"
)

// ModeWorker is the commit mode in which every worker commits its own
// batches, each flush.
const ModeWorker = "worker"

// configureMode sets how the workers of a run commit. It is the only
// mode-dependent code of the benchmark. This build knows only ModeWorker,
// which needs no setting: it is what a WorkerConfig does by default.
func configureMode(cfg *ingest.WorkerConfig, mode string) error {
	if cfg == nil {
		return fmt.Errorf("configure commit mode %q: no worker config", mode)
	}
	switch mode {
	case ModeWorker:
		return nil
	default:
		return fmt.Errorf("BENCH_SCALE_MODE=%q: unknown commit mode; this build supports only %q (every worker commits its own batches)", mode, ModeWorker)
	}
}
