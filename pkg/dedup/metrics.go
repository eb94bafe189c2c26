package dedup

import "github.com/prometheus/client_golang/prometheus"

// collector reads the shards at scrape time, so a dropped shard's series
// disappear with it and the hot path updates nothing but plain counters
// under the shard lock it already holds.
type collector struct {
	f         *Filter
	dups      *prometheus.Desc
	ids       *prometheus.Desc
	bytes     *prometheus.Desc
	evictions *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newCollector(f *Filter) *collector {
	return &collector{
		f: f,
		dups: prometheus.NewDesc("paystream_dedup_duplicates_total",
			"Events whose event_id was already in the shard's window or uncommitted batches; the caller drops them.",
			[]string{"shard"}, nil),
		ids: prometheus.NewDesc("paystream_dedup_window_ids",
			"event_ids held in the shard's window, committed and pending.",
			[]string{"shard"}, nil),
		bytes: prometheus.NewDesc("paystream_dedup_window_bytes",
			"Memory held by the shard's window arrays.",
			[]string{"shard"}, nil),
		evictions: prometheus.NewDesc("paystream_dedup_evictions_total",
			`event_ids evicted from the shard's window: reason="time" when older than --dedup-window, reason="count" when the window was full at --dedup-max-ids (the window then covers less time than configured).`,
			[]string{"shard", "reason"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dups
	ch <- c.ids
	ch <- c.bytes
	ch <- c.evictions
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.f.snapshot() {
		s.mu.Lock()
		if s.dropped {
			s.mu.Unlock()
			continue
		}
		dups, n, bytes := s.dups, s.w.n, s.w.bytes()
		evTime, evCount := s.w.evictedTime, s.w.evictedCount
		s.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.dups, prometheus.CounterValue, float64(dups), s.id)
		ch <- prometheus.MustNewConstMetric(c.ids, prometheus.GaugeValue, float64(n), s.id)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(bytes), s.id)
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(evTime), s.id, "time")
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(evCount), s.id, "count")
	}
}
