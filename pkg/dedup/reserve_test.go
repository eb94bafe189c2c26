package dedup_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/dedup"
)

// TestReserveSizesWindowOnce: after Filter.Reserve(shard, n) the window
// holds n more ids without growing (Stats().Bytes, the arrays' size, does
// not move while they are checked), keeps that room across the commits of
// the batches in between (a first batch of a tenth would otherwise make it
// shrink), and still finds every id it held before.
func TestReserveSizesWindowOnce(t *testing.T) {
	const (
		before  = 3000 // ids in the window before the reservation
		n       = 50_000
		batches = 10
	)
	f := newFilter(t, dedup.Config{})
	old := ids("old", 0, before)
	commitBatch(t, f, "s", t0, old...)
	empty := f.Stats().Bytes

	f.Reserve("s", n)
	reserved := f.Stats().Bytes
	if reserved <= empty {
		t.Fatalf("Reserve(%d) left the window at %d B", n, reserved)
	}
	if got := checkAll(f.Begin("s"), old...); len(got) != before {
		t.Fatalf("after Reserve, %d of the %d ids held before are duplicates", len(got), before)
	}
	f.Drop("s") // the Begin above left a batch open; start again
	commitBatch(t, f, "s", t0, old...)
	f.Reserve("s", n)
	if got := f.Stats().Bytes; got != reserved {
		t.Fatalf("the same reservation gave %d B, then %d B", reserved, got)
	}

	fresh := ids("new", 0, n)
	per := n / batches
	for i := range batches {
		at := t0.Add(time.Duration(i+1) * time.Second)
		if dups := commitBatch(t, f, "s", at, fresh[i*per:(i+1)*per]...); len(dups) != 0 {
			t.Fatalf("batch %d: %d fresh ids reported duplicate", i, len(dups))
		}
		if got := f.Stats().Bytes; got != reserved {
			t.Fatalf("after batch %d of %d ids the window is %d B, reserved %d B: it was resized", i, per, got, reserved)
		}
	}
	if got := f.Len("s"); got != before+n {
		t.Fatalf("Len = %d, want %d", got, before+n)
	}
	b := f.Begin("s")
	if dups := checkAll(b, append(old, fresh...)...); len(dups) != before+n {
		t.Fatalf("%d of %d ids found again", len(dups), before+n)
	}
	b.Abort()
}

// TestReserveBounded: a reservation beyond MaxIDs sizes the window for
// MaxIDs, no more; a full window still evicts the oldest ids.
func TestReserveBounded(t *testing.T) {
	const maxIDs = 10_000
	f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
	all := ids("id", 0, 2*maxIDs)
	commitBatch(t, f, "full", t0, all...)
	full := f.Stats().Bytes

	g := newFilter(t, dedup.Config{MaxIDs: maxIDs})
	g.Reserve("s", 1<<30)
	if got := g.Stats().Bytes; got != full {
		t.Fatalf("Reserve beyond MaxIDs: %d B, a full window is %d B", got, full)
	}
	commitBatch(t, g, "s", t0, all...)
	if got := g.Len("s"); got != maxIDs {
		t.Fatalf("Len = %d, want MaxIDs %d", got, maxIDs)
	}
	if dups := checkAll(g.Begin("s"), all[:maxIDs]...); len(dups) != 0 {
		t.Fatalf("%d evicted ids still found", len(dups))
	}
}

// TestBatchReserve: Batch.Reserve makes room for the batch's ids at once,
// so checking them does not resize the window.
func TestBatchReserve(t *testing.T) {
	const n = 20_000
	f := newFilter(t, dedup.Config{})
	b := f.Begin("s")
	b.Reserve(n)
	reserved := f.Stats().Bytes
	fresh := ids("id", 0, n)
	if dups := checkAll(b, fresh...); len(dups) != 0 {
		t.Fatalf("%d fresh ids reported duplicate", len(dups))
	}
	if got := f.Stats().Bytes; got != reserved {
		t.Fatalf("window %d B after the batch's %d ids, %d B reserved: it was resized", got, n, reserved)
	}
	if err := b.Commit(t0); err != nil {
		t.Fatal(err)
	}
	if dups := checkAll(f.Begin("s"), fresh...); len(dups) != n {
		t.Fatalf("%d of %d ids found again", len(dups), n)
	}
}

// TestCheckAllMatchesCheck runs the same batches of ids, with repeats
// inside a group of CheckAll, across its groups, across batches and
// against an uncommitted older batch, through Check on one Filter and
// CheckAll (in slices of every length from 1 to 40) on another, and
// wants the same answers and the same windows.
func TestCheckAllMatchesCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	each := newFilter(t, dedup.Config{})
	all := newFilter(t, dedup.Config{})
	next := 0
	var older [2]*dedup.Batch // the previous batch of each Filter, left open once
	for round := range 30 {
		n := 1 + rng.IntN(700)
		batch := make([]string, n)
		for i := range batch {
			if next > 0 && rng.IntN(4) == 0 { // a repeat of any earlier id
				batch[i] = fmt.Sprintf("id-%d", rng.IntN(next))
			} else {
				batch[i] = fmt.Sprintf("id-%d", next)
				next++
			}
		}
		be, ba := each.Begin("s"), all.Begin("s")
		want := checkAll(be, batch...)
		var got []string
		for i, step := 0, 0; i < n; step++ {
			k := min(1+step%40, n-i)
			dup := make([]bool, k)
			ba.CheckAll(batch[i:i+k], dup)
			for j, d := range dup {
				if d {
					got = append(got, batch[i+j])
				}
			}
			i += k
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: CheckAll found duplicates %v, Check %v", round, got, want)
		}
		if round%5 == 4 {
			older = [2]*dedup.Batch{be, ba} // commit later, with the next one
			continue
		}
		for i, b := range []*dedup.Batch{older[0], be, older[1], ba} {
			if b == nil {
				continue
			}
			if err := b.Commit(t0.Add(time.Duration(round) * time.Second)); err != nil {
				t.Fatalf("round %d, batch %d: %v", round, i, err)
			}
		}
		older = [2]*dedup.Batch{}
		if each.Len("s") != all.Len("s") {
			t.Fatalf("round %d: windows of %d and %d ids", round, each.Len("s"), all.Len("s"))
		}
	}

	b := all.Begin("s")
	b.Abort()
	dup := []bool{true, true}
	b.CheckAll([]string{"id-0", "new"}, dup)
	if dup[0] || dup[1] {
		t.Fatalf("CheckAll on an aborted batch: %v, want no duplicates", dup)
	}
}
