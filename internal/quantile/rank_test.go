package quantile_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/quantile"
)

func TestSorted(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tt := range []struct {
		name   string
		q      float64
		sorted []int
		want   int
	}{
		{"median of 100", 0.5, hundred, 50},
		{"p99 of 100", 0.99, hundred, 99},
		{"p100 of 100", 1, hundred, 100},
		{"median of 5", 0.5, []int{1, 2, 3, 4, 5}, 3},
		{"p99 of 5", 0.99, []int{1, 2, 3, 4, 5}, 5},
		{"q 0", 0, []int{7, 8}, 7},
		{"q below 0", -1, []int{7, 8}, 7},
		{"q above 1", 2, []int{7, 8}, 8},
		{"one", 0.5, []int{7}, 7},
		{"empty", 0.5, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile.Sorted(tt.q, tt.sorted); got != tt.want {
				t.Errorf("Sorted(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
	if got := quantile.Sorted(0.5, []time.Duration{time.Second, time.Minute}); got != time.Second {
		t.Errorf("Sorted of durations = %v, want 1s", got)
	}
}

// A LogHistogram's quantile is within 1% (half a bucket) of the exact
// nearest-rank quantile of what it was fed.
func TestLogHistogramWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name string
		draw func() float64
	}{
		{"uniform 1..1000 ms in µs", func() float64 { return 1e3 + rng.Float64()*999e3 }},
		{"log-normal around 10 ms", func() float64 { return math.Exp(math.Log(1e4) + rng.NormFloat64()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h quantile.LogHistogram
			vals := make([]float64, 5000)
			for i := range vals {
				vals[i] = tt.draw()
				h.Observe(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != int64(len(vals)) {
				t.Fatalf("Count = %d, want %d", h.Count(), len(vals))
			}
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 1} {
				exact, got := quantile.Sorted(q, vals), h.Quantile(q)
				if math.Abs(got-exact) > 0.01*exact {
					t.Errorf("Quantile(%v) = %v, exact %v: off by more than 1%%", q, got, exact)
				}
			}
		})
	}
}

func TestLogHistogramEdges(t *testing.T) {
	var h quantile.LogHistogram
	if got := h.Quantile(0.99); got != 0 {
		t.Errorf("empty histogram: Quantile = %v, want 0", got)
	}
	h.Observe(0.2) // at most 1: the first bucket
	if got := h.Quantile(0.5); got != math.Sqrt(1.02) {
		t.Errorf("Quantile after Observe(0.2) = %v, want the first bucket's middle %v", got, math.Sqrt(1.02))
	}
	h.Observe(1e12) // past the last bucket: the last one
	if got, want := h.Quantile(1), math.Pow(1.02, 939.5); got != want {
		t.Errorf("Quantile after Observe(1e12) = %v, want the last bucket's middle %v", got, want)
	}
}
