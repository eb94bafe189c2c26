package flagenv

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *int, *time.Duration, *string) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("flush-rows", 10, "rows per flush")
	d := fs.Duration("flush-interval", time.Second, "time per flush")
	s := fs.String("stream", "", "stream name")
	return fs, n, d, s
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantRows int
		wantStr  string
	}{
		{"default", nil, nil, 10, ""},
		{"env", nil, map[string]string{"PAYSTREAM_FLUSH_ROWS": "7", "PAYSTREAM_STREAM": "s"}, 7, "s"},
		{"flag wins", []string{"--flush-rows", "3"}, map[string]string{"PAYSTREAM_FLUSH_ROWS": "7"}, 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, n, _, s := newSet()
			if err := Parse(fs, tt.args, env(tt.env)); err != nil {
				t.Fatal(err)
			}
			if *n != tt.wantRows || *s != tt.wantStr {
				t.Fatalf("got rows=%d stream=%q, want %d %q", *n, *s, tt.wantRows, tt.wantStr)
			}
		})
	}
}

func TestParseBadEnvNamesVariable(t *testing.T) {
	fs, _, _, _ := newSet()
	err := Parse(fs, nil, env(map[string]string{"PAYSTREAM_FLUSH_INTERVAL": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "PAYSTREAM_FLUSH_INTERVAL") || !strings.Contains(err.Error(), "--flush-interval") {
		t.Fatalf("want error naming the variable and flag, got %v", err)
	}
}

func TestUsageListsEnv(t *testing.T) {
	fs, _, _, _ := newSet()
	var b bytes.Buffer
	Usage(fs, &b, "usage: t")
	for _, want := range []string{"--flush-rows", "PAYSTREAM_FLUSH_ROWS", "PAYSTREAM_STREAM", "default 1s", "usage: t"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	if got := Names(fs); strings.Join(got, ",") != "PAYSTREAM_FLUSH_INTERVAL,PAYSTREAM_FLUSH_ROWS,PAYSTREAM_STREAM" {
		t.Errorf("Names = %v", got)
	}
}

func TestUsageEnvNames(t *testing.T) {
	fs, _, _, _ := newSet()
	var b bytes.Buffer
	Usage(fs, &b, "")
	got := strings.Join(UsageEnvNames(b.String()), ",")
	if got != "PAYSTREAM_FLUSH_INTERVAL,PAYSTREAM_FLUSH_ROWS,PAYSTREAM_STREAM" {
		t.Fatalf("UsageEnvNames = %s", got)
	}
}

func TestUndocumented(t *testing.T) {
	fs, _, _, _ := newSet()
	var b bytes.Buffer
	Usage(fs, &b, "")
	doc := []byte("| `--flush-rows` | `PAYSTREAM_FLUSH_ROWS` |\n| `--stream` | `PAYSTREAM_STREAM` |\n| `--flush-interval` | PAYSTREAM_FLUSH_INTERVAL |")
	got := strings.Join(Undocumented(doc, b.String()), ";")
	if got != "--flush-interval (PAYSTREAM_FLUSH_INTERVAL)" {
		t.Fatalf("Undocumented = %q", got)
	}
}
