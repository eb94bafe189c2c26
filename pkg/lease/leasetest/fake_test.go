package leasetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

func TestFakeStoreConformance(t *testing.T) {
	leasetest.Run(t, func(*testing.T) lease.Store { return leasetest.NewFakeStore() })
}

func TestFakeStoreInjection(t *testing.T) {
	ctx := t.Context()
	s := leasetest.NewFakeStore()
	if err := s.Create(ctx, lease.Lease{Key: "s1"}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Take(ctx, lease.Lease{Key: "s1"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")

	// FailNext: nothing written.
	s.FailNext("Renew", boom)
	if _, err := s.Renew(ctx, l); !errors.Is(err, boom) {
		t.Fatalf("Renew err = %v, want injected", err)
	}
	if got, _ := s.Get(ctx, "s1"); got.Counter != l.Counter {
		t.Fatalf("FailNext wrote: counter %d, want %d", got.Counter, l.Counter)
	}

	// FailNextAfterWrite: written, error returned.
	s.FailNextAfterWrite("Renew", boom)
	if _, err := s.Renew(ctx, l); !errors.Is(err, boom) {
		t.Fatalf("Renew err = %v, want injected", err)
	}
	if got, _ := s.Get(ctx, "s1"); got.Counter != l.Counter+1 {
		t.Fatalf("FailNextAfterWrite did not write: counter %d, want %d", got.Counter, l.Counter+1)
	}
	// The queue is drained: the stale copy now gets the conflict.
	if _, err := s.Renew(ctx, l); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("Renew with stale copy: err = %v, want ErrLost", err)
	}
	if n := s.Calls("Renew"); n != 3 {
		t.Fatalf("Calls(Renew) = %d, want 3", n)
	}

	// A cancelled context fails every call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with cancelled ctx: err = %v", err)
	}
}
