package promreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// Bucket is one cumulative histogram bucket: Count observations were at
// most UpperBound. The last bucket of a histogram is +Inf.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Histogram returns the buckets of histogram name summed over its series,
// ending with the +Inf bucket (the observation count); nil when absent.
// Series with different bucket layouts are merged on the union of bounds
// (exact for the consumer, whose layouts never differ).
func (s Snapshot) Histogram(name string) []Bucket {
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
	out := make([]Bucket, 0, len(counts)+1)
	for ub, c := range counts {
		out = append(out, Bucket{UpperBound: ub, Count: c})
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmpFloat(a.UpperBound, b.UpperBound) })
	return append(out, Bucket{UpperBound: math.Inf(+1), Count: total})
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

// SubBuckets returns after minus before, bucket by bucket: the observations
// made between two scrapes. before may be nil. A counter reset (after below
// before) yields after unchanged, as PromQL's increase does roughly.
func SubBuckets(after, before []Bucket) []Bucket {
	if before == nil {
		return slices.Clone(after)
	}
	prev := make(map[float64]float64, len(before))
	for _, b := range before {
		prev[b.UpperBound] = b.Count
	}
	out := make([]Bucket, len(after))
	reset := false
	for i, b := range after {
		out[i] = Bucket{UpperBound: b.UpperBound, Count: b.Count - prev[b.UpperBound]}
		if out[i].Count < 0 {
			reset = true
		}
	}
	if reset {
		return slices.Clone(after)
	}
	return out
}

// ErrNoBuckets is returned by Quantile for a histogram without a +Inf bucket.
var ErrNoBuckets = errors.New("histogram has no +Inf bucket")

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) of cumulative buckets the
// way PromQL's histogram_quantile does: find the bucket holding rank
// q·count and interpolate linearly inside it (the first bucket starts at 0).
// A rank in the +Inf bucket returns the highest finite bound. NaN when the
// histogram holds no observations.
func Quantile(q float64, buckets []Bucket) (float64, error) {
	n := len(buckets)
	if n == 0 || !math.IsInf(buckets[n-1].UpperBound, +1) {
		return math.NaN(), ErrNoBuckets
	}
	switch {
	case math.IsNaN(q):
		return math.NaN(), nil
	case q < 0:
		return math.Inf(-1), nil
	case q > 1:
		return math.Inf(+1), nil
	}
	total := buckets[n-1].Count
	if total <= 0 || n < 2 {
		return math.NaN(), nil
	}
	// Cumulative counts must not decrease; repair rounding as PromQL does.
	bs := slices.Clone(buckets)
	for i := 1; i < n; i++ {
		bs[i].Count = max(bs[i].Count, bs[i-1].Count)
	}
	rank := q * total
	b := 0
	for b < n-1 && bs[b].Count < rank {
		b++
	}
	if b == n-1 {
		return bs[n-2].UpperBound, nil
	}
	if b == 0 && bs[0].UpperBound <= 0 {
		return bs[0].UpperBound, nil
	}
	start, end, count := 0.0, bs[b].UpperBound, bs[b].Count
	if b > 0 {
		start = bs[b-1].UpperBound
		count -= bs[b-1].Count
		rank -= bs[b-1].Count
	}
	if count == 0 {
		return end, nil
	}
	return start + (end-start)*(rank/count), nil
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
