package scalebench

import (
	"strings"
	"testing"

	"github.com/paystream/paystream/pkg/ingest"
)

func TestConfigureMode(t *testing.T) {
	cfg := ingest.DefaultWorkerConfig()
	if err := configureMode(&cfg, ModeWorker); err != nil {
		t.Errorf("configureMode(%q) = %v, want nil", ModeWorker, err)
	}
	for _, mode := range []string{"single", "", "Worker"} {
		err := configureMode(&cfg, mode)
		if err == nil || !strings.Contains(err.Error(), "unknown commit mode") || !strings.Contains(err.Error(), `"worker"`) {
			t.Errorf("configureMode(%q) = %v, want an unknown commit mode error naming %q", mode, err, ModeWorker)
		}
	}
	if err := configureMode(nil, ModeWorker); err == nil {
		t.Error("configureMode(nil) = nil, want an error")
	}
}
