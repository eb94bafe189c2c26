package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func noEnv(string) (string, bool) { return "", false }

// consumerLike serves a registry with the consumer's metric names; every
// scrape first commits 100 more rows, so two scrapes differ by 100.
func consumerLike(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	committed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "paystream_ingest_records_committed_total"}, []string{"shard"})
	fresh := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "paystream_ingest_freshness_seconds", Buckets: []float64{1, 2}})
	reg.MustRegister(committed, fresh)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		committed.WithLabelValues("s0").Add(100)
		for range 100 {
			fresh.Observe(1.5)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestReportFromURLOverInterval(t *testing.T) {
	srv := consumerLike(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--interval", "20ms", "--format", "json", srv.URL + "/metrics"}, nil, &out, &errOut, noEnv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	// 100 rows between the two scrapes, all with freshness in (1, 2].
	if r["records_committed"] != 100.0 || r["freshness_observations"] != 100.0 {
		t.Errorf("report %v: want 100 committed and 100 freshness observations in the window", r)
	}
	if p50 := r["freshness_p50_seconds"].(float64); p50 != 1.5 {
		t.Errorf("p50 = %v, want 1.5", p50)
	}
	if eps := r["events_per_second"].(float64); eps <= 0 || eps > 100/0.020 {
		t.Errorf("events/s = %v, want in (0, 5000]", eps)
	}
}

func TestReportFromFileAndStdin(t *testing.T) {
	text := "# TYPE paystream_ingest_records_committed_total counter\npaystream_ingest_records_committed_total{shard=\"a\"} 5\n"
	path := filepath.Join(t.TempDir(), "scrape.prom")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{path, "-"}, strings.NewReader(text), &out, &errOut, noEnv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "2 consumers") || !strings.Contains(out.String(), "rows committed       10\n") {
		t.Errorf("report does not add the two sources up:\n%s", out.String())
	}
}

// --before: what happened between an earlier saved scrape and the last
// commit, as the demo reports a run.
func TestReportSinceBeforeFile(t *testing.T) {
	dir := t.TempDir()
	start := time.Unix(1_700_000_000, 0)
	before := filepath.Join(dir, "start.prom")
	after := filepath.Join(dir, "end.prom")
	write := func(path, text string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(before, "# TYPE paystream_ingest_records_committed_total counter\npaystream_ingest_records_committed_total{shard=\"a\"} 50\n", start)
	// 1000 more rows, the last committed 20 s after the first scrape; the
	// second scrape was taken a minute later still.
	write(after, "# TYPE paystream_ingest_records_committed_total counter\npaystream_ingest_records_committed_total{shard=\"a\"} 1050\n"+
		"# TYPE paystream_ingest_last_commit_timestamp_seconds gauge\npaystream_ingest_last_commit_timestamp_seconds 1700000020\n", start.Add(80*time.Second))
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--before", before, "--format", "json", after}, nil, &out, &errOut, noEnv); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r map[string]any
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r["records_committed"] != 1000.0 || r["events_per_second"] != 50.0 || r["window_seconds"] != 20.0 {
		t.Errorf("report %v: want 1000 committed over 20 s, 50 events/s", r)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "name at least one SOURCE"},
		{[]string{"--format", "xml", "-"}, `--format "xml"`},
		{[]string{"--interval", "1s", "file.prom"}, "needs URLs"},
		{[]string{"--interval", "1s", "--before", "a.prom", "http://x/metrics"}, "not both"},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tt.args, nil, &out, &errOut, noEnv); code != 2 {
			t.Errorf("%v: exit %d, want 2", tt.args, code)
		}
		if !strings.Contains(errOut.String(), tt.want) {
			t.Errorf("%v: stderr %q, want it to mention %q", tt.args, errOut.String(), tt.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"/no/such/file"}, nil, &out, &errOut, noEnv); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}
