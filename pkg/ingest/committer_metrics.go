package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/iceberg"
)

// committerMetrics are the metrics of commit mode single. The committer's
// are set only on the worker holding the role.
type committerMetrics struct {
	held       prometheus.Gauge
	waiting    prometheus.Gauge
	latency    prometheus.Histogram
	perCommit  prometheus.Histogram
	commits    prometheus.Counter
	refused    *prometheus.CounterVec
	stagedByMe prometheus.Counter
}

func newCommitterMetrics(reg prometheus.Registerer) *committerMetrics {
	m := &committerMetrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_committer_role", Help: "1 while this worker holds the committer role (commit mode single), else 0.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_committer_staged_batches", Help: "Staged batches waiting for the committer at its last round (set on the committer).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_committer_stage_to_commit_seconds", Help: "Seconds from a worker staging a batch to the committer marking it committed.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
		perCommit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_committer_batches_per_commit", Help: "Batches (the committer's own and staged ones) landed by one table commit of the committer.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64},
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_committer_commits_total", Help: "Table commits made by this worker as the committer.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paystream_committer_staged_refused_total",
			Help: "Staged batches the committer refused, by reason: moved (a position moved), rival (another batch for the range won), too_old (files older than the file age limit), maybe_in (positions past the batch, files kept), bad_payload.",
		}, []string{"reason"}),
		stagedByMe: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_committer_batches_staged_total", Help: "Batches this worker staged for the committer.",
		}),
	}
	for _, r := range []string{refusedMoved, refusedRival, refusedTooOld, refusedMaybeIn, refusedUndecoding} {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.held, m.waiting, m.latency, m.perCommit, m.commits, m.refused, m.stagedByMe)
	}
	return m
}

func (m *Metrics) committerRole(held bool) {
	if m == nil {
		return
	}
	v := 0.0
	if held {
		v = 1
	}
	m.committer.held.Set(v)
}

func (m *Metrics) stagedWaiting(n int) {
	if m != nil {
		m.committer.waiting.Set(float64(n))
	}
}

func (m *Metrics) stageLatency(d time.Duration) {
	if m != nil {
		m.committer.latency.Observe(d.Seconds())
	}
}

func (m *Metrics) stagedRefused(reason string) {
	if m != nil {
		m.committer.refused.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) batchStaged() {
	if m != nil {
		m.committer.stagedByMe.Inc()
	}
}

// committerCommitted records a CommitPrepared call: a table commit when
// some batch landed in it now (not found there from an earlier one).
func (m *Metrics) committerCommitted(outs []iceberg.PreparedOutcome) {
	if m == nil {
		return
	}
	n := 0
	for _, o := range outs {
		if o.Landed && !o.Already {
			n++
		}
	}
	if n > 0 {
		m.committer.commits.Inc()
		m.committer.perCommit.Observe(float64(n))
	}
}
