package scalebench

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigFromEnvDefaults(t *testing.T) {
	got, err := ConfigFromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, DefaultConfig()) {
		t.Errorf("ConfigFromEnv() = %+v, want %+v", got, DefaultConfig())
	}
}

func TestConfigFromEnvReadsEveryVariable(t *testing.T) {
	got, err := ConfigFromEnv(env(map[string]string{
		"BENCH_SCALE_WORKERS": "2, 3 5", "BENCH_SCALE_SHARDS": "8", "BENCH_SCALE_SECONDS": "30",
		"BENCH_SCALE_COMMIT_DELAY": "1s", "BENCH_SCALE_RATE": "500", "BENCH_SCALE_MODE": "worker", "BENCH_SCALE_OUT": "out.md",
		"BENCH_SCALE_SKIP": "10", "BENCH_SCALE_LOG": "trace.jsonl",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Workers: []int{2, 3, 5}, Shards: 8, Duration: 30 * time.Second, CommitDelay: time.Second, Rate: 500, Mode: "worker", Out: "out.md", Skip: 10 * time.Second, Log: "trace.jsonl"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConfigFromEnv() = %+v, want %+v", got, want)
	}
}

func TestConfigFromEnvRejectsBadValues(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"BENCH_SCALE_WORKERS", "1 two", `BENCH_SCALE_WORKERS="1 two": "two" is not a worker count`},
		{"BENCH_SCALE_WORKERS", "0", "at least 1"},
		{"BENCH_SCALE_WORKERS", " , ", "no worker counts"},
		{"BENCH_SCALE_SHARDS", "0", `BENCH_SCALE_SHARDS="0": want a whole number of at least 1`},
		{"BENCH_SCALE_SECONDS", "1m", `BENCH_SCALE_SECONDS="1m": want a whole number`},
		{"BENCH_SCALE_COMMIT_DELAY", "300", `BENCH_SCALE_COMMIT_DELAY="300": want a duration`},
		{"BENCH_SCALE_COMMIT_DELAY", "-1s", "want a duration of 0 or more"},
		{"BENCH_SCALE_RATE", "0", `BENCH_SCALE_RATE="0": want events per second above 0`},
		{"BENCH_SCALE_MODE", "both", `BENCH_SCALE_MODE="both": unknown commit mode`},
		{"BENCH_SCALE_SKIP", "-1", `BENCH_SCALE_SKIP="-1": want whole seconds from 0 to less than BENCH_SCALE_SECONDS (60)`},
		{"BENCH_SCALE_SKIP", "60", "less than BENCH_SCALE_SECONDS (60)"},
		{"BENCH_SCALE_SKIP", "5s", `BENCH_SCALE_SKIP="5s": want whole seconds`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := ConfigFromEnv(env(map[string]string{tt.key: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
