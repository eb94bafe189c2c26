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

// TestSeedAllocatesLittleBeyondWindow seeds a window from ids in no time
// order (the table's files come in any order) and checks what Seed
// allocates beyond the window it builds: the ids' hashes and times once
// (20 B each) while they are read, not a list of entries plus a sorted
// copy of it, so that a restore fits beside the windows in a task.
func TestSeedAllocatesLittleBeyondWindow(t *testing.T) {
	const n = 500_000
	var gen idGen
	ids := make([]string, n)
	for i := range ids {
		ids[i] = gen.next()
	}
	rows := func(yield func(string, time.Time) bool) {
		for i := n - 1; i >= 0; i-- { // newest first
			if !yield(ids[i], t0.Add(time.Duration(i)*time.Millisecond)) {
				return
			}
		}
	}
	f := newFilter(t, dedup.Config{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := f.Seed("s", rows); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if f.Len("s") != n {
		t.Fatalf("Len = %d, want %d", f.Len("s"), n)
	}
	beyond := float64(int64(after.TotalAlloc-before.TotalAlloc)-f.Stats().Bytes) / n
	if beyond > 24 {
		t.Errorf("Seed allocated %.1f B per id beyond the window, want at most 24", beyond)
	}
	t.Logf("Seed allocated %.1f B per id beyond the window (%d B/id)", beyond, f.Stats().Bytes/n)
}
