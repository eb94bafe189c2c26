package scalebench

import (
	"strings"
	"testing"

	"github.com/paystream/paystream/pkg/ingest"
)

func TestConfigureMode(t *testing.T) {
	for _, mode := range []string{ModeWorker, ModeSingle} {
		cfg := ingest.DefaultWorkerConfig()
		if err := configureMode(&cfg, mode); err != nil || cfg.CommitMode != mode {
			t.Errorf("configureMode(%q) = %v, commit mode %q; want nil and %q", mode, err, cfg.CommitMode, mode)
		}
	}
	cfg := ingest.DefaultWorkerConfig()
	for _, mode := range []string{"both", "", "Worker"} {
		err := configureMode(&cfg, mode)
		if err == nil || !strings.Contains(err.Error(), "unknown commit mode") || !strings.Contains(err.Error(), `"worker"`) || !strings.Contains(err.Error(), `"single"`) {
			t.Errorf("configureMode(%q) = %v, want an unknown commit mode error naming %q", mode, err, ModeWorker)
		}
	}
	if err := configureMode(nil, ModeWorker); err == nil {
		t.Error("configureMode(nil) = nil, want an error")
	}
}
