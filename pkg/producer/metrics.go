package producer

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the producer's Prometheus series. They are registered on the
// Registerer from Config; with none they are kept but exported nowhere.
type metrics struct {
	sentVec     *prometheus.CounterVec
	kinesisSent prometheus.Counter
	failed      prometheus.Counter
	retried     prometheus.Counter
	refreshes   prometheus.Counter
	misrouted   prometheus.Counter
	duration    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sentVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_producer_records_sent_total",
			Help: "Records acknowledged by Kinesis (or written to --output), by kind: valid, duplicate, invalid; with --aggregate, user records.",
		}, []string{"kind"}),
		kinesisSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_producer_kinesis_records_sent_total",
			Help: "Kinesis records acknowledged: with --aggregate, the KPL aggregates carrying the user records counted by paystream_producer_records_sent_total.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_producer_records_failed_total",
			Help: "Records given up on after --max-retries retries, or abandoned at shutdown.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_producer_records_retried_total",
			Help: "PutRecords entries sent again after a per-entry failure, throttling or a failed call.",
		}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_producer_shard_map_refreshes_total",
			Help: "With --aggregate, listings of the stream's shards after a put landed on another shard than predicted (a reshard).",
		}),
		misrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_producer_misrouted_records_total",
			Help: "With --aggregate, Kinesis records acknowledged on another shard than the shard map predicted.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "paystream_producer_putrecords_duration_seconds",
			Help:    "Duration of PutRecords calls, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1 ms .. 16 s
		}),
	}
	if reg == nil {
		return m, nil
	}
	// Reuse collectors already registered by an earlier run on the same
	// registry, so a process may call Run more than once.
	var err error
	m.sentVec, err = register(reg, m.sentVec)
	if err == nil {
		m.kinesisSent, err = register(reg, m.kinesisSent)
	}
	if err == nil {
		m.failed, err = register(reg, m.failed)
	}
	if err == nil {
		m.retried, err = register(reg, m.retried)
	}
	if err == nil {
		m.refreshes, err = register(reg, m.refreshes)
	}
	if err == nil {
		m.misrouted, err = register(reg, m.misrouted)
	}
	if err == nil {
		m.duration, err = register(reg, m.duration)
	}
	return m, err
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) sent(kind string) { m.sentVec.WithLabelValues(kind).Inc() }
