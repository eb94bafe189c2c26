package soak

import (
	"strings"
	"testing"
	"time"
)

func steady() []Slice {
	return []Slice{
		{Pct: 10, P50: 0.10, QueryTime: time.Second, LiveFiles: 5, FileBound: 10, RSS: []int64{100, 100}},
		{Pct: 100, P50: 0.11, QueryTime: 1200 * time.Millisecond, LiveFiles: 9, FileBound: 10, RSS: []int64{140, 120}},
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		change func([]Slice)
		meta   int64
		fail   string // the target that fails, "" for none
	}{
		{name: "steady", change: func([]Slice) {}, meta: 1 << 20},
		{name: "p50 grows", change: func(s []Slice) { s[1].P50 = 0.13 }, meta: 1000, fail: "commit p50"},
		{name: "metadata too big", change: func([]Slice) {}, meta: 1<<20 + 1, fail: "metadata.json"},
		{name: "metadata files pile up", change: func(s []Slice) { s[1].MetadataFiles = 201 }, meta: 1000, fail: "metadata.json files"},
		{name: "files over bound", change: func(s []Slice) { s[0].LiveFiles = 11 }, meta: 1000, fail: "live data files"},
		{name: "query slows", change: func(s []Slice) { s[1].QueryTime = 1600 * time.Millisecond }, meta: 1000, fail: "query time"},
		{name: "worker 2 grows", change: func(s []Slice) { s[1].RSS[1] = 151 }, meta: 1000, fail: "RSS worker 2"},
		{name: "no first p50", change: func(s []Slice) { s[0].P50 = 0 }, meta: 1000, fail: "commit p50"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sl := steady()
			tc.change(sl)
			var failed []string
			for _, v := range Evaluate(sl, tc.meta, DefaultLimits) {
				if !v.Pass {
					failed = append(failed, v.Target)
				}
			}
			if tc.fail == "" && len(failed) > 0 || tc.fail != "" && (len(failed) != 1 || !strings.HasPrefix(failed[0], tc.fail)) {
				t.Fatalf("failed targets %q, want only %q", failed, tc.fail)
			}
		})
	}
}

func TestEvaluateNoSlices(t *testing.T) {
	if vs := Evaluate(nil, 0, DefaultLimits); !Failed(vs) {
		t.Fatalf("no slices passed: %+v", vs)
	}
}

func TestFileBound(t *testing.T) {
	if got := FileBound(2, 30); got != 64 {
		t.Fatalf("FileBound(2, 30) = %d, want 64", got)
	}
}
