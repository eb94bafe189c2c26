package ingest

import (
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/paystream/paystream/internal/quantile"
)

// Metrics are the pipeline's Prometheus metrics. A nil *Metrics records
// nothing, so tests may pass none.
type Metrics struct {
	recordsRead      *prometheus.CounterVec
	recordsRejected  *prometheus.CounterVec
	userRecordsRead  *prometheus.CounterVec
	aggregatesRead   *prometheus.CounterVec
	deaggFailures    *prometheus.CounterVec
	recordsCommitted *prometheus.CounterVec
	recordsDuplicate *prometheus.CounterVec
	throttles        *prometheus.CounterVec
	behindLatest     *prometheus.GaugeVec
	batchRows        prometheus.Histogram
	batchBytes       prometheus.Histogram
	flushDuration    prometheus.Histogram
	freshness        prometheus.Histogram
	batchesDropped   prometheus.Counter
	flushFailures    prometheus.Counter
	readerFailures   prometheus.Counter
	shardStalls      *prometheus.CounterVec
	leaseWriteFails  *prometheus.CounterVec
	lastCommit       prometheus.Gauge
	shardsReading    prometheus.Gauge
	maintRuns        *prometheus.CounterVec
	maintLastOK      prometheus.Gauge
	maintainerHeld   prometheus.Gauge
	committer        *committerMetrics // commit mode single (committer_metrics.go)

	// For the per-minute summary log line (logSummary).
	mu        sync.Mutex
	totals    summaryTotals      // since start
	behindNow map[string]float64 // seconds behind latest, by shard
	last      summaryTotals      // totals at the previous summary
	lastAt    time.Time          // time of the previous summary
	fresh     []quantile.Bucket  // freshness buckets at the previous summary
}

type summaryTotals struct{ read, rejected, committed, duplicate float64 }

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		recordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_read_total", Help: "Kinesis records read, by shard.",
		}, []string{"shard"}),
		userRecordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_user_records_read_total", Help: "User records read (a plain Kinesis record is one, a KPL aggregate holds many), by shard.",
		}, []string{"shard"}),
		aggregatesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_kpl_aggregates_read_total", Help: "Kinesis records read that are KPL aggregates, by shard.",
		}, []string{"shard"}),
		deaggFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_kpl_deaggregation_failures_total", Help: "KPL aggregates that did not de-aggregate (bad MD5, malformed) and went to the dead-letter store whole, by shard.",
		}, []string{"shard"}),
		recordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_rejected_total", Help: "Records that failed decoding or validation and went to the dead-letter store, by shard.",
		}, []string{"shard"}),
		recordsCommitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_committed_total", Help: "Rows committed to the Iceberg table, by shard.",
		}, []string{"shard"}),
		recordsDuplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_duplicate_total", Help: "Records left out of a committed batch because their event_id was already committed within the dedup window or earlier in the batch, by shard.",
		}, []string{"shard"}),
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_getrecords_throttled_total", Help: "GetRecords calls Kinesis throttled, by shard.",
		}, []string{"shard"}),
		behindLatest: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "paystream_ingest_behind_latest_seconds", Help: "How far the shard's reader is behind the tip of the shard (MillisBehindLatest), by shard.",
		}, []string{"shard"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_ingest_batch_rows", Help: "Rows per committed micro-batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		batchBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_ingest_batch_bytes", Help: "Raw record bytes per committed micro-batch.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_ingest_flush_duration_seconds", Help: "Time to flush one micro-batch: dedup, Arrow, dead letters and the Iceberg commit.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		freshness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_ingest_freshness_seconds", Help: "Seconds from a record's arrival in Kinesis to the commit that made it queryable.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300},
		}),
		batchesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_ingest_batches_dropped_total", Help: "Micro-batches dropped because another worker moved a shard's position (fenced zombie); their shards are re-read.",
		}),
		flushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_ingest_flush_failures_total", Help: "Flushes that failed and will be retried.",
		}),
		readerFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_ingest_reader_failures_total", Help: "Shard readers that stopped on an error they could not retry; their leases are given back and the shards read again.",
		}),
		shardStalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_shard_stalled_total",
			Help: "Shards the stall watchdog found held but not read (reason no_reader) or with records waiting through failed commits (reason no_commit) for half the failover time; each was dropped and its lease given back. By shard and reason.",
		}, []string{"shard", "reason"}),
		leaseWriteFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_lease_write_failures_total",
			Help: "Lease-table writes made for the pipeline that failed or timed out, by write: checkpoint, shard_end or release.",
		}, []string{"write"}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_ingest_last_commit_timestamp_seconds", Help: "Unix time of this worker's last successful commit.",
		}),
		shardsReading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_ingest_shards_reading", Help: "Shards this worker is reading.",
		}),
		maintRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_maintenance_runs_total", Help: "Table maintenance runs by this worker (as the maintainer), by result: ok or error.",
		}, []string{"result"}),
		maintLastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_maintenance_last_success_timestamp_seconds", Help: "Unix time of this worker's last successful table maintenance; 0 if it has not run here. Take the max over workers: only the maintainer runs it.",
		}),
		maintainerHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_maintenance_maintainer", Help: "1 while this worker holds the maintainer role (runs table maintenance), else 0.",
		}),
		behindNow: map[string]float64{},
		lastAt:    time.Now(),
	}
	m.committer = newCommitterMetrics(reg)
	// Both results exist from the start, so rate() and alerts see a zero.
	m.maintRuns.WithLabelValues("ok")
	m.maintRuns.WithLabelValues("error")
	for _, w := range []string{leaseWriteCheckpoint, leaseWriteShardEnd, leaseWriteRelease} {
		m.leaseWriteFails.WithLabelValues(w)
	}
	if reg != nil {
		reg.MustRegister(m.recordsRead, m.recordsRejected, m.userRecordsRead, m.aggregatesRead, m.deaggFailures, m.recordsCommitted, m.recordsDuplicate, m.throttles, m.behindLatest,
			m.batchRows, m.batchBytes, m.flushDuration, m.freshness, m.batchesDropped, m.flushFailures, m.readerFailures, m.lastCommit, m.shardsReading,
			m.shardStalls, m.leaseWriteFails,
			m.maintRuns, m.maintLastOK, m.maintainerHeld)
	}
	return m
}

func (m *Metrics) read(shard string, n, rejected int) {
	if m == nil {
		return
	}
	m.recordsRead.WithLabelValues(shard).Add(float64(n))
	if rejected > 0 {
		m.recordsRejected.WithLabelValues(shard).Add(float64(rejected))
	}
	m.mu.Lock()
	m.totals.read += float64(n)
	m.totals.rejected += float64(rejected)
	m.mu.Unlock()
}

// deaggregated counts the user records, KPL aggregates and
// de-aggregation failures of one read, by shard.
func (m *Metrics) deaggregated(shard string, users, aggregates, failures int) {
	if m == nil {
		return
	}
	m.userRecordsRead.WithLabelValues(shard).Add(float64(users))
	if aggregates > 0 {
		m.aggregatesRead.WithLabelValues(shard).Add(float64(aggregates))
	}
	if failures > 0 {
		m.deaggFailures.WithLabelValues(shard).Add(float64(failures))
	}
}

// duplicated counts the records of a committed batch that were left out as
// duplicates, by shard. Call it after the commit landed, with the counts of
// that batch only, so a failed and retried flush does not count twice.
func (m *Metrics) duplicated(perShard map[string]int) {
	if m == nil {
		return
	}
	total := 0
	for shard, n := range perShard {
		if n > 0 {
			m.recordsDuplicate.WithLabelValues(shard).Add(float64(n))
			total += n
		}
	}
	m.mu.Lock()
	m.totals.duplicate += float64(total)
	m.mu.Unlock()
}

func (m *Metrics) throttled(shard string) {
	if m != nil {
		m.throttles.WithLabelValues(shard).Inc()
	}
}

func (m *Metrics) behind(shard string, ms int64) {
	if m != nil && ms >= 0 {
		m.behindLatest.WithLabelValues(shard).Set(float64(ms) / 1000)
		m.mu.Lock()
		m.behindNow[shard] = float64(ms) / 1000
		m.mu.Unlock()
	}
}

func (m *Metrics) forget(shard string) {
	if m != nil {
		m.behindLatest.DeleteLabelValues(shard)
		m.mu.Lock()
		delete(m.behindNow, shard)
		m.mu.Unlock()
	}
}

func (m *Metrics) flushFailed() {
	if m != nil {
		m.flushFailures.Inc()
	}
}

func (m *Metrics) dropped() {
	if m != nil {
		m.batchesDropped.Inc()
	}
}

func (m *Metrics) reading(n int) {
	if m != nil {
		m.shardsReading.Set(float64(n))
	}
}

// committed records one successful flush.
func (m *Metrics) committed(perShard map[string]int, rows, bytes int, at time.Time, arrivals []time.Time, took time.Duration) {
	if m == nil {
		return
	}
	total := 0
	for shard, n := range perShard {
		m.recordsCommitted.WithLabelValues(shard).Add(float64(n))
		total += n
	}
	m.mu.Lock()
	m.totals.committed += float64(total)
	m.mu.Unlock()
	m.batchRows.Observe(float64(rows))
	m.batchBytes.Observe(float64(bytes))
	m.flushDuration.Observe(took.Seconds())
	for _, a := range arrivals {
		m.freshness.Observe(at.Sub(a).Seconds())
	}
	m.lastCommit.Set(float64(at.UnixNano()) / 1e9)
}

// logSummary logs one info line with what happened since the previous call
// (or since NewMetrics): records read, committed, rejected and duplicate,
// committed events per second, freshness p50/p99 of the rows committed in
// the interval, and the worst shard's distance behind the tip. The pipeline
// calls it once a minute.
func (m *Metrics) logSummary(log *slog.Logger, now time.Time) {
	if m == nil || log == nil {
		return
	}
	var d dto.Metric
	_ = m.freshness.Write(&d) // a histogram's Write does not fail
	fresh := bucketsOf(d.GetHistogram())

	m.mu.Lock()
	cur, prev, since, prevFresh := m.totals, m.last, m.lastAt, m.fresh
	m.last, m.lastAt, m.fresh = cur, now, fresh
	worst, shards := 0.0, len(m.behindNow)
	for _, v := range m.behindNow {
		worst = max(worst, v)
	}
	m.mu.Unlock()

	attrs := []any{
		"read", cur.read - prev.read,
		"committed", cur.committed - prev.committed,
		"rejected", cur.rejected - prev.rejected,
		"duplicates", cur.duplicate - prev.duplicate,
	}
	if now.After(since) {
		interval := now.Sub(since)
		attrs = append(attrs, "interval", interval.Round(time.Millisecond).String(),
			"events_per_s", round3((cur.committed-prev.committed)/interval.Seconds()))
	}
	window := quantile.SubBuckets(fresh, prevFresh)
	if n := len(window); n > 0 && window[n-1].Count > 0 {
		p50, _ := quantile.Buckets(0.5, window)
		p99, _ := quantile.Buckets(0.99, window)
		attrs = append(attrs, "freshness_p50_s", round3(p50), "freshness_p99_s", round3(p99))
	}
	attrs = append(attrs, "shards", shards, "max_behind_latest_s", round3(worst))
	log.Info("pipeline summary", attrs...)
}

func bucketsOf(h *dto.Histogram) []quantile.Bucket {
	if h == nil {
		return nil
	}
	out := make([]quantile.Bucket, 0, len(h.Bucket)+1)
	for _, b := range h.Bucket {
		out = append(out, quantile.Bucket{UpperBound: b.GetUpperBound(), Count: float64(b.GetCumulativeCount())})
	}
	return append(out, quantile.Bucket{UpperBound: math.Inf(+1), Count: float64(h.GetSampleCount())})
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func (m *Metrics) readerFailed() {
	if m != nil {
		m.readerFailures.Inc()
	}
}

// maintained records one maintenance run by the maintainer.
func (m *Metrics) maintained(ok bool) {
	if m == nil {
		return
	}
	if !ok {
		m.maintRuns.WithLabelValues("error").Inc()
		return
	}
	m.maintRuns.WithLabelValues("ok").Inc()
	m.maintLastOK.Set(float64(time.Now().UnixNano()) / 1e9)
}

// maintainer records whether this worker holds the maintainer role.
func (m *Metrics) maintainer(held bool) {
	if m == nil {
		return
	}
	v := 0.0
	if held {
		v = 1
	}
	m.maintainerHeld.Set(v)
}

// The lease-table writes counted by leaseWriteFailed.
const (
	leaseWriteCheckpoint = "checkpoint"
	leaseWriteShardEnd   = "shard_end"
	leaseWriteRelease    = "release"
)

// stalled counts one shard the watchdog found stalled, for reason.
func (m *Metrics) stalled(shard string, reason stallReason) {
	if m != nil {
		m.shardStalls.WithLabelValues(shard, string(reason)).Inc()
	}
}

// shardHeld creates the stall counters of a shard this worker now holds at
// zero, so that the first stall shows in increase() and alerts.
func (m *Metrics) shardHeld(shard string) {
	if m != nil {
		m.shardStalls.WithLabelValues(shard, string(stallNoReader))
		m.shardStalls.WithLabelValues(shard, string(stallNoCommit))
	}
}

// leaseWriteFailed counts one failed lease-table write.
func (m *Metrics) leaseWriteFailed(write string) {
	if m != nil {
		m.leaseWriteFails.WithLabelValues(write).Inc()
	}
}
