package dedup_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/paystream/paystream/pkg/dedup"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	f := newFilter(t, dedup.Config{Window: time.Minute, MaxIDs: 3, Registerer: reg})

	commitBatch(t, f, "s-1", t0, "a", "a", "b", "b", "c", "d") // 2 dups; d evicts a (count)
	commitBatch(t, f, "s-1", t0.Add(2*time.Minute), "e")       // e evicts b (count); c, d expire (time)
	commitBatch(t, f, "s-2", t0, "a")
	commitBatch(t, f, "gone", t0, "a", "a")
	f.Drop("gone")

	got := gather(t, reg)
	want := map[string]float64{
		`paystream_dedup_duplicates_total{shard="s-1"}`:               2,
		`paystream_dedup_duplicates_total{shard="s-2"}`:               0,
		`paystream_dedup_window_ids{shard="s-1"}`:                     1,
		`paystream_dedup_window_ids{shard="s-2"}`:                     1,
		`paystream_dedup_evictions_total{reason="count",shard="s-1"}`: 2,
		`paystream_dedup_evictions_total{reason="count",shard="s-2"}`: 0,
		`paystream_dedup_evictions_total{reason="time",shard="s-1"}`:  2,
		`paystream_dedup_evictions_total{reason="time",shard="s-2"}`:  0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if strings.Contains(k, "gone") {
			t.Errorf("dropped shard still exported: %s", k)
		}
	}
	if b := got[`paystream_dedup_window_bytes{shard="s-1"}`]; b <= 0 || b > 1024 {
		t.Errorf("window_bytes of a 3-id window = %v, want a few hundred bytes", b)
	}
	if len(got) != 2*5 {
		t.Errorf("%d series, want 10 (5 per shard): %v", len(got), got)
	}

	// A second Filter on the same registry is a configuration error.
	if _, err := dedup.New(dedup.Config{Registerer: reg}); err == nil {
		t.Fatal("registering the metrics twice succeeded")
	}
}

// gather returns every sample as `name{label="value",...}` → value, labels
// in the registry's (sorted) order.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			default:
				t.Fatalf("unexpected metric type %v of %s", mf.GetType(), key)
			}
		}
	}
	return out
}
