package lease_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/lease"
)

func newStageStore(t *testing.T) *lease.DynamoStore {
	t.Helper()
	client := newDynamoClient(t, testenv.Moto(t))
	s, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: fmt.Sprintf("stage-%d", time.Now().UnixNano()), CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// ownLease creates shard's lease owned by owner.
func ownLease(t *testing.T, s *lease.DynamoStore, shard, owner string) lease.Lease {
	t.Helper()
	ctx := t.Context()
	if err := s.Create(ctx, lease.Lease{Key: shard}); err != nil && !errors.Is(err, lease.ErrExists) {
		t.Fatal(err)
	}
	l, err := s.Get(ctx, shard)
	if err != nil {
		t.Fatal(err)
	}
	l, err = s.Take(ctx, l, owner)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func staged(id, worker string, shards ...string) lease.Staged {
	return lease.Staged{
		CommitID: id, Worker: worker, Shards: shards,
		StagedAt: time.UnixMilli(time.Now().UnixMilli()), Payload: []byte{1, 2, 3},
	}
}

func TestStageRoundTripAndLifecycle(t *testing.T) {
	s := newStageStore(t)
	ctx := t.Context()
	ownLease(t, s, "shard-1", "w1")
	ownLease(t, s, "shard-2", "w1")
	st := staged("c1", "w1", "shard-1", "shard-2")
	if err := s.Stage(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetStaged(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	st.State = lease.StateStaged
	if !reflect.DeepEqual(got, st) {
		t.Errorf("GetStaged = %+v, want %+v", got, st)
	}
	// Staging c1 again is what a resend of the same call does: it is
	// staged, and nothing is written over it.
	if err := s.Stage(ctx, st); err != nil {
		t.Errorf("staging c1 twice: %v, want nil (it is staged)", err)
	}
	if again, err := s.GetStaged(ctx, "c1"); err != nil || !reflect.DeepEqual(again, st) {
		t.Errorf("after staging c1 twice: %+v, %v; want %+v", again, err, st)
	}
	// Coordinator and Sync see no shard in a staged item: it is a role key.
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.Key != "shard-1" && l.Key != "shard-2" && !lease.IsRoleKey(l.Key) {
			t.Errorf("lease table item %q is neither a shard nor a role key", l.Key)
		}
	}
	if err := s.DeleteStaged(ctx, "c1"); !errors.Is(err, lease.ErrNotStaged) {
		t.Errorf("delete of a batch still staged: %v, want refused", err)
	}
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := s.SettleStaged(ctx, "c1", lease.StateCommitted, 42, "", at); err != nil {
		t.Fatal(err)
	}
	if err := s.SettleStaged(ctx, "c1", lease.StateRefused, 0, "late", at); !errors.Is(err, lease.ErrNotStaged) {
		t.Errorf("settling twice: %v, want ErrNotStaged", err)
	}
	list, err := s.ListStaged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != lease.StateCommitted || list[0].SnapshotID != 42 || !list[0].SettledAt.Equal(at) {
		t.Errorf("ListStaged = %+v, want c1 committed in 42 at %v", list, at)
	}
	if err := s.DeleteStaged(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteStaged(ctx, "c1"); err != nil {
		t.Errorf("deleting an absent batch: %v, want success", err)
	}
	if _, err := s.GetStaged(ctx, "c1"); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("GetStaged after delete: %v, want ErrNotFound", err)
	}
}

// A zombie, whose lease another worker took, cannot stage.
func TestStageRefusedWithoutTheLease(t *testing.T) {
	s := newStageStore(t)
	ctx := t.Context()
	ownLease(t, s, "shard-1", "w1")
	ownLease(t, s, "shard-2", "w1")
	// Positive signal first: w1 stages while it holds both leases.
	if err := s.Stage(ctx, staged("ok", "w1", "shard-1", "shard-2")); err != nil {
		t.Fatalf("owner's staging refused: %v", err)
	}
	l, err := s.Get(ctx, "shard-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, l, "w2"); err != nil {
		t.Fatal(err)
	}

	err = s.Stage(ctx, staged("zombie", "w1", "shard-1", "shard-2"))
	if !errors.Is(err, lease.ErrLost) {
		t.Fatalf("zombie's staging: %v, want ErrLost", err)
	}
	if _, err := s.GetStaged(ctx, "zombie"); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("zombie's batch: %v, want not staged at all", err)
	}
	if err := s.Stage(ctx, staged("new-owner", "w2", "shard-2")); err != nil {
		t.Errorf("new owner's staging refused: %v", err)
	}
	if err := s.Stage(context.WithoutCancel(ctx), staged("absent", "w1", "shard-9")); !errors.Is(err, lease.ErrLost) {
		t.Errorf("staging for a shard with no lease: %v, want ErrLost", err)
	}
}

// The SDK resends a TransactWriteItems whose first attempt applied but
// whose answer was lost (a 500 after apply, a reset). AWS answers the
// resend from its idempotency token; an emulator without it, or a resend
// after the token expired, fails the Put's attribute_not_exists condition
// on the item the first attempt wrote. That batch is staged: taking it
// for a lost lease made the worker delete the files the committer then
// committed (found by a fault-injection trial in commit mode single).
func TestStageResentAfterItAppliedIsStaged(t *testing.T) {
	s := newStageStore(t)
	ctx := t.Context()
	ownLease(t, s, "shard-1", "w1")
	st := staged("resent", "w1", "shard-1")
	if err := s.Stage(ctx, st); err != nil {
		t.Fatalf("first staging: %v", err)
	}
	if err := s.Stage(ctx, st); err != nil {
		t.Fatalf("the same batch staged again: %v, want nil (it is staged)", err)
	}
	got, err := s.GetStaged(ctx, "resent")
	if err != nil || got.State != lease.StateStaged || got.Worker != "w1" {
		t.Fatalf("staged item %+v, %v; want w1's batch, staged", got, err)
	}
	// Even once the lease has moved on: the item was written while w1
	// held it, and the committer decides on it.
	l, err := s.Get(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Take(ctx, l, "w2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stage(ctx, st); err != nil {
		t.Errorf("resent after the lease moved: %v, want nil (staged before it moved)", err)
	}
}
