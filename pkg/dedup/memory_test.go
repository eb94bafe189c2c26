package dedup_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/dedup"
)

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestMemoryBound fills a shard's window to MaxIDs, keeps events arriving
// for three more windows' worth, and checks that the ids held stay at
// MaxIDs (newest kept) and that the heap the Filter holds stays within the
// documented bytes per id and does not grow while it evicts.
func TestMemoryBound(t *testing.T) {
	const (
		maxIDs   = 200_000
		perBatch = 1000
		// The documented bound for a full window (doc.go, "Memory"): 20 B
		// in the ring plus 4 B × table slots, at most 1.6 slots per id.
		maxBytesPerID = 20 + 4*1.6
	)
	var gen idGen
	at := t0
	fill := func(f *dedup.Filter, n int) {
		for i := 0; i < n; i += perBatch {
			b := f.Begin("s")
			for range perBatch {
				if b.Check(gen.next()) {
					t.Fatal("a fresh id was reported duplicate")
				}
			}
			at = at.Add(time.Second) // 1,000 events/s
			if err := b.Commit(at); err != nil {
				t.Fatal(err)
			}
		}
	}

	before := heapAlloc()
	f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
	fill(f, maxIDs)
	full := heapAlloc() - before
	st := f.Stats()
	if st.IDs != maxIDs {
		t.Fatalf("%d ids after filling, want %d", st.IDs, maxIDs)
	}
	if perID := float64(st.Bytes) / maxIDs; perID > maxBytesPerID {
		t.Fatalf("Stats.Bytes = %d B/id for a full window, documented bound %.1f", st.Bytes/maxIDs, maxBytesPerID)
	}
	// The heap the Filter holds is what Stats says, give or take the
	// Filter's small objects and runtime noise.
	if full > st.Bytes+st.Bytes/10+256<<10 {
		t.Fatalf("heap grew %d B for a full window; Stats.Bytes says %d", full, st.Bytes)
	}

	fill(f, 3*maxIDs)
	after := heapAlloc() - before
	if n := f.Len("s"); n != maxIDs {
		t.Fatalf("Len = %d after 3 more windows of events, want %d", n, maxIDs)
	}
	if after > full+64<<10 {
		t.Fatalf("heap grew from %d to %d B while the full window kept evicting", full, after)
	}
	// Newest kept: the last id sent is caught, the first is not.
	b := f.Begin("s")
	if !b.Check(gen.id(gen.n - 1)) {
		t.Fatal("newest id was evicted")
	}
	if b.Check(gen.id(0)) {
		t.Fatal("oldest id is still held")
	}
	b.Abort()
	t.Logf("full window of %d ids: heap %d B (%.1f B/id), Stats.Bytes %d B (%.1f B/id); after 3 more windows: heap %d B",
		maxIDs, full, float64(full)/maxIDs, st.Bytes, float64(st.Bytes)/maxIDs, after)
	runtime.KeepAlive(f)
}

// TestSeedAllocatesLittleBeyondWindow seeds windows from ids in no time
// order (the table's files come in any order) and checks what Seed
// allocates beyond the window it builds. Up to a quarter of MaxIDs the ids'
// hashes and times are read into chunks and copied once into the window's
// ring (20 B per id); past a quarter, the ring is allocated at MaxIDs, the
// chunks read so far are copied into it and the rest is read in place, so
// a large restore allocates at most MaxIDs/4 × 20 B beyond the window: not
// a list of entries, a sorted copy, or a second copy of every id.
func TestSeedAllocatesLittleBeyondWindow(t *testing.T) {
	const maxIDs = 1 << 20 // a quarter is a whole number of Seed's 64 Ki-id chunks
	for _, tc := range []struct {
		name string
		n    int
		// Most bytes per id Seed may allocate beyond the window, plus 1%
		// (the chunk list, the Filter's small objects).
		perID float64
	}{
		{"below a quarter of MaxIDs", 3 << 16, 20},
		{"90% of MaxIDs", maxIDs * 9 / 10, float64(maxIDs/4*20) / (maxIDs * 9 / 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gen idGen
			ids := make([]string, tc.n)
			for i := range ids {
				ids[i] = gen.next()
			}
			rows := func(yield func(string, time.Time) bool) {
				for i := tc.n - 1; i >= 0; i-- { // newest first
					if !yield(ids[i], t0.Add(time.Duration(i)*time.Millisecond)) {
						return
					}
				}
			}
			f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if err := f.Seed("s", rows); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			if f.Len("s") != tc.n {
				t.Fatalf("Len = %d, want %d", f.Len("s"), tc.n)
			}
			beyond := float64(int64(after.TotalAlloc-before.TotalAlloc)-f.Stats().Bytes) / float64(tc.n)
			if beyond > tc.perID*1.01 {
				t.Errorf("Seed allocated %.2f B per id beyond the window, want at most %.2f", beyond, tc.perID)
			}
			t.Logf("Seed of %d ids allocated %.2f B per id beyond the window (window %.1f B/id)",
				tc.n, beyond, float64(f.Stats().Bytes)/float64(tc.n))
		})
	}
}

// TestSeededWindowTakesNewIDsInPlace: a window seeded past a quarter of
// MaxIDs has its ring at MaxIDs already, so the ids read after the restore
// go into it without a resize (which would hold a second ring and table,
// 28 B per id of MaxIDs, right after the restore).
func TestSeededWindowTakesNewIDsInPlace(t *testing.T) {
	const (
		maxIDs = 400_000
		n      = 360_000
	)
	var gen idGen
	f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
	if err := f.Seed("s", func(yield func(string, time.Time) bool) {
		for i := range n {
			if !yield(gen.next(), t0.Add(time.Duration(i)*time.Millisecond)) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	seeded := f.Stats().Bytes
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = gen.next()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b := f.Begin("s")
	for _, id := range ids {
		if b.Check(id) {
			t.Fatal("a fresh id was reported duplicate")
		}
	}
	if err := b.Commit(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if f.Len("s") != n+len(ids) {
		t.Fatalf("Len = %d, want %d", f.Len("s"), n+len(ids))
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Errorf("the first batch after Seed allocated %d B (window %d B then %d B): the ring was resized", got, seeded, f.Stats().Bytes)
	}
}
