//go:build linux

package soak_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/soak"
)

// TestSoak is make soak: see the package doc. It runs only with SOAK=1.
func TestSoak(t *testing.T) {
	if os.Getenv("SOAK") == "" {
		t.Skip("the soak runs the real binaries for many minutes; set SOAK=1 (make soak)")
	}
	cfg, err := configFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Limit)
	defer cancel()
	r, err := newRun(ctx, t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.soak(ctx)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := append(soak.Evaluate(res.slices, res.maxMetadata, soak.DefaultLimits), res.exact)
	soak.WriteVerdicts(os.Stdout, verdicts)
	if soak.Failed(verdicts) {
		t.Fail()
	}
}

type config struct {
	Commits    int
	Glue       bool
	CommitMode string // the consumers' --commit-mode; empty: their default
	Rate       float64
	Limit      time.Duration
	Out        string
}

func configFromEnv() (config, error) {
	c := config{Commits: 20000, Rate: 200, Limit: 4 * time.Hour, Glue: os.Getenv("SOAK_CATALOG") == "glue"}
	if v := os.Getenv("SOAK_COMMITS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			return c, errorf("SOAK_COMMITS=%q: want a whole number of at least 10", v)
		}
		c.Commits = n
	}
	if v := os.Getenv("SOAK_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return c, errorf("SOAK_RATE=%q: want records per second above 0", v)
		}
		c.Rate = f
	}
	if v := os.Getenv("SOAK_CATALOG"); v != "" && v != "glue" && v != "sqlite" {
		return c, errorf("SOAK_CATALOG=%q: want sqlite or glue", v)
	}
	switch v := os.Getenv("SOAK_COMMIT_MODE"); v {
	case "", "worker", "single":
		c.CommitMode = v
	default:
		return c, errorf("SOAK_COMMIT_MODE=%q: want worker (every consumer commits its own batches) or single (one committer per table)", v)
	}
	c.Out = os.Getenv("SOAK_OUT")
	if c.Out == "" {
		c.Out = filepath.Join(os.TempDir(), "paystream-soak-"+time.Now().Format("20060102-150405"))
	}
	return c, nil
}

func TestConfigFromEnvRejectsBadValues(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"SOAK_COMMITS", "lots", "SOAK_COMMITS=\"lots\": want a whole number of at least 10"},
		{"SOAK_COMMITS", "5", "at least 10"},
		{"SOAK_COMMIT_MODE", "both", `SOAK_COMMIT_MODE="both": want worker`},
		{"SOAK_RATE", "-1", "SOAK_RATE=\"-1\": want records per second above 0"},
		{"SOAK_CATALOG", "rest", "SOAK_CATALOG=\"rest\": want sqlite or glue"},
	}
	for _, tc := range tests {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.key, tc.value)
			_, err := configFromEnv()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("configFromEnv() error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigFromEnvDefaults(t *testing.T) {
	for _, k := range []string{"SOAK_COMMITS", "SOAK_RATE", "SOAK_CATALOG", "SOAK_COMMIT_MODE"} {
		t.Setenv(k, "")
	}
	c, err := configFromEnv()
	if err != nil || c.Commits != 20000 || c.Rate != 200 || c.Glue || c.CommitMode != "" {
		t.Fatalf("configFromEnv() = %+v, %v; want 20000 commits at 200/s on SQLite", c, err)
	}
}
