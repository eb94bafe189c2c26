package leasetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/paystream/paystream/pkg/lease"
)

// Run runs the conformance suite against stores made by newStore, one fresh
// store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) lease.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context, t *testing.T, s lease.Store)
	}{
		{"EnsureTableIsIdempotent", testEnsureTable},
		{"CreateRoundTrips", testCreateRoundTrips},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"ListManySorted", testListMany},
		{"Take", testTake},
		{"TakeStale", testTakeStale},
		{"Renew", testRenew},
		{"RenewStaleOrStolen", testRenewStale},
		{"Release", testRelease},
		{"ReleaseStale", testReleaseStale},
		{"UpdateCheckpoint", testUpdateCheckpoint},
		{"UpdateCheckpointStale", testUpdateCheckpointStale},
		{"Delete", testDelete},
		{"DeleteStale", testDeleteStale},
		{"HolderWritesNeedOwner", testHolderWritesNeedOwner},
		{"ConcurrentTakeOneWinner", testConcurrentTake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t)
			if err := s.EnsureTable(ctx); err != nil {
				t.Fatalf("EnsureTable: %v", err)
			}
			tc.fn(ctx, t, s)
		})
	}
}

func mustCreate(ctx context.Context, t *testing.T, s lease.Store, l lease.Lease) lease.Lease {
	t.Helper()
	if err := s.Create(ctx, l); err != nil {
		t.Fatalf("Create(%s): %v", l.Key, err)
	}
	return mustGet(ctx, t, s, l.Key)
}

func mustGet(ctx context.Context, t *testing.T, s lease.Store, key string) lease.Lease {
	t.Helper()
	l, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return l
}

func mustTake(ctx context.Context, t *testing.T, s lease.Store, l lease.Lease, owner string) lease.Lease {
	t.Helper()
	got, err := s.Take(ctx, l, owner)
	if err != nil {
		t.Fatalf("Take(%s, %s): %v", l.Key, owner, err)
	}
	return got
}

// wantStored checks that the store holds want, and that the lease a write
// returned equals what a read returns.
func wantStored(ctx context.Context, t *testing.T, s lease.Store, want lease.Lease) {
	t.Helper()
	got := mustGet(ctx, t, s, want.Key)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored lease:\n got %+v\nwant %+v", got, want)
	}
}

func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: err = %v, want %v", what, err, sentinel)
	}
}

func testEnsureTable(ctx context.Context, t *testing.T, s lease.Store) {
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatalf("second EnsureTable: %v", err)
	}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("new table has leases: %+v", got)
	}
}

func testCreateRoundTrips(ctx context.Context, t *testing.T, s lease.Store) {
	leases := []lease.Lease{
		{Key: "shardId-000000000000", Checkpoint: lease.CheckpointTrimHorizon,
			ChildShardIDs: []string{"shardId-000000000003", "shardId-000000000002"}},
		{Key: "shardId-000000000002", Checkpoint: lease.CheckpointTrimHorizon,
			ParentShardIDs: []string{"shardId-000000000000"}},
		{Key: "shardId-000000000003", Owner: "w1", Counter: 7, OwnerSwitchesSinceCheckpoint: 2,
			Checkpoint: "49590338271490256608559692538361571095921575989136588898"},
	}
	for _, l := range leases {
		mustCreate(ctx, t, s, l)
	}
	// Sets come back sorted: DynamoDB string sets have no order.
	leases[0].ChildShardIDs = []string{"shardId-000000000002", "shardId-000000000003"}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !reflect.DeepEqual(got, leases) {
		t.Fatalf("List:\n got %+v\nwant %+v", got, leases)
	}
	for _, l := range leases {
		wantStored(ctx, t, s, l)
	}
}

func testCreateExisting(ctx context.Context, t *testing.T, s lease.Store) {
	orig := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	err := s.Create(ctx, lease.Lease{Key: "s1", Owner: "intruder", Counter: 99, Checkpoint: "5"})
	wantErr(t, "second Create", err, lease.ErrExists)
	wantStored(ctx, t, s, orig)
}

func testGetMissing(ctx context.Context, t *testing.T, s lease.Store) {
	_, err := s.Get(ctx, "nope")
	wantErr(t, "Get of a missing lease", err, lease.ErrNotFound)
}

func testListMany(ctx context.Context, t *testing.T, s lease.Store) {
	const n = 25
	var want []string
	for i := n - 1; i >= 0; i-- {
		mustCreate(ctx, t, s, lease.Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: lease.CheckpointTrimHorizon})
	}
	for i := range n {
		want = append(want, fmt.Sprintf("shardId-%012d", i))
	}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var keys []string
	for _, l := range got {
		keys = append(keys, l.Key)
	}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("List keys = %v, want %v", keys, want)
	}
}

func testTake(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: "42", ParentShardIDs: []string{"s0"}})
	a := mustTake(ctx, t, s, l, "a")
	want := lease.Lease{Key: "s1", Owner: "a", Counter: 1, Checkpoint: "42",
		OwnerSwitchesSinceCheckpoint: 1, ParentShardIDs: []string{"s0"}}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("Take returned %+v, want %+v", a, want)
	}
	wantStored(ctx, t, s, a)

	// Taking one's own lease again does not count as an owner switch.
	a2 := mustTake(ctx, t, s, a, "a")
	if a2.Counter != 2 || a2.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("re-take by the owner: %+v, want counter 2, switches 1", a2)
	}
	wantStored(ctx, t, s, a2)

	// Stealing: another worker takes it with the current counter.
	b := mustTake(ctx, t, s, a2, "b")
	if b.Owner != "b" || b.Counter != 3 || b.OwnerSwitchesSinceCheckpoint != 2 {
		t.Fatalf("steal: %+v, want owner b, counter 3, switches 2", b)
	}
	wantStored(ctx, t, s, b)
}

func testTakeStale(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	a := mustTake(ctx, t, s, l, "a")
	_, err := s.Take(ctx, l, "b") // counter 0 is stale
	wantErr(t, "Take with a stale counter", err, lease.ErrHeld)
	wantStored(ctx, t, s, a)

	_, err = s.Take(ctx, lease.Lease{Key: "missing"}, "b")
	wantErr(t, "Take of a missing lease", err, lease.ErrHeld)
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("Take of a missing lease created it: Get err = %v", err)
	}
}

func testRenew(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: "9"})
	a := mustTake(ctx, t, s, l, "a")
	for i := range 3 {
		r, err := s.Renew(ctx, a)
		if err != nil {
			t.Fatalf("Renew %d: %v", i, err)
		}
		if r.Counter != a.Counter+1 || r.Owner != "a" || r.Checkpoint != "9" {
			t.Fatalf("Renew returned %+v after %+v", r, a)
		}
		wantStored(ctx, t, s, r)
		a = r
	}
}

func testRenewStale(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	a := mustTake(ctx, t, s, l, "a")
	a2, err := s.Renew(ctx, a)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	_, err = s.Renew(ctx, a) // counter behind by one
	wantErr(t, "Renew with a stale counter", err, lease.ErrLost)
	wantStored(ctx, t, s, a2)

	b := mustTake(ctx, t, s, a2, "b")
	_, err = s.Renew(ctx, a2)
	wantErr(t, "Renew after another worker took the lease", err, lease.ErrLost)
	// Right counter, wrong owner: still lost.
	forged := b
	forged.Owner = "a"
	_, err = s.Renew(ctx, forged)
	wantErr(t, "Renew by a non-owner with the current counter", err, lease.ErrLost)
	wantStored(ctx, t, s, b)

	_, err = s.Renew(ctx, lease.Lease{Key: "missing", Owner: "a"})
	wantErr(t, "Renew of a missing lease", err, lease.ErrLost)
}

func testRelease(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: "5"})
	a := mustTake(ctx, t, s, l, "a")
	if err := s.Release(ctx, a); err != nil {
		t.Fatalf("Release: %v", err)
	}
	rel := a
	rel.Owner = ""
	rel.Counter++
	wantStored(ctx, t, s, rel)

	// Another worker takes the released lease straight away.
	b := mustTake(ctx, t, s, rel, "b")
	if b.Owner != "b" || b.OwnerSwitchesSinceCheckpoint != 2 {
		t.Fatalf("take after release: %+v", b)
	}
}

func testReleaseStale(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: "5"})
	a := mustTake(ctx, t, s, l, "a")
	b := mustTake(ctx, t, s, a, "b")
	err := s.Release(ctx, a)
	wantErr(t, "Release after the lease was stolen", err, lease.ErrLost)
	wantStored(ctx, t, s, b)
}

func testUpdateCheckpoint(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{"s0"}})
	a := mustTake(ctx, t, s, l, "a")
	if a.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("after take: %+v", a)
	}
	const seq = "49590338271490256608559692538361571095921575989136588898"
	c, err := s.UpdateCheckpoint(ctx, a, seq)
	if err != nil {
		t.Fatalf("UpdateCheckpoint: %v", err)
	}
	want := lease.Lease{Key: "s1", Owner: "a", Counter: a.Counter + 1, Checkpoint: seq, ParentShardIDs: []string{"s0"}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("UpdateCheckpoint returned %+v, want %+v", c, want)
	}
	wantStored(ctx, t, s, c)

	// A position inside a KPL aggregate is stored as the KCL does:
	// checkpoint SEQ, checkpointSubSequenceNumber SUB.
	c, err = s.UpdateCheckpoint(ctx, c, seq+":41")
	if err != nil {
		t.Fatalf("UpdateCheckpoint SEQ:SUB: %v", err)
	}
	if c.Checkpoint != seq || c.CheckpointSubSequence != 41 {
		t.Fatalf("UpdateCheckpoint %s:41 returned checkpoint %q sub %d, want %q sub 41", seq, c.Checkpoint, c.CheckpointSubSequence, seq)
	}
	wantStored(ctx, t, s, c)
	if _, err := s.UpdateCheckpoint(ctx, c, seq+":x"); err == nil || errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "not a decimal number") {
		t.Fatalf("UpdateCheckpoint with a malformed position: err = %v, want one saying what is wrong", err)
	}

	end, err := s.UpdateCheckpoint(ctx, c, lease.CheckpointShardEnd)
	if err != nil {
		t.Fatalf("UpdateCheckpoint SHARD_END: %v", err)
	}
	if !end.Finished() || end.CheckpointSubSequence != 0 {
		t.Fatalf("lease with SHARD_END is not Finished (sub-sequence 0): %+v", end)
	}
	wantStored(ctx, t, s, end)
	// A renew with the copy from the checkpoint works: the returned lease is
	// current.
	if _, err := s.Renew(ctx, end); err != nil {
		t.Fatalf("Renew after UpdateCheckpoint: %v", err)
	}
}

func testUpdateCheckpointStale(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: "1"})
	a := mustTake(ctx, t, s, l, "a")
	b := mustTake(ctx, t, s, a, "b")
	_, err := s.UpdateCheckpoint(ctx, a, "2")
	wantErr(t, "UpdateCheckpoint after the lease was stolen", err, lease.ErrLost)
	wantStored(ctx, t, s, b)
	if _, err := s.UpdateCheckpoint(ctx, b, ""); err == nil || errors.Is(err, lease.ErrLost) {
		t.Fatalf("UpdateCheckpoint with an empty checkpoint: err = %v, want a non-sentinel error", err)
	}
}

func testDelete(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointShardEnd})
	mustCreate(ctx, t, s, lease.Lease{Key: "s2", Checkpoint: lease.CheckpointTrimHorizon})
	if err := s.Delete(ctx, l); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "s1"); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, l); err != nil {
		t.Fatalf("Delete of an absent lease: %v, want nil", err)
	}
	got, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != 1 || got[0].Key != "s2" {
		t.Fatalf("List after Delete = %+v, want only s2", got)
	}
}

func testDeleteStale(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	a := mustTake(ctx, t, s, l, "a")
	err := s.Delete(ctx, l)
	wantErr(t, "Delete with a stale counter", err, lease.ErrLost)
	wantStored(ctx, t, s, a)
}

func testHolderWritesNeedOwner(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	if _, err := s.Renew(ctx, l); err == nil {
		t.Fatalf("Renew of an unowned lease succeeded")
	}
	if err := s.Release(ctx, l); err == nil {
		t.Fatalf("Release of an unowned lease succeeded")
	}
	if _, err := s.UpdateCheckpoint(ctx, l, "3"); err == nil {
		t.Fatalf("UpdateCheckpoint of an unowned lease succeeded")
	}
	if _, err := s.Take(ctx, l, ""); err == nil {
		t.Fatalf("Take for an empty owner succeeded")
	}
	wantStored(ctx, t, s, l)
}

func testConcurrentTake(ctx context.Context, t *testing.T, s lease.Store) {
	l := mustCreate(ctx, t, s, lease.Lease{Key: "s1", Checkpoint: lease.CheckpointTrimHorizon})
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Take(ctx, l, fmt.Sprintf("w%d", i))
			errs <- err
		}()
	}
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case errors.Is(err, lease.ErrHeld):
		default:
			t.Errorf("concurrent Take: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent takes won, want exactly 1", won)
	}
	if got := mustGet(ctx, t, s, "s1"); got.Counter != 1 || got.Owner == "" {
		t.Fatalf("after concurrent takes: %+v", got)
	}
}
