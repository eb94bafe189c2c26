package scalebench

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/paystream/paystream/pkg/ingest"
)

// Config is one benchmark run, read from the environment by ConfigFromEnv.
type Config struct {
	Workers     []int         // BENCH_SCALE_WORKERS: worker counts, one measurement each ("1 2 4 8")
	Shards      int           // BENCH_SCALE_SHARDS: shards of the stream (16)
	Duration    time.Duration // BENCH_SCALE_SECONDS: how long the producer runs per worker count (60)
	CommitDelay time.Duration // BENCH_SCALE_COMMIT_DELAY: added before every catalog commit (300ms)
	Rate        float64       // BENCH_SCALE_RATE: events per second across all shards (2000)
	Mode        string        // BENCH_SCALE_MODE: commit mode, see configureMode ("worker" or "single")
	// Skip (BENCH_SCALE_SKIP, whole seconds, 0) leaves the producer's first
	// seconds out of the second pair of freshness numbers (the steady
	// state); the first pair always covers every event.
	Skip time.Duration
	Out  string // BENCH_SCALE_OUT: result file; .json writes JSON, anything else Markdown
	// Log (BENCH_SCALE_LOG) is a file for the workers' debug logs, JSON
	// lines with a worker attribute ("" off): the per-batch trace lines
	// "staged batch settled", "committer round" and "batch committed".
	Log string
}

// DefaultConfig is the run make bench-scale makes with no variables set.
func DefaultConfig() Config {
	return Config{
		Workers: []int{1, 2, 4, 8}, Shards: 16, Duration: 60 * time.Second,
		CommitDelay: 300 * time.Millisecond, Rate: 2000, Mode: ModeWorker,
	}
}

// ConfigFromEnv reads the BENCH_SCALE_* variables through getenv (os.Getenv
// in the benchmark); unset ones keep DefaultConfig's values. Errors name
// the variable, the value and what is wanted.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	var err error
	if v := getenv("BENCH_SCALE_WORKERS"); v != "" {
		if c.Workers, err = parseWorkers(v); err != nil {
			return c, err
		}
	}
	if v := getenv("BENCH_SCALE_SHARDS"); v != "" {
		if c.Shards, err = positiveInt("BENCH_SCALE_SHARDS", v); err != nil {
			return c, err
		}
	}
	if v := getenv("BENCH_SCALE_SECONDS"); v != "" {
		n, err := positiveInt("BENCH_SCALE_SECONDS", v)
		if err != nil {
			return c, err
		}
		c.Duration = time.Duration(n) * time.Second
	}
	if v := getenv("BENCH_SCALE_COMMIT_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("BENCH_SCALE_COMMIT_DELAY=%q: want a duration of 0 or more, such as 300ms", v)
		}
		c.CommitDelay = d
	}
	if v := getenv("BENCH_SCALE_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			return c, fmt.Errorf("BENCH_SCALE_RATE=%q: want events per second above 0, such as 2000", v)
		}
		c.Rate = f
	}
	if v := getenv("BENCH_SCALE_MODE"); v != "" {
		c.Mode = v
	}
	if err := configureMode(&ingest.WorkerConfig{}, c.Mode); err != nil {
		return c, err
	}
	if v := getenv("BENCH_SCALE_SKIP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || time.Duration(n)*time.Second >= c.Duration {
			return c, fmt.Errorf("BENCH_SCALE_SKIP=%q: want whole seconds from 0 to less than BENCH_SCALE_SECONDS (%d), such as 15", v, int(c.Duration.Seconds()))
		}
		c.Skip = time.Duration(n) * time.Second
	}
	c.Out = getenv("BENCH_SCALE_OUT")
	c.Log = getenv("BENCH_SCALE_LOG")
	return c, nil
}

// parseWorkers reads a list of worker counts separated by spaces or commas.
func parseWorkers(v string) ([]int, error) {
	var out []int
	for f := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ' ' || r == ',' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("BENCH_SCALE_WORKERS=%q: %q is not a worker count; want whole numbers of at least 1, such as \"1 2 4 8\"", v, f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("BENCH_SCALE_WORKERS=%q: no worker counts; want whole numbers of at least 1, such as \"1 2 4 8\"", v)
	}
	return out, nil
}

func positiveInt(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a whole number of at least 1", name, v)
	}
	return n, nil
}
