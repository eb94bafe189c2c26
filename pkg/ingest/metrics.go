package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus metrics. A nil *Metrics records
// nothing, so tests may pass none.
type Metrics struct {
	recordsRead      *prometheus.CounterVec
	recordsRejected  *prometheus.CounterVec
	recordsCommitted *prometheus.CounterVec
	throttles        *prometheus.CounterVec
	behindLatest     *prometheus.GaugeVec
	batchRows        prometheus.Histogram
	batchBytes       prometheus.Histogram
	flushDuration    prometheus.Histogram
	freshness        prometheus.Histogram
	batchesDropped   prometheus.Counter
	flushFailures    prometheus.Counter
	lastCommit       prometheus.Gauge
	shardsReading    prometheus.Gauge
}

// NewMetrics registers the pipeline metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		recordsRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_read_total", Help: "Kinesis records read, by shard.",
		}, []string{"shard"}),
		recordsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_rejected_total", Help: "Records that failed decoding or validation and went to the dead-letter store, by shard.",
		}, []string{"shard"}),
		recordsCommitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_ingest_records_committed_total", Help: "Rows committed to the Iceberg table, by shard.",
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
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_ingest_last_commit_timestamp_seconds", Help: "Unix time of this worker's last successful commit.",
		}),
		shardsReading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_ingest_shards_reading", Help: "Shards this worker is reading.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.recordsRead, m.recordsRejected, m.recordsCommitted, m.throttles, m.behindLatest,
			m.batchRows, m.batchBytes, m.flushDuration, m.freshness, m.batchesDropped, m.flushFailures, m.lastCommit, m.shardsReading)
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
}

func (m *Metrics) throttled(shard string) {
	if m != nil {
		m.throttles.WithLabelValues(shard).Inc()
	}
}

func (m *Metrics) behind(shard string, ms int64) {
	if m != nil && ms >= 0 {
		m.behindLatest.WithLabelValues(shard).Set(float64(ms) / 1000)
	}
}

func (m *Metrics) forget(shard string) {
	if m != nil {
		m.behindLatest.DeleteLabelValues(shard)
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
	for shard, n := range perShard {
		m.recordsCommitted.WithLabelValues(shard).Add(float64(n))
	}
	m.batchRows.Observe(float64(rows))
	m.batchBytes.Observe(float64(bytes))
	m.flushDuration.Observe(took.Seconds())
	for _, a := range arrivals {
		m.freshness.Observe(at.Sub(a).Seconds())
	}
	m.lastCommit.Set(float64(at.UnixNano()) / 1e9)
}
