package quantile

import (
	"errors"
	"math"
	"slices"
)

// Bucket is one cumulative histogram bucket: Count observations were at
// most UpperBound. The last bucket of a histogram is +Inf.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// ErrNoBuckets is returned by Buckets for a histogram without a +Inf bucket.
var ErrNoBuckets = errors.New("histogram has no +Inf bucket")

// Buckets estimates the q-quantile (0 ≤ q ≤ 1) of cumulative buckets the
// way PromQL's histogram_quantile does: find the bucket holding rank
// q·count and interpolate linearly inside it (the first bucket starts at 0).
// A rank in the +Inf bucket returns the highest finite bound. NaN when the
// histogram holds no observations; -Inf and +Inf for q below 0 and above 1.
func Buckets(q float64, buckets []Bucket) (float64, error) {
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

// SubBuckets returns after minus before, bucket by bucket: the observations
// made between two readings of one histogram. before may be nil. A counter
// reset (after below before) yields after unchanged, as PromQL's increase
// does roughly.
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
