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
