package promreport_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/promreport"
	"github.com/paystream/paystream/internal/quantile"
)

func inf() float64 { return math.Inf(+1) }

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-9 || a == b
}

// A client_golang histogram gathered in process gives the quantile the
// same buckets would give in Prometheus.
func TestQuantileOfGatheredHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Buckets: []float64{1, 2, 4}})
	reg.MustRegister(h)
	for range 50 {
		h.Observe(0.5) // bucket le=1
	}
	for range 50 {
		h.Observe(3) // bucket le=4
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	b := promreport.FromFamilies(fams).Histogram("x_seconds")
	want := []quantile.Bucket{{UpperBound: 1, Count: 50}, {UpperBound: 2, Count: 50}, {UpperBound: 4, Count: 100}, {UpperBound: inf(), Count: 100}}
	if len(b) != len(want) {
		t.Fatalf("buckets %v, want %v", b, want)
	}
	for i := range want {
		if b[i] != want[i] {
			t.Fatalf("buckets %v, want %v", b, want)
		}
	}
	p99, _ := quantile.Buckets(0.99, b)
	if !same(p99, 2+2*(49.0/50)) {
		t.Errorf("p99 = %v, want 3.96", p99)
	}
}

func load(t *testing.T) promreport.Snapshot {
	t.Helper()
	f, err := os.Open("testdata/consumer.prom")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	s, err := promreport.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildFromOneScrape(t *testing.T) {
	r := promreport.Build(promreport.Snapshot{}, load(t), 0)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"read", r.Read, 1000},
		{"committed", r.Committed, 940},
		{"rejected", r.Rejected, 10},
		{"rejected ratio", r.RejectedRatio, 0.01},
		{"duplicates (dedup fallback)", r.Duplicates, 50},
		{"dead letters", r.DeadLetters, 10},
		{"commits", r.Commits, 20},
		{"conflicts", r.Conflicts, 1},
		{"events/s from process start to last commit", r.EventsPerSecond, 940.0 / 4},
		{"freshness count", r.FreshnessCount, 940},
		{"freshness p50", r.FreshnessP50, 1},
		{"freshness p99", r.FreshnessP99, 1 + 460.6/465},
		{"max behind latest", r.MaxBehindLatest, 2.25},
	}
	for _, c := range checks {
		if !same(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.Workers != 1 {
		t.Errorf("workers = %d, want 1", r.Workers)
	}
}

func TestBuildPrefersPipelineDuplicateCounter(t *testing.T) {
	extra := `# TYPE paystream_ingest_records_duplicate_total counter
paystream_ingest_records_duplicate_total{shard="a"} 7
`
	s, err := promreport.Parse(strings.NewReader(extra))
	if err != nil {
		t.Fatal(err)
	}
	r := promreport.Build(promreport.Snapshot{}, promreport.Merge(load(t), s), 0)
	if r.Duplicates != 7 {
		t.Errorf("duplicates = %v, want 7 from paystream_ingest_records_duplicate_total", r.Duplicates)
	}
}

func TestBuildOverAWindowAndMerge(t *testing.T) {
	before := load(t)
	// Two workers now: the same scrape twice stands for two tasks.
	after := promreport.Merge(load(t), load(t))
	r := promreport.Build(before, after, 10*time.Second)
	if r.Workers != 2 {
		t.Errorf("workers = %d, want 2", r.Workers)
	}
	if r.Committed != 940 || r.EventsPerSecond != 94 {
		t.Errorf("committed %v at %v/s, want 940 at 94/s", r.Committed, r.EventsPerSecond)
	}
	if r.FreshnessCount != 940 || !same(r.FreshnessP50, 1) {
		t.Errorf("freshness over the window: %v observations, p50 %v; want 940, 1", r.FreshnessCount, r.FreshnessP50)
	}
}

func TestBuildEmpty(t *testing.T) {
	r := promreport.Build(promreport.Snapshot{}, promreport.Snapshot{}, 0)
	for name, v := range map[string]float64{"events/s": r.EventsPerSecond, "p50": r.FreshnessP50, "p99": r.FreshnessP99, "ratio": r.RejectedRatio, "behind": r.MaxBehindLatest} {
		if !math.IsNaN(v) {
			t.Errorf("%s = %v with no metrics, want NaN", name, v)
		}
	}
	var out bytes.Buffer
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("JSON report does not parse: %v\n%s", err, out.String())
	}
	if v, ok := m["freshness_p99_seconds"]; !ok || v != nil {
		t.Errorf("freshness_p99_seconds = %v (present %v), want null", v, ok)
	}
}

func TestWriteText(t *testing.T) {
	var out bytes.Buffer
	if err := promreport.Build(promreport.Snapshot{}, load(t), 0).WriteText(&out); err != nil {
		t.Fatal(err)
	}
	want := `paystream consumer metrics (1 consumer, since start)
  events/s committed   235.0 (average from start to the last commit)
  records read         1,000
  rows committed       940
  rejected             10 (1.00% of read; 10 in the dead-letter store)
  duplicates dropped   50
  freshness            p50 1.00 s  p99 1.99 s  (940 events; Kinesis arrival to commit)
  commits              20 (1 conflicts)
  behind latest now    2.25 s (worst shard)
`
	if out.String() != want {
		t.Errorf("text report:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := promreport.Parse(strings.NewReader("not a metric line {\n")); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestHistogramSum(t *testing.T) {
	s := load(t)
	if got := s.HistogramSum("paystream_ingest_freshness_seconds"); got != 1100 {
		t.Errorf("HistogramSum of the freshness histogram = %v, want 1100 (its _sum)", got)
	}
	if got := promreport.Merge(s, s).HistogramSum("paystream_ingest_freshness_seconds"); got != 2200 {
		t.Errorf("HistogramSum over two merged scrapes = %v, want 2200", got)
	}
	if got := s.HistogramSum("paystream_sink_commits_total"); got != 0 {
		t.Errorf("HistogramSum of a counter = %v, want 0", got)
	}
	if got := s.HistogramSum("absent"); got != 0 {
		t.Errorf("HistogramSum of an absent metric = %v, want 0", got)
	}
}
