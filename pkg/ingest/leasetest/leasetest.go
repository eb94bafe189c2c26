// Package leasetest is the conformance suite for ingest.LeaseStore. Every
// implementation runs it from its own test:
//
//	leasetest.Run(t, func(t *testing.T) ingest.LeaseStore { return newStore(t) })
//
// newStore must return an empty store (a fresh table) that is allowed to
// create its table; Run calls EnsureTable itself. Subtests do not run in
// parallel.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/paystream/paystream/pkg/ingest"
)

// Run runs the conformance suite against stores made by newStore, one fresh
// store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) ingest.LeaseStore) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, s ingest.LeaseStore)
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
			tc.fn(t, ctx, s)
		})
	}
}

func mustCreate(t *testing.T, ctx context.Context, s ingest.LeaseStore, l ingest.Lease) ingest.Lease {
	t.Helper()
	if err := s.Create(ctx, l); err != nil {
		t.Fatalf("Create(%s): %v", l.Key, err)
	}
	return mustGet(t, ctx, s, l.Key)
}

func mustGet(t *testing.T, ctx context.Context, s ingest.LeaseStore, key string) ingest.Lease {
	t.Helper()
	l, err := s.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return l
}

func mustTake(t *testing.T, ctx context.Context, s ingest.LeaseStore, l ingest.Lease, owner string) ingest.Lease {
	t.Helper()
	got, err := s.Take(ctx, l, owner)
	if err != nil {
		t.Fatalf("Take(%s, %s): %v", l.Key, owner, err)
	}
	return got
}

// wantStored checks that the store holds want, and that the lease a write
// returned equals what a read returns.
func wantStored(t *testing.T, ctx context.Context, s ingest.LeaseStore, want ingest.Lease) {
	t.Helper()
	got := mustGet(t, ctx, s, want.Key)
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

func testEnsureTable(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
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

func testCreateRoundTrips(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	leases := []ingest.Lease{
		{Key: "shardId-000000000000", Checkpoint: ingest.CheckpointTrimHorizon,
			ChildShardIDs: []string{"shardId-000000000003", "shardId-000000000002"}},
		{Key: "shardId-000000000002", Checkpoint: ingest.CheckpointTrimHorizon,
			ParentShardIDs: []string{"shardId-000000000000"}},
		{Key: "shardId-000000000003", Owner: "w1", Counter: 7, OwnerSwitchesSinceCheckpoint: 2,
			Checkpoint: "49590338271490256608559692538361571095921575989136588898"},
	}
	for _, l := range leases {
		mustCreate(t, ctx, s, l)
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
		wantStored(t, ctx, s, l)
	}
}

func testCreateExisting(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	orig := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
	err := s.Create(ctx, ingest.Lease{Key: "s1", Owner: "intruder", Counter: 99, Checkpoint: "5"})
	wantErr(t, "second Create", err, ingest.ErrLeaseExists)
	wantStored(t, ctx, s, orig)
}

func testGetMissing(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	_, err := s.Get(ctx, "nope")
	wantErr(t, "Get of a missing lease", err, ingest.ErrLeaseNotFound)
}

func testListMany(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	const n = 25
	var want []string
	for i := n - 1; i >= 0; i-- {
		mustCreate(t, ctx, s, ingest.Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: ingest.CheckpointTrimHorizon})
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

func testTake(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: "42", ParentShardIDs: []string{"s0"}})
	a := mustTake(t, ctx, s, l, "a")
	want := ingest.Lease{Key: "s1", Owner: "a", Counter: 1, Checkpoint: "42",
		OwnerSwitchesSinceCheckpoint: 1, ParentShardIDs: []string{"s0"}}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("Take returned %+v, want %+v", a, want)
	}
	wantStored(t, ctx, s, a)

	// Taking one's own lease again does not count as an owner switch.
	a2 := mustTake(t, ctx, s, a, "a")
	if a2.Counter != 2 || a2.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("re-take by the owner: %+v, want counter 2, switches 1", a2)
	}
	wantStored(t, ctx, s, a2)

	// Stealing: another worker takes it with the current counter.
	b := mustTake(t, ctx, s, a2, "b")
	if b.Owner != "b" || b.Counter != 3 || b.OwnerSwitchesSinceCheckpoint != 2 {
		t.Fatalf("steal: %+v, want owner b, counter 3, switches 2", b)
	}
	wantStored(t, ctx, s, b)
}

func testTakeStale(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
	a := mustTake(t, ctx, s, l, "a")
	_, err := s.Take(ctx, l, "b") // counter 0 is stale
	wantErr(t, "Take with a stale counter", err, ingest.ErrLeaseHeld)
	wantStored(t, ctx, s, a)

	_, err = s.Take(ctx, ingest.Lease{Key: "missing"}, "b")
	wantErr(t, "Take of a missing lease", err, ingest.ErrLeaseHeld)
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ingest.ErrLeaseNotFound) {
		t.Fatalf("Take of a missing lease created it: Get err = %v", err)
	}
}

func testRenew(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: "9"})
	a := mustTake(t, ctx, s, l, "a")
	for i := range 3 {
		r, err := s.Renew(ctx, a)
		if err != nil {
			t.Fatalf("Renew %d: %v", i, err)
		}
		if r.Counter != a.Counter+1 || r.Owner != "a" || r.Checkpoint != "9" {
			t.Fatalf("Renew returned %+v after %+v", r, a)
		}
		wantStored(t, ctx, s, r)
		a = r
	}
}

func testRenewStale(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
	a := mustTake(t, ctx, s, l, "a")
	a2, err := s.Renew(ctx, a)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	_, err = s.Renew(ctx, a) // counter behind by one
	wantErr(t, "Renew with a stale counter", err, ingest.ErrLeaseLost)
	wantStored(t, ctx, s, a2)

	b := mustTake(t, ctx, s, a2, "b")
	_, err = s.Renew(ctx, a2)
	wantErr(t, "Renew after another worker took the lease", err, ingest.ErrLeaseLost)
	// Right counter, wrong owner: still lost.
	forged := b
	forged.Owner = "a"
	_, err = s.Renew(ctx, forged)
	wantErr(t, "Renew by a non-owner with the current counter", err, ingest.ErrLeaseLost)
	wantStored(t, ctx, s, b)

	_, err = s.Renew(ctx, ingest.Lease{Key: "missing", Owner: "a"})
	wantErr(t, "Renew of a missing lease", err, ingest.ErrLeaseLost)
}

func testRelease(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: "5"})
	a := mustTake(t, ctx, s, l, "a")
	if err := s.Release(ctx, a); err != nil {
		t.Fatalf("Release: %v", err)
	}
	rel := a
	rel.Owner = ""
	rel.Counter++
	wantStored(t, ctx, s, rel)

	// Another worker takes the released lease straight away.
	b := mustTake(t, ctx, s, rel, "b")
	if b.Owner != "b" || b.OwnerSwitchesSinceCheckpoint != 2 {
		t.Fatalf("take after release: %+v", b)
	}
}

func testReleaseStale(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: "5"})
	a := mustTake(t, ctx, s, l, "a")
	b := mustTake(t, ctx, s, a, "b")
	err := s.Release(ctx, a)
	wantErr(t, "Release after the lease was stolen", err, ingest.ErrLeaseLost)
	wantStored(t, ctx, s, b)
}

func testUpdateCheckpoint(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon, ParentShardIDs: []string{"s0"}})
	a := mustTake(t, ctx, s, l, "a")
	if a.OwnerSwitchesSinceCheckpoint != 1 {
		t.Fatalf("after take: %+v", a)
	}
	const seq = "49590338271490256608559692538361571095921575989136588898"
	c, err := s.UpdateCheckpoint(ctx, a, seq)
	if err != nil {
		t.Fatalf("UpdateCheckpoint: %v", err)
	}
	want := ingest.Lease{Key: "s1", Owner: "a", Counter: a.Counter + 1, Checkpoint: seq, ParentShardIDs: []string{"s0"}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("UpdateCheckpoint returned %+v, want %+v", c, want)
	}
	wantStored(t, ctx, s, c)

	end, err := s.UpdateCheckpoint(ctx, c, ingest.CheckpointShardEnd)
	if err != nil {
		t.Fatalf("UpdateCheckpoint SHARD_END: %v", err)
	}
	if !end.Finished() {
		t.Fatalf("lease with SHARD_END is not Finished: %+v", end)
	}
	wantStored(t, ctx, s, end)
	// A renew with the copy from the checkpoint works: the returned lease is
	// current.
	if _, err := s.Renew(ctx, end); err != nil {
		t.Fatalf("Renew after UpdateCheckpoint: %v", err)
	}
}

func testUpdateCheckpointStale(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: "1"})
	a := mustTake(t, ctx, s, l, "a")
	b := mustTake(t, ctx, s, a, "b")
	_, err := s.UpdateCheckpoint(ctx, a, "2")
	wantErr(t, "UpdateCheckpoint after the lease was stolen", err, ingest.ErrLeaseLost)
	wantStored(t, ctx, s, b)
	if _, err := s.UpdateCheckpoint(ctx, b, ""); err == nil || errors.Is(err, ingest.ErrLeaseLost) {
		t.Fatalf("UpdateCheckpoint with an empty checkpoint: err = %v, want a non-sentinel error", err)
	}
}

func testDelete(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointShardEnd})
	mustCreate(t, ctx, s, ingest.Lease{Key: "s2", Checkpoint: ingest.CheckpointTrimHorizon})
	if err := s.Delete(ctx, l); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, "s1"); !errors.Is(err, ingest.ErrLeaseNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrLeaseNotFound", err)
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

func testDeleteStale(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
	a := mustTake(t, ctx, s, l, "a")
	err := s.Delete(ctx, l)
	wantErr(t, "Delete with a stale counter", err, ingest.ErrLeaseLost)
	wantStored(t, ctx, s, a)
}

func testHolderWritesNeedOwner(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
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
	wantStored(t, ctx, s, l)
}

func testConcurrentTake(t *testing.T, ctx context.Context, s ingest.LeaseStore) {
	l := mustCreate(t, ctx, s, ingest.Lease{Key: "s1", Checkpoint: ingest.CheckpointTrimHorizon})
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
		case errors.Is(err, ingest.ErrLeaseHeld):
		default:
			t.Errorf("concurrent Take: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent takes won, want exactly 1", won)
	}
	if got := mustGet(t, ctx, s, "s1"); got.Counter != 1 || got.Owner == "" {
		t.Fatalf("after concurrent takes: %+v", got)
	}
}
