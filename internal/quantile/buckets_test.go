package quantile_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/paystream/paystream/internal/quantile"
)

func inf() float64 { return math.Inf(+1) }

func same(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) < 1e-9 || a == b
}

func TestBucketsMatchPromQL(t *testing.T) {
	// Expected values worked out with PromQL's histogram_quantile rules.
	tests := []struct {
		name    string
		q       float64
		buckets []quantile.Bucket
		want    float64
	}{
		{"first bucket starts at zero", 0.5, []quantile.Bucket{{1, 10}, {2, 20}, {inf(), 20}}, 1},
		{"interpolates inside a bucket", 0.99, []quantile.Bucket{{1, 10}, {2, 20}, {inf(), 20}}, 1.98},
		{"quarter into first bucket", 0.25, []quantile.Bucket{{4, 100}, {inf(), 100}}, 1},
		{"rank in +Inf bucket gives highest finite bound", 0.9, []quantile.Bucket{{1, 5}, {inf(), 10}}, 1},
		{"first bucket at or below zero", 0.5, []quantile.Bucket{{-1, 10}, {inf(), 10}}, -1},
		{"empty bucket holding the rank", 0.5, []quantile.Bucket{{1, 0}, {2, 0}, {3, 10}, {inf(), 10}}, 2.5},
		{"no observations", 0.5, []quantile.Bucket{{1, 0}, {inf(), 0}}, math.NaN()},
		{"only the +Inf bucket", 0.5, []quantile.Bucket{{inf(), 3}}, math.NaN()},
		{"q above 1", 1.5, []quantile.Bucket{{1, 1}, {inf(), 1}}, math.Inf(+1)},
		{"q below 0", -1, []quantile.Bucket{{1, 1}, {inf(), 1}}, math.Inf(-1)},
		{"q NaN", math.NaN(), []quantile.Bucket{{1, 1}, {inf(), 1}}, math.NaN()},
		{"non-monotonic counts repaired", 0.5, []quantile.Bucket{{1, 10}, {2, 8}, {inf(), 20}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.buckets)
			got, err := quantile.Buckets(tt.q, tt.buckets)
			if err != nil {
				t.Fatal(err)
			}
			if !same(got, tt.want) {
				t.Errorf("Buckets(%v) = %v, want %v", tt.q, got, tt.want)
			}
			if !slices.Equal(in, tt.buckets) {
				t.Errorf("Buckets changed its argument: %v, was %v", tt.buckets, in)
			}
		})
	}
	for _, bs := range [][]quantile.Bucket{nil, {{1, 1}}} {
		if _, err := quantile.Buckets(0.5, bs); !errors.Is(err, quantile.ErrNoBuckets) {
			t.Errorf("Buckets(%v) error = %v, want ErrNoBuckets", bs, err)
		}
	}
}

func TestSubBuckets(t *testing.T) {
	after := []quantile.Bucket{{1, 10}, {2, 25}, {inf(), 30}}
	for _, tt := range []struct {
		name   string
		before []quantile.Bucket
		want   []quantile.Bucket
	}{
		{"no earlier reading", nil, after},
		{"observations in between", []quantile.Bucket{{1, 4}, {2, 5}, {inf(), 5}}, []quantile.Bucket{{1, 6}, {2, 20}, {inf(), 25}}},
		{"nothing in between", after, []quantile.Bucket{{1, 0}, {2, 0}, {inf(), 0}}},
		{"bound new since", []quantile.Bucket{{1, 4}, {inf(), 5}}, []quantile.Bucket{{1, 6}, {2, 25}, {inf(), 25}}},
		{"counter reset", []quantile.Bucket{{1, 40}, {2, 40}, {inf(), 40}}, after},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := quantile.SubBuckets(after, tt.before)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SubBuckets = %v, want %v", got, tt.want)
			}
			if len(got) > 0 && &got[0] == &after[0] {
				t.Error("SubBuckets returned its argument, not a copy")
			}
		})
	}
}
