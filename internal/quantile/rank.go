package quantile

import "math"

// rank is the 1-based nearest rank of the q-quantile of n observations,
// ⌈q·n⌉, kept within [1, n]. n must be positive.
func rank(q float64, n int64) int64 {
	r := int64(math.Ceil(q * float64(n)))
	return min(max(r, 1), n)
}

// Sorted returns the nearest-rank q-quantile of sorted (ascending): the
// ⌈q·n⌉-th smallest element, the first for q ≤ 0 and the last for q ≥ 1.
// The zero T when sorted is empty.
func Sorted[T any](q float64, sorted []T) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	return sorted[rank(q, int64(len(sorted)))-1]
}

// LogHistogram counts observations in logarithmic buckets 2% wide, from 1
// to 1.02^940 (about 1.2·10⁸; fed microseconds, 1 µs to two minutes), in
// 7.5 KB however many it counts. In that range its quantiles are within 1%
// of the exact nearest-rank value. Values at most 1 fall in the first
// bucket, values past the last bucket in the last one. The zero value is
// empty and ready to use.
type LogHistogram struct {
	counts [logBuckets]int64
	n      int64
}

const (
	logBuckets = 940
	logGrowth  = 1.02
)

var logOfGrowth = math.Log(logGrowth)

// Observe adds one observation of v.
func (h *LogHistogram) Observe(v float64) {
	i := 0
	if v > 1 {
		i = int(math.Log(v) / logOfGrowth)
	}
	h.counts[min(i, logBuckets-1)]++
	h.n++
}

// Count is the number of observations.
func (h *LogHistogram) Count() int64 { return h.n }

// Quantile returns the geometric middle of the bucket holding the
// nearest-rank q-quantile; 0 when the histogram is empty.
func (h *LogHistogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	want := rank(q, h.n)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= want {
			return math.Pow(logGrowth, float64(i)+0.5)
		}
	}
	return math.Pow(logGrowth, logBuckets) // not reached: seen ends at n
}
