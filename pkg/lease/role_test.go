package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

// candidate is a Role running in the test's bubble (or in real time).
type candidate struct {
	id     string
	r      *lease.Role
	cancel context.CancelFunc
	done   chan error
	start  time.Time

	stopOnce sync.Once

	mu     sync.Mutex
	events []event // kind "elected" or "lost"
}

func startCandidate(t *testing.T, store lease.Store, id string, opts ...func(*lease.RoleConfig)) *candidate {
	t.Helper()
	c := &candidate{id: id, done: make(chan error, 1), start: testStart(t)}
	cfg := lease.RoleConfig{
		Name:          lease.RoleMaintainer,
		WorkerID:      id,
		FailoverTime:  failover,
		RenewInterval: renew,
		OnElected:     func() { c.record("elected") },
		OnLost:        func() { c.record("lost") },
	}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := lease.NewRole(cfg, store)
	if err != nil {
		t.Fatalf("NewRole(%s): %v", id, err)
	}
	c.r = r
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- r.Run(ctx) }()
	t.Cleanup(c.stop)
	return c
}

func (c *candidate) record(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, event{at: time.Since(c.start), kind: kind})
}

func (c *candidate) eventsOf(kind string) []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event
	for _, e := range c.events {
		if e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// stop cancels Run (which releases the role) and waits for it; idempotent.
func (c *candidate) stop() {
	c.stopOnce.Do(func() {
		c.cancel()
		if err := <-c.done; err != nil {
			panic(fmt.Sprintf("Run(%s) returned %v", c.id, err))
		}
	})
}

// roleOwner reads the role lease's owner from the store.
func roleOwner(t *testing.T, store lease.Store) string {
	t.Helper()
	l, err := store.Get(context.Background(), lease.RoleKey(lease.RoleMaintainer))
	if err != nil {
		t.Fatalf("get role lease: %v", err)
	}
	return l.Owner
}

// holders returns the ids of the candidates that say they hold the role.
func holders(cs ...*candidate) []string {
	var out []string
	for _, c := range cs {
		if c.r.IsHolder() {
			out = append(out, c.id)
		}
	}
	return out
}

// partition is one worker's view of the store; once cut, every call hangs
// until its context ends: a live worker that cannot reach the table.
type partition struct {
	lease.Store
	cut atomic.Bool
}

func (p *partition) wait(ctx context.Context) error {
	if !p.cut.Load() {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (p *partition) Get(ctx context.Context, key string) (lease.Lease, error) {
	if err := p.wait(ctx); err != nil {
		return lease.Lease{}, err
	}
	return p.Store.Get(ctx, key)
}

func (p *partition) Create(ctx context.Context, l lease.Lease) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	return p.Store.Create(ctx, l)
}

func (p *partition) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := p.wait(ctx); err != nil {
		return lease.Lease{}, err
	}
	return p.Store.Renew(ctx, l)
}

func (p *partition) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	if err := p.wait(ctx); err != nil {
		return lease.Lease{}, err
	}
	return p.Store.Take(ctx, l, owner)
}

func (p *partition) Release(ctx context.Context, l lease.Lease) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	return p.Store.Release(ctx, l)
}

func TestRoleKeys(t *testing.T) {
	if got := lease.RoleKey(lease.RoleMaintainer); got != "role#maintainer" {
		t.Errorf("RoleKey(maintainer) = %q", got)
	}
	for key, want := range map[string]bool{"role#maintainer": true, "shardId-000000000000": false, "": false, "role": false} {
		if got := lease.IsRoleKey(key); got != want {
			t.Errorf("IsRoleKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestRoleTwoWorkersOneHolder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		// Both start at the same instant: both find no role lease, both
		// create it, both try to take it.
		a := startCandidate(t, store, "a")
		b := startCandidate(t, store, "b")
		for i := range 30 {
			sleepUntil(t, time.Duration(i)*renew+renew/2)
			got := holders(a, b)
			if len(got) != 1 {
				t.Fatalf("round %d: holders %v, want exactly one", i, got)
			}
			if owner := roleOwner(t, store); owner != got[0] {
				t.Fatalf("round %d: %s holds the role but the store says %q", i, got[0], owner)
			}
		}
		if n := len(a.eventsOf("elected")) + len(b.eventsOf("elected")); n != 1 {
			t.Errorf("%d elections, want 1 (a: %v, b: %v)", n, a.events, b.events)
		}
	})
}

// killable records each owner's last renewal and, once an owner is
// killed, fails its writes: a process killed with -9 writes nothing more,
// not even the release at the end of its Run.
type killable struct {
	lease.Store
	mu   sync.Mutex
	last map[string]time.Time
	dead string
}

var errKilled = errors.New("process killed")

func (k *killable) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	k.mu.Lock()
	dead := l.Owner == k.dead
	k.mu.Unlock()
	if dead {
		return lease.Lease{}, errKilled
	}
	nl, err := k.Store.Renew(ctx, l)
	if err == nil {
		k.mu.Lock()
		k.last[l.Owner] = time.Now()
		k.mu.Unlock()
	}
	return nl, err
}

func (k *killable) Release(ctx context.Context, l lease.Lease) error {
	k.mu.Lock()
	dead := l.Owner == k.dead
	k.mu.Unlock()
	if dead {
		return errKilled
	}
	return k.Store.Release(ctx, l)
}

// kill stops c's Run as kill -9 would: nothing it writes applies any more.
func (k *killable) kill(c *candidate) time.Time {
	k.mu.Lock()
	k.dead = c.id
	last := k.last[c.id]
	k.mu.Unlock()
	c.stop()
	return last
}

func TestRoleDeadHolderReplacedAfterFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &killable{Store: leasetest.NewFakeStore(), last: map[string]time.Time{}}
		a := startCandidate(t, store, "a")
		sleepUntil(t, renew/3) // b's rounds run a third of a round after a's
		b := startCandidate(t, store, "b")
		sleepUntil(t, 5*renew)
		if got := holders(a, b); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("holders %v, want [a]", got)
		}
		lastRenew := store.kill(a)
		if owner := roleOwner(t, store); owner != "a" {
			t.Fatalf("after the kill the store says owner %q, want a (nothing released)", owner)
		}

		// Not before the failover time has passed on b's clock.
		time.Sleep(time.Until(lastRenew.Add(failover)) - time.Millisecond)
		synctest.Wait()
		if b.r.IsHolder() || len(b.eventsOf("elected")) != 0 {
			t.Fatalf("b took the role %v after a's last renewal, before the failover time", failover-time.Millisecond)
		}
		time.Sleep(time.Until(lastRenew.Add(failover + 2*renew)))
		synctest.Wait()
		if !b.r.IsHolder() {
			t.Fatalf("failover+2*renew after a's last renewal, b does not hold the role")
		}
		if owner := roleOwner(t, store); owner != "b" {
			t.Fatalf("store says owner %q, want b", owner)
		}
		el := b.eventsOf("elected")
		if len(el) != 1 || testStart(t).Add(el[0].at).Before(lastRenew.Add(failover)) {
			t.Errorf("b elections %v, want one, no earlier than the failover time after a's last renewal", el)
		}
	})
}

func TestRoleGracefulStopHandsOverAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		a := startCandidate(t, store, "a")
		sleepUntil(t, renew/3)
		b := startCandidate(t, store, "b")
		sleepUntil(t, 5*renew)
		if got := holders(a, b); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("holders %v, want [a]", got)
		}
		a.stop()
		stopped := time.Now()
		if a.r.IsHolder() {
			t.Fatal("a still says it holds the role after Run returned")
		}
		if got := a.eventsOf("lost"); len(got) != 1 {
			t.Fatalf("a lost events %v, want one (the release)", got)
		}
		if owner := roleOwner(t, store); owner != "" {
			t.Fatalf("after a stopped the store says owner %q, want none (released)", owner)
		}
		time.Sleep(renew)
		synctest.Wait()
		el := b.eventsOf("elected")
		if len(el) != 1 || testStart(t).Add(el[0].at).Sub(stopped) > renew {
			t.Fatalf("b elections %v, want one within %v of a's stop at %v", el, renew, stopped.Sub(testStart(t)))
		}
		if !b.r.IsHolder() || roleOwner(t, store) != "b" {
			t.Fatalf("b holds: %v, store owner %q; want b", b.r.IsHolder(), roleOwner(t, store))
		}
	})
}

func TestRoleGivesUpWhenItCannotRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		aView := &partition{Store: store}
		a := startCandidate(t, aView, "a") // takes at 0
		sleepUntil(t, renew/3)
		b := startCandidate(t, store, "b")
		sleepUntil(t, renew/2)
		if !a.r.IsHolder() {
			t.Fatal("a does not hold the role")
		}
		// From now on a's calls hang until their timeout: its renewal at
		// 1×renew fails at 2×renew; the next would come too late (its last
		// write was the take at 0), so a gives up at 2×renew, before b may
		// take the role (failover after it first saw a's counter).
		aView.cut.Store(true)
		for at := renew / 2; at < 6*renew; at += renew / 4 {
			sleepUntil(t, at)
			if got := holders(a, b); len(got) > 1 {
				t.Fatalf("at %v both hold the role: %v", at, got)
			}
		}
		lost := a.eventsOf("lost")
		if len(lost) != 1 || lost[0].at != 2*renew {
			t.Errorf("a lost events %v, want one at %v", lost, 2*renew)
		}
		el := b.eventsOf("elected")
		if len(el) != 1 || el[0].at < failover {
			t.Errorf("b elections %v, want one after %v", el, failover)
		}
		if !b.r.IsHolder() {
			t.Errorf("b does not hold the role after a could not renew it")
		}
	})
}

func TestRoleIgnoredByShardBalancingAndSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		leases := shards(2)
		createLeases(t, store, leases...)
		// x holds the role and no shard: it must not count as a worker
		// (a would then stop at 1 shard) nor have its role stolen.
		x := startCandidate(t, store, "x")
		sleepUntil(t, renew/3)
		a := startWorker(t, store, "a")
		sleepUntil(t, 10*renew)
		if got := a.c.Held(); !slices.Equal(got, keys(leases)) {
			t.Fatalf("a holds %v, want both shards (the role holder is not a shard worker)", got)
		}
		if !x.r.IsHolder() || roleOwner(t, store) != "x" {
			t.Fatalf("the role moved: x holds %v, owner %q", x.r.IsHolder(), roleOwner(t, store))
		}
		// Sync neither deletes the role lease nor creates anything for it.
		lister := shardList{shards: []lease.Shard{{ID: leases[0].Key}, {ID: leases[1].Key}}}
		if err := lease.Sync(context.Background(), lister, store, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Get(context.Background(), lease.RoleKey(lease.RoleMaintainer)); err != nil {
			t.Fatalf("role lease after Sync: %v", err)
		}
	})
}

func TestRoleConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lease.RoleConfig
		ok   bool
	}{
		{"defaults", lease.RoleConfig{Name: "maintainer", WorkerID: "w"}, true},
		{"no name", lease.RoleConfig{WorkerID: "w"}, false},
		{"no worker", lease.RoleConfig{Name: "maintainer"}, false},
		{"renew too slow", lease.RoleConfig{Name: "maintainer", WorkerID: "w", FailoverTime: time.Second, RenewInterval: 500 * time.Millisecond}, false},
		{"negative failover", lease.RoleConfig{Name: "maintainer", WorkerID: "w", FailoverTime: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if _, nerr := lease.NewRole(tc.cfg, leasetest.NewFakeStore()); (nerr == nil) != tc.ok {
				t.Fatalf("NewRole() = %v, want ok=%v", nerr, tc.ok)
			}
		})
	}
	if _, err := lease.NewRole(lease.RoleConfig{Name: "m", WorkerID: "w"}, nil); err == nil {
		t.Error("NewRole with a nil store: want an error")
	}
}
