package promreport

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/paystream/paystream/internal/quantile"
)

// Snapshot is the metric families of one or more scrapes, merged: a family
// scraped from several consumer tasks holds the series of all of them.
// The zero Snapshot is empty and usable.
type Snapshot struct {
	families map[string]*dto.MetricFamily
	sources  int
}

// Parse reads one Prometheus text exposition (what /metrics serves).
func Parse(r io.Reader) (Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Snapshot{}, fmt.Errorf("parse metrics text: %w", err)
	}
	s := Snapshot{families: fams, sources: 1}
	return s, nil
}

// FromFamilies wraps families gathered in process (prometheus.Gatherer).
func FromFamilies(fams []*dto.MetricFamily) Snapshot {
	s := Snapshot{families: make(map[string]*dto.MetricFamily, len(fams)), sources: 1}
	for _, f := range fams {
		s.families[f.GetName()] = f
	}
	return s
}

// Fetch scrapes url (a /metrics endpoint) once.
func Fetch(ctx context.Context, client *http.Client, url string) (Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return Snapshot{}, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	s, err := Parse(resp.Body)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return s, nil
}

// Merge returns the union of the snapshots: the series of each family are
// concatenated, so sums and histograms cover every source.
func Merge(snaps ...Snapshot) Snapshot {
	out := Snapshot{families: map[string]*dto.MetricFamily{}}
	for _, s := range snaps {
		out.sources += s.sources
		for name, f := range s.families {
			have := out.families[name]
			if have == nil {
				have = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
				out.families[name] = have
			}
			have.Metric = append(have.Metric, f.Metric...)
		}
	}
	return out
}

// Sources is how many scrapes the snapshot merges.
func (s Snapshot) Sources() int { return s.sources }

// Has reports whether the snapshot holds at least one series of name.
func (s Snapshot) Has(name string) bool {
	f := s.families[name]
	return f != nil && len(f.Metric) > 0
}

// Sum adds the values of every series of the counter, gauge or untyped
// metric name (0 when absent).
func (s Snapshot) Sum(name string) float64 {
	var sum float64
	for _, v := range s.values(name) {
		sum += v
	}
	return sum
}

// Max is the largest value among the series of name; ok is false when
// there are none.
func (s Snapshot) Max(name string) (v float64, ok bool) {
	vals := s.values(name)
	if len(vals) == 0 {
		return 0, false
	}
	return slices.Max(vals), true
}

// Min is the smallest value among the series of name; ok is false when
// there are none.
func (s Snapshot) Min(name string) (v float64, ok bool) {
	vals := s.values(name)
	if len(vals) == 0 {
		return 0, false
	}
	return slices.Min(vals), true
}

func (s Snapshot) values(name string) []float64 {
	f := s.families[name]
	if f == nil {
		return nil
	}
	out := make([]float64, 0, len(f.Metric))
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			out = append(out, m.Counter.GetValue())
		case m.Gauge != nil:
			out = append(out, m.Gauge.GetValue())
		case m.Untyped != nil:
			out = append(out, m.Untyped.GetValue())
		}
	}
	return out
}

// Histogram returns the buckets of histogram name summed over its series,
// ending with the +Inf bucket (the observation count); nil when absent.
// Series with different bucket layouts are merged on the union of bounds
// (exact for the consumer, whose layouts never differ).
func (s Snapshot) Histogram(name string) []quantile.Bucket {
	f := s.families[name]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		return nil
	}
	counts := map[float64]float64{}
	var total float64
	seen := false
	for _, m := range f.Metric {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		seen = true
		total += float64(h.GetSampleCount())
		for _, b := range h.Bucket {
			if !math.IsInf(b.GetUpperBound(), +1) {
				counts[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
	}
	if !seen {
		return nil
	}
	out := make([]quantile.Bucket, 0, len(counts)+1)
	for ub, c := range counts {
		out = append(out, quantile.Bucket{UpperBound: ub, Count: c})
	}
	slices.SortFunc(out, func(a, b quantile.Bucket) int { return cmpFloat(a.UpperBound, b.UpperBound) })
	return append(out, quantile.Bucket{UpperBound: math.Inf(+1), Count: total})
}

// HistogramSum returns the sum of histogram name's observations over its
// series (its _sum); 0 when absent.
func (s Snapshot) HistogramSum(name string) float64 {
	f := s.families[name]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String lists the snapshot's family names, for error messages.
func (s Snapshot) String() string {
	names := make([]string, 0, len(s.families))
	for n := range s.families {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}
