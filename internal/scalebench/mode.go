package scalebench

import (
	"fmt"

	"github.com/paystream/paystream/pkg/ingest"
)

// The commit modes a run can measure (BENCH_SCALE_MODE).
const (
	// ModeWorker: every worker commits its own batches, each flush.
	ModeWorker = ingest.CommitPerWorker
	// ModeSingle: workers stage their batches; one committer per table
	// commits them all in one snapshot per interval.
	ModeSingle = ingest.CommitSingle
)

// configureMode sets how the workers of a run commit. It is the only
// mode-dependent code of the benchmark.
func configureMode(cfg *ingest.WorkerConfig, mode string) error {
	if cfg == nil {
		return fmt.Errorf("configure commit mode %q: no worker config", mode)
	}
	switch mode {
	case ModeWorker, ModeSingle:
		cfg.CommitMode = mode
		return nil
	default:
		return fmt.Errorf("BENCH_SCALE_MODE=%q: unknown commit mode; want %q (every worker commits its own batches) or %q (one committer per table)", mode, ModeWorker, ModeSingle)
	}
}
