package ingest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsRecordCountsByShard(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.read("shard-0", 10, 2)
	m.read("shard-1", 5, 0)
	m.read("shard-0", 3, 1)
	at := time.Unix(1_700_000_000, 500_000_000)
	m.committed(map[string]int{"shard-0": 8, "shard-1": 4}, 12, 4096, at, nil, 80*time.Millisecond)
	m.duplicated(map[string]int{"shard-0": 2, "shard-1": 1, "shard-2": 0})

	want := `
# HELP paystream_ingest_records_read_total Kinesis records read, by shard.
# TYPE paystream_ingest_records_read_total counter
paystream_ingest_records_read_total{shard="shard-0"} 13
paystream_ingest_records_read_total{shard="shard-1"} 5
# HELP paystream_ingest_records_rejected_total Records that failed decoding or validation and went to the dead-letter store, by shard.
# TYPE paystream_ingest_records_rejected_total counter
paystream_ingest_records_rejected_total{shard="shard-0"} 3
# HELP paystream_ingest_records_committed_total Rows committed to the Iceberg table, by shard.
# TYPE paystream_ingest_records_committed_total counter
paystream_ingest_records_committed_total{shard="shard-0"} 8
paystream_ingest_records_committed_total{shard="shard-1"} 4
# HELP paystream_ingest_records_duplicate_total Records left out of a committed batch because their event_id was already committed within the dedup window or earlier in the batch, by shard.
# TYPE paystream_ingest_records_duplicate_total counter
paystream_ingest_records_duplicate_total{shard="shard-0"} 2
paystream_ingest_records_duplicate_total{shard="shard-1"} 1
# HELP paystream_ingest_last_commit_timestamp_seconds Unix time of this worker's last successful commit.
# TYPE paystream_ingest_last_commit_timestamp_seconds gauge
paystream_ingest_last_commit_timestamp_seconds 1.7000000005e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"paystream_ingest_records_read_total", "paystream_ingest_records_rejected_total",
		"paystream_ingest_records_committed_total", "paystream_ingest_records_duplicate_total",
		"paystream_ingest_last_commit_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

func TestMetricsFreshnessIsArrivalToCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	at := time.Unix(1_700_000_000, 0)
	arrivals := []time.Time{
		at.Add(-200 * time.Millisecond),  // le 0.25
		at.Add(-1200 * time.Millisecond), // le 1.5
		at.Add(-40 * time.Second),        // le 60
	}
	m.committed(map[string]int{"s": 3}, 3, 300, at, arrivals, 100*time.Millisecond)
	want := `
# HELP paystream_ingest_freshness_seconds Seconds from a record's arrival in Kinesis to the commit that made it queryable.
# TYPE paystream_ingest_freshness_seconds histogram
paystream_ingest_freshness_seconds_bucket{le="0.1"} 0
paystream_ingest_freshness_seconds_bucket{le="0.25"} 1
paystream_ingest_freshness_seconds_bucket{le="0.5"} 1
paystream_ingest_freshness_seconds_bucket{le="1"} 1
paystream_ingest_freshness_seconds_bucket{le="1.5"} 2
paystream_ingest_freshness_seconds_bucket{le="2"} 2
paystream_ingest_freshness_seconds_bucket{le="3"} 2
paystream_ingest_freshness_seconds_bucket{le="5"} 2
paystream_ingest_freshness_seconds_bucket{le="10"} 2
paystream_ingest_freshness_seconds_bucket{le="20"} 2
paystream_ingest_freshness_seconds_bucket{le="30"} 2
paystream_ingest_freshness_seconds_bucket{le="60"} 3
paystream_ingest_freshness_seconds_bucket{le="120"} 3
paystream_ingest_freshness_seconds_bucket{le="300"} 3
paystream_ingest_freshness_seconds_bucket{le="+Inf"} 3
paystream_ingest_freshness_seconds_sum 41.4
paystream_ingest_freshness_seconds_count 3
# HELP paystream_ingest_batch_rows Rows per committed micro-batch.
# TYPE paystream_ingest_batch_rows histogram
paystream_ingest_batch_rows_bucket{le="1"} 0
paystream_ingest_batch_rows_bucket{le="4"} 1
paystream_ingest_batch_rows_bucket{le="16"} 1
paystream_ingest_batch_rows_bucket{le="64"} 1
paystream_ingest_batch_rows_bucket{le="256"} 1
paystream_ingest_batch_rows_bucket{le="1024"} 1
paystream_ingest_batch_rows_bucket{le="4096"} 1
paystream_ingest_batch_rows_bucket{le="16384"} 1
paystream_ingest_batch_rows_bucket{le="65536"} 1
paystream_ingest_batch_rows_bucket{le="262144"} 1
paystream_ingest_batch_rows_bucket{le="+Inf"} 1
paystream_ingest_batch_rows_sum 3
paystream_ingest_batch_rows_count 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"paystream_ingest_freshness_seconds", "paystream_ingest_batch_rows"); err != nil {
		t.Error(err)
	}
}

func TestMetricsBehindLatestPerShardAndForget(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.behind("shard-0", 61_500)
	m.behind("shard-1", 0)
	m.behind("shard-1", -1) // unknown: keeps the last value
	if got := testutil.ToFloat64(m.behindLatest.WithLabelValues("shard-0")); got != 61.5 {
		t.Errorf("behind latest of shard-0 = %v s, want 61.5", got)
	}
	if n := testutil.CollectAndCount(m.behindLatest); n != 2 {
		t.Errorf("%d behind-latest series, want 2", n)
	}
	m.forget("shard-0")
	if n := testutil.CollectAndCount(m.behindLatest); n != 1 {
		t.Errorf("%d behind-latest series after forget, want 1 (a moved shard must not keep alerting)", n)
	}
	m.reading(3)
	m.throttled("shard-1")
	m.dropped()
	m.flushFailed()
	for c, want := range map[prometheus.Collector]float64{
		m.shardsReading: 3, m.throttles.WithLabelValues("shard-1"): 1, m.batchesDropped: 1, m.flushFailures: 1,
	} {
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%v = %v, want %v", c, got, want)
		}
	}
}

// TestNilMetricsRecordNothing fails by panicking if a recorder dereferences a
// nil *Metrics.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.read("s", 1, 1)
	m.duplicated(map[string]int{"s": 1})
	m.throttled("s")
	m.behind("s", 1)
	m.forget("s")
	m.flushFailed()
	m.dropped()
	m.reading(1)
	m.committed(map[string]int{"s": 1}, 1, 1, time.Now(), []time.Time{time.Now()}, time.Second)
	var buf bytes.Buffer
	m.logSummary(slog.New(slog.NewTextHandler(&buf, nil)), time.Now())
	if buf.Len() != 0 {
		t.Errorf("nil Metrics logged a summary: %s", buf.String())
	}
}

func TestMetricsSummaryLine(t *testing.T) {
	m := NewMetrics(nil) // the summary works without a registry too
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	t0 := time.Unix(1_700_000_000, 0)
	m.read("s0", 100, 0)
	m.committed(map[string]int{"s0": 100}, 100, 1000, t0, nil, time.Millisecond)
	m.logSummary(log, t0) // baseline: what happened before t0 is reported once, then forgotten
	buf.Reset()

	// One minute: 600 records read, 20 rejected, 30 duplicates, 550
	// committed, all 1.2 s fresh; shard s1 is 2.5 s behind.
	m.read("s0", 400, 20)
	m.read("s1", 200, 0)
	arrivals := make([]time.Time, 550)
	at := t0.Add(time.Minute)
	for i := range arrivals {
		arrivals[i] = at.Add(-1200 * time.Millisecond)
	}
	m.committed(map[string]int{"s0": 360, "s1": 190}, 550, 55_000, at, arrivals, 50*time.Millisecond)
	m.duplicated(map[string]int{"s0": 20, "s1": 10})
	m.behind("s0", 100)
	m.behind("s1", 2500)
	m.logSummary(log, at)

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("summary is not one JSON line: %v\n%s", err, buf.String())
	}
	// Freshness buckets (1, 1.5]: p50 = 1 + 0.5*0.5, p99 = 1 + 0.5*0.99.
	want := map[string]any{
		"level": "INFO", "msg": "pipeline summary", "interval": "1m0s",
		"read": 600.0, "committed": 550.0, "rejected": 20.0, "duplicates": 30.0,
		"events_per_s": 9.167, "freshness_p50_s": 1.25, "freshness_p99_s": 1.495,
		"shards": 2.0, "max_behind_latest_s": 2.5,
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("summary %s = %v, want %v\nline: %s", k, line[k], v, buf.String())
		}
	}

	// A quiet minute: zeros, and no freshness quantiles (nothing committed).
	buf.Reset()
	m.logSummary(log, at.Add(time.Minute))
	line = nil
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line["committed"] != 0.0 || line["events_per_s"] != 0.0 {
		t.Errorf("quiet minute: %s", buf.String())
	}
	if _, ok := line["freshness_p99_s"]; ok {
		t.Errorf("quiet minute reports a freshness quantile: %s", buf.String())
	}
}
