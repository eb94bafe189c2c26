package scalebench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/paystream/paystream/internal/testenv"
)

// TestScale is make bench-scale: see the package doc. It runs only with
// BENCH_SCALE=1.
func TestScale(t *testing.T) {
	if os.Getenv("BENCH_SCALE") == "" {
		t.Skip("the scale benchmark runs several workers for minutes; set BENCH_SCALE=1 (make bench-scale)")
	}
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Moto(t) // DynamoDB for the leases
	awsCfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load before: %s", loadAvg())
	var results []Result
	for _, w := range cfg.Workers {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			m := measure(t, awsCfg, cfg, w)
			results = append(results, Summarize(m))
			t.Logf("workers=%d done, load %s", w, loadAvg())
		})
	}
	fmt.Fprintf(os.Stdout, "\nmode %s, %d shards, %.0f events/s, %s per worker count, commit delay %s, load %s\n\n",
		cfg.Mode, cfg.Shards, cfg.Rate, cfg.Duration, cfg.CommitDelay, loadAvg())
	WriteText(os.Stdout, results)
	writeOut(t, cfg, results)
	for _, r := range results {
		if !r.Exact() {
			t.Errorf("workers=%d: the table does not hold every produced event exactly once: %+v", r.Workers, r.Tally)
		}
	}
}

func writeOut(t *testing.T, cfg Config, rs []Result) {
	if cfg.Out == "" {
		return
	}
	f, err := os.Create(cfg.Out)
	if err != nil {
		t.Fatalf("BENCH_SCALE_OUT: %v", err)
	}
	defer func() { _ = f.Close() }()
	if strings.EqualFold(filepath.Ext(cfg.Out), ".json") {
		err = WriteJSON(f, cfg, rs)
	} else {
		WriteMarkdown(f, cfg, rs)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatalf("BENCH_SCALE_OUT: %v", err)
	}
}

// loadAvg is the machine's 1, 5 and 15 minute load averages, as uptime
// prints them.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
