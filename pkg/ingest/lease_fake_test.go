package ingest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/ingest/leasetest"
)

func TestFakeLeaseStoreConformance(t *testing.T) {
	leasetest.Run(t, func(*testing.T) ingest.LeaseStore { return ingest.NewFakeLeaseStore() })
}

func TestFakeLeaseStoreInjection(t *testing.T) {
	ctx := t.Context()
	s := ingest.NewFakeLeaseStore()
	if err := s.Create(ctx, ingest.Lease{Key: "s1"}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Take(ctx, ingest.Lease{Key: "s1"}, "a")
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
	if _, err := s.Renew(ctx, l); !errors.Is(err, ingest.ErrLeaseLost) {
		t.Fatalf("Renew with stale copy: err = %v, want ErrLeaseLost", err)
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
