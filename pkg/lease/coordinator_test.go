package lease_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

// Timing used by the coordinator tests. Inside a synctest bubble time is
// fake: the tests take milliseconds.
const (
	failover = 9 * time.Second
	renew    = 3 * time.Second
)

// event is one callback, with the bubble's time since the test started.
type event struct {
	at    time.Duration
	kind  string // "acquire" or "lost"
	shard string
}

// worker is a Coordinator running in the test's bubble.
type worker struct {
	id     string
	c      *lease.Coordinator
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	start  time.Time

	stopOnce sync.Once

	mu     sync.Mutex
	events []event
}

type workerOpt func(*lease.CoordinatorConfig)

func startWorker(t *testing.T, store lease.Store, id string, opts ...workerOpt) *worker {
	t.Helper()
	w := &worker{id: id, reg: prometheus.NewRegistry(), done: make(chan error, 1), start: testStart(t)}
	cfg := lease.CoordinatorConfig{
		WorkerID:      id,
		FailoverTime:  failover,
		RenewInterval: renew,
		Registerer:    w.reg,
		OnAcquire:     func(l lease.Lease) { w.record("acquire", l.Key) },
		OnLost:        func(shard string) { w.record("lost", shard) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := lease.NewCoordinator(cfg, store)
	if err != nil {
		t.Fatalf("NewCoordinator(%s): %v", id, err)
	}
	w.c = c
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- c.Run(ctx) }()
	t.Cleanup(w.stop)
	return w
}

var starts sync.Map // *testing.T -> time.Time

// testStart is the bubble time at which the test began.
func testStart(t *testing.T) time.Time {
	v, _ := starts.LoadOrStore(t, time.Now())
	return v.(time.Time)
}

func (w *worker) record(kind, shard string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, event{at: time.Since(w.start), kind: kind, shard: shard})
}

func (w *worker) eventsOf(kind string) []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []event
	for _, e := range w.events {
		if e.kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// stop cancels Run and waits for it; idempotent.
func (w *worker) stop() {
	w.stopOnce.Do(func() {
		w.cancel()
		if err := <-w.done; err != nil {
			panic(fmt.Sprintf("Run(%s) returned %v", w.id, err))
		}
	})
}

func (w *worker) metric(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// sleepUntil sleeps until d after the test's start (fake time).
func sleepUntil(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(time.Until(testStart(t).Add(d)))
	synctest.Wait()
}

func createLeases(t *testing.T, store lease.Store, leases ...lease.Lease) {
	t.Helper()
	for _, l := range leases {
		if l.Checkpoint == "" {
			l.Checkpoint = lease.CheckpointTrimHorizon
		}
		if err := store.Create(context.Background(), l); err != nil {
			t.Fatal(err)
		}
	}
}

func shards(n int) []lease.Lease {
	var out []lease.Lease
	for i := range n {
		out = append(out, lease.Lease{Key: fmt.Sprintf("shardId-%012d", i)})
	}
	return out
}

// owners reads the store: shard -> owner.
func owners(t *testing.T, store lease.Store) map[string]string {
	t.Helper()
	ls, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range ls {
		out[l.Key] = l.Owner
	}
	return out
}

// checkDisjoint asserts that the workers' Held sets match the store and
// cover want exactly once.
func checkDisjoint(t *testing.T, store lease.Store, want []string, ws ...*worker) {
	t.Helper()
	byStore := owners(t, store)
	var all []string
	for _, w := range ws {
		for _, id := range w.c.Held() {
			all = append(all, id)
			if byStore[id] != w.id {
				t.Errorf("%s holds %s but the store says owner %q", w.id, id, byStore[id])
			}
		}
	}
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Errorf("held leases = %v, want each of %v exactly once", all, want)
	}
}

func keys(ls []lease.Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Key)
	}
	return out
}

func TestCoordinatorSpreadsSixLeasesOverThreeWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		leases := shards(6)
		createLeases(t, store, leases...)
		ws := []*worker{startWorker(t, store, "a"), startWorker(t, store, "b"), startWorker(t, store, "c")}

		// Racing for 6 free leases, then stealing at most one per round.
		sleepUntil(t, 10*renew)
		for _, w := range ws {
			if got := w.c.Held(); len(got) != 2 {
				t.Errorf("%s holds %v, want 2 leases", w.id, got)
			}
			if got := w.metric(t, "paystream_lease_held"); got != float64(len(w.c.Held())) {
				t.Errorf("%s paystream_lease_held = %v, want %d", w.id, got, len(w.c.Held()))
			}
		}
		checkDisjoint(t, store, keys(leases), ws...)

		// Stable: no more moves once balanced.
		var taken, lost float64
		for _, w := range ws {
			taken += w.metric(t, "paystream_lease_taken_total")
			lost += w.metric(t, "paystream_lease_lost_total")
		}
		sleepUntil(t, 40*renew)
		var taken2, lost2 float64
		for _, w := range ws {
			taken2 += w.metric(t, "paystream_lease_taken_total")
			lost2 += w.metric(t, "paystream_lease_lost_total")
		}
		if taken2 != taken || lost2 != lost {
			t.Errorf("leases kept moving after balance: taken %v -> %v, lost %v -> %v", taken, taken2, lost, lost2)
		}
		checkDisjoint(t, store, keys(leases), ws...)
	})
}

func TestCoordinatorNewcomerStealsAtMostMaxPerRound(t *testing.T) {
	for _, maxSteal := range []int{1, 2} {
		t.Run(fmt.Sprintf("max=%d", maxSteal), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := leasetest.NewFakeStore()
				leases := shards(8)
				createLeases(t, store, leases...)
				a := startWorker(t, store, "a")
				sleepUntil(t, renew/2)
				if got := len(a.c.Held()); got != 8 {
					t.Fatalf("lone worker holds %d leases, want all 8", got)
				}
				b := startWorker(t, store, "b", func(c *lease.CoordinatorConfig) { c.MaxLeasesToSteal = maxSteal })
				// b's rounds run at renew/2 + k*renew.
				for round := 1; round <= 6; round++ {
					sleepUntil(t, renew/2+time.Duration(round-1)*renew+time.Second)
					want := min(round*maxSteal, 4)
					if got := len(b.c.Held()); got != want {
						t.Fatalf("after round %d b holds %d leases, want %d", round, got, want)
					}
				}
				if got := b.metric(t, "paystream_lease_stolen_total"); got != 4 {
					t.Errorf("b stolen_total = %v, want 4", got)
				}
				sleepUntil(t, 20*renew)
				if got := len(a.eventsOf("lost")); got != 4 {
					t.Errorf("a reported %d losses, want 4", got)
				}
				checkDisjoint(t, store, keys(leases), a, b)
			})
		})
	}
}

func TestCoordinatorSevenLeasesThreeWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		leases := shards(7)
		createLeases(t, store, leases...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/3)
		b := startWorker(t, store, "b")
		sleepUntil(t, 10*renew)
		c := startWorker(t, store, "c")
		sleepUntil(t, 20*renew)
		var counts []int
		for _, w := range []*worker{a, b, c} {
			counts = append(counts, len(w.c.Held()))
		}
		slices.Sort(counts)
		// The fair share is 3; a worker two below it steals from one that is
		// at its share, so nobody is left at 1.
		if !slices.Equal(counts, []int{2, 2, 3}) {
			t.Fatalf("lease counts %v, want 2, 2, 3", counts)
		}
		checkDisjoint(t, store, keys(leases), a, b, c)
	})
}

// renewClock wraps a store to remember when each owner last renewed.
type renewClock struct {
	lease.Store
	mu   sync.Mutex
	last map[string]time.Time
}

func (r *renewClock) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	nl, err := r.Store.Renew(ctx, l)
	if err == nil {
		r.mu.Lock()
		r.last[l.Owner] = time.Now()
		r.mu.Unlock()
	}
	return nl, err
}

func TestCoordinatorTakesDeadWorkersLeasesAfterFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &renewClock{Store: leasetest.NewFakeStore(), last: map[string]time.Time{}}
		leases := shards(6)
		createLeases(t, store, leases...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/3) // b's rounds run a third of a round after a's
		b := startWorker(t, store, "b")
		sleepUntil(t, 10*renew)
		if len(a.c.Held()) != 3 || len(b.c.Held()) != 3 {
			t.Fatalf("before the kill: a holds %v, b holds %v; want 3 each", a.c.Held(), b.c.Held())
		}
		aLeases := a.c.Held()

		a.stop() // kill -9: no release, no more renewals
		store.mu.Lock()
		lastRenew := store.last["a"]
		store.mu.Unlock()
		deadline := lastRenew.Add(failover + 2*renew)

		// Not before the failover time has passed on b's clock.
		time.Sleep(time.Until(lastRenew.Add(failover)) - time.Millisecond)
		synctest.Wait()
		if got := b.c.Held(); len(got) != 3 {
			t.Fatalf("%v after a's last renewal, b holds %v: took leases before the failover time", failover-time.Millisecond, got)
		}
		time.Sleep(time.Until(deadline))
		synctest.Wait()
		if got := b.c.Held(); len(got) != 6 {
			t.Fatalf("failover+2*renew after a's last renewal, b holds %v, want all 6", got)
		}
		checkDisjoint(t, store, keys(leases), b)
		for _, e := range b.eventsOf("acquire") {
			if !slices.Contains(aLeases, e.shard) {
				continue
			}
			at := testStart(t).Add(e.at)
			if at.Before(lastRenew.Add(failover)) {
				t.Errorf("b acquired %s %v after a's last renewal, before the failover time", e.shard, at.Sub(lastRenew))
			}
		}
		if got := b.metric(t, "paystream_lease_stolen_total"); got != 3 {
			t.Errorf("b stolen_total = %v, want 3 (expired leases are taken, not stolen)", got)
		}
	})
}

func TestCoordinatorReleasedLeaseIsTakenAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/3)
		b := startWorker(t, store, "b")
		// One lease, two workers: b's fair share is 1, but stealing the
		// busiest worker's only lease would not even anything out.
		sleepUntil(t, 10*renew)
		if got := b.c.Held(); len(got) != 0 {
			t.Fatalf("b holds %v, want nothing (no steal from a worker at its share)", got)
		}

		a.c.Drain()
		releasedAt := time.Now()
		if err := a.c.Release(context.Background(), "shardId-000000000000"); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if got := a.c.Held(); len(got) != 0 {
			t.Fatalf("a still holds %v after Release", got)
		}
		time.Sleep(renew)
		synctest.Wait()
		if got := b.c.Held(); !slices.Equal(got, []string{"shardId-000000000000"}) {
			t.Fatalf("one round after release b holds %v, want the released lease", got)
		}
		acq := b.eventsOf("acquire")
		if len(acq) != 1 || testStart(t).Add(acq[0].at).Sub(releasedAt) > renew {
			t.Fatalf("b acquisitions %v, want one within %v of the release", acq, renew)
		}
		if len(a.eventsOf("lost")) != 0 {
			t.Errorf("release was reported as a loss: %v", a.eventsOf("lost"))
		}
		if err := a.c.Release(context.Background(), "shardId-000000000000"); err != nil {
			t.Errorf("second Release: %v, want nil", err)
		}
		sleepUntil(t, 30*renew)
		if got := a.c.Held(); len(got) != 0 {
			t.Errorf("draining a took %v", got)
		}
	})
}

func TestCoordinatorDrainedWorkerTakesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(2)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/2)
		a.c.Drain()
		if err := a.c.Release(context.Background(), "shardId-000000000000"); err != nil {
			t.Fatal(err)
		}
		createLeases(t, store, lease.Lease{Key: "new"})
		sleepUntil(t, 10*renew)
		if got := a.c.Held(); !slices.Equal(got, []string{"shardId-000000000001"}) {
			t.Fatalf("draining worker holds %v, want only the lease it kept", got)
		}
		if got := len(a.eventsOf("lost")); got != 0 {
			t.Fatalf("draining worker lost %d leases; it must keep renewing", got)
		}
	})
}

func TestCoordinatorReportsLostWhenCounterMoved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/2)
		const id = "shardId-000000000000"
		cur, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Take(ctx, cur, "intruder"); err != nil {
			t.Fatal(err)
		}
		stolenAt := time.Since(testStart(t))
		sleepUntil(t, renew+renew/2)
		lost := a.eventsOf("lost")
		if len(lost) != 1 || lost[0].shard != id {
			t.Fatalf("lost events %v, want one for %s", lost, id)
		}
		if got := a.c.Held(); len(got) != 0 {
			t.Fatalf("a holds %v after losing its lease", got)
		}
		if got := a.metric(t, "paystream_lease_lost_total"); got != 1 {
			t.Errorf("lost_total = %v, want 1", got)
		}
		if err := a.c.Checkpoint(ctx, id, "7"); !errors.Is(err, lease.ErrLost) {
			t.Errorf("Checkpoint on a lost lease: %v, want ErrLost", err)
		}
		// The intruder never renews: a takes the lease back once it has
		// expired on a's clock, not before.
		sleepUntil(t, 8*renew)
		acq := a.eventsOf("acquire")
		if len(acq) != 2 {
			t.Fatalf("acquisitions %v, want the first and one retake", acq)
		}
		if acq[1].at < stolenAt+failover {
			t.Errorf("retook the lease %v after the intruder took it, before the failover time", acq[1].at-stolenAt)
		}
		if got := owners(t, store)[id]; got != "a" {
			t.Errorf("owner = %q, want a", got)
		}
	})
}

func TestCoordinatorAdoptsRenewalWithUnknownOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/2)
		// The next renewal is applied but its answer is lost (a timeout):
		// the counter moved under a, which must not mistake that for a loss.
		store.FailNextAfterWrite("Renew", context.DeadlineExceeded)
		sleepUntil(t, 10*renew)
		if got := a.eventsOf("lost"); len(got) != 0 {
			t.Fatalf("lost events %v, want none", got)
		}
		if got := a.c.Held(); len(got) != 1 {
			t.Fatalf("a holds %v, want its lease", got)
		}
		if got := a.metric(t, "paystream_lease_renew_failures_total"); got != 1 {
			t.Errorf("renew_failures_total = %v, want 1", got)
		}
		if got := len(a.eventsOf("acquire")); got != 1 {
			t.Errorf("%d acquisitions, want 1 (no churn)", got)
		}
		// Renewals go on with the adopted counter: one per round.
		before, _ := store.Get(context.Background(), "shardId-000000000000")
		sleepUntil(t, 13*renew)
		after, _ := store.Get(context.Background(), "shardId-000000000000")
		if after.Counter-before.Counter != 3 {
			t.Errorf("counter moved by %d in 3 rounds, want 3", after.Counter-before.Counter)
		}
	})
}

func TestCoordinatorGivesUpLeaseItCannotRenew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a") // takes at 0, renews at 1×renew
		sleepUntil(t, renew+renew/2)
		outage := errors.New("service unavailable")
		for range 2 {
			store.FailNext("Renew", outage)
		}
		for range 3 {
			store.FailNext("List", outage)
		}
		// Renewals at 2×renew and 3×renew fail. After the second, the next
		// attempt would come at the failover time after the last good
		// renewal, too late: a gives up at 3×renew, before any other worker
		// may take the lease (1×renew + failover).
		sleepUntil(t, 3*renew+renew/2)
		lost := a.eventsOf("lost")
		if len(lost) != 1 || lost[0].at != 3*renew {
			t.Fatalf("lost events %v, want one at %v", lost, 3*renew)
		}
		if got := a.metric(t, "paystream_lease_renew_failures_total"); got != 2 {
			t.Errorf("renew_failures_total = %v, want 2", got)
		}
		// When the store is back, the lease (still recorded as a's) is taken
		// back at once.
		sleepUntil(t, 5*renew+renew/2)
		acq := a.eventsOf("acquire")
		if len(acq) != 2 || acq[1].at != 5*renew {
			t.Fatalf("acquisitions %v, want a retake at %v", acq, 5*renew)
		}
	})
}

func TestCoordinatorWaitsForParents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := leasetest.NewFakeStore()
		createLeases(t, store,
			lease.Lease{Key: "parent", ChildShardIDs: []string{"child"}},
			lease.Lease{Key: "child", ParentShardIDs: []string{"parent"}},
			lease.Lease{Key: "orphan", ParentShardIDs: []string{"cleaned-up"}}, // parent lease deleted
			lease.Lease{Key: "merged", ParentShardIDs: []string{"done", "parent"}},
			lease.Lease{Key: "done", Checkpoint: lease.CheckpointShardEnd},
		)
		a := startWorker(t, store, "a")
		sleepUntil(t, 5*renew)
		if got, want := a.c.Held(), []string{"orphan", "parent"}; !slices.Equal(got, want) {
			t.Fatalf("held %v, want %v (children of an unfinished parent and finished leases are not taken)", got, want)
		}
		// The parent's reader reaches the end, commits, and releases.
		if err := a.c.Checkpoint(ctx, "parent", lease.CheckpointShardEnd); err != nil {
			t.Fatal(err)
		}
		if err := a.c.Release(ctx, "parent"); err != nil {
			t.Fatal(err)
		}
		sleepUntil(t, 6*renew+time.Second)
		if got, want := a.c.Held(), []string{"child", "merged", "orphan"}; !slices.Equal(got, want) {
			t.Fatalf("held %v, want %v", got, want)
		}
		p, _ := store.Get(ctx, "parent")
		if p.Owner != "" || !p.Finished() {
			t.Errorf("parent lease %+v, want unowned and finished", p)
		}
	})
}

func TestCoordinatorCustomEligibility(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(3)...)
		var mu sync.Mutex
		allowed := map[string]bool{"shardId-000000000000": true}
		a := startWorker(t, store, "a", func(c *lease.CoordinatorConfig) {
			c.Eligible = func(l lease.Lease, all map[string]lease.Lease) bool {
				if len(all) != 3 {
					t.Errorf("Eligible got %d leases, want 3", len(all))
				}
				mu.Lock()
				defer mu.Unlock()
				return allowed[l.Key]
			}
		})
		sleepUntil(t, 3*renew)
		if got := a.c.Held(); !slices.Equal(got, []string{"shardId-000000000000"}) {
			t.Fatalf("held %v, want only the eligible lease", got)
		}
		mu.Lock()
		allowed["shardId-000000000002"] = true
		mu.Unlock()
		sleepUntil(t, 4*renew+time.Second)
		if got := a.c.Held(); !slices.Equal(got, []string{"shardId-000000000000", "shardId-000000000002"}) {
			t.Fatalf("held %v after allowing shard 2", got)
		}
	})
}

func TestCoordinatorCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/2)
		const id = "shardId-000000000000"
		for _, cp := range []string{"100", "250"} {
			if err := a.c.Checkpoint(ctx, id, cp); err != nil {
				t.Fatalf("Checkpoint(%s): %v", cp, err)
			}
			// A renewal follows each checkpoint; it must use the counter the
			// checkpoint wrote, or a would lose its own lease.
			time.Sleep(renew)
			synctest.Wait()
		}
		if n := store.Calls("Get"); n != 0 {
			t.Errorf("%d re-reads: renewals after a checkpoint used a stale counter", n)
		}
		l, _ := store.Get(ctx, id)
		if l.Checkpoint != "250" || l.Owner != "a" {
			t.Fatalf("stored lease %+v, want checkpoint 250 owned by a", l)
		}
		if got := a.eventsOf("lost"); len(got) != 0 {
			t.Fatalf("lost %v", got)
		}
		if err := a.c.Checkpoint(ctx, "not-mine", "1"); !errors.Is(err, lease.ErrLost) {
			t.Errorf("Checkpoint of a lease not held: %v, want ErrLost", err)
		}
	})
}

func TestCoordinatorShutdownKeepsLeases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(2)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/2)
		a.stop()
		if got := a.c.Held(); len(got) != 2 {
			t.Fatalf("after Run returned Held = %v, want both leases (not released)", got)
		}
		if got := a.eventsOf("lost"); len(got) != 0 {
			t.Fatalf("shutdown reported losses %v", got)
		}
		// Release still works after Run has returned.
		for _, id := range a.c.Held() {
			if err := a.c.Release(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		for id, o := range owners(t, store) {
			if o != "" {
				t.Errorf("%s still owned by %q", id, o)
			}
		}
		if err := a.c.Run(context.Background()); err == nil {
			t.Errorf("second Run returned nil, want an error")
		}
	})
}

func TestCoordinatorConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lease.CoordinatorConfig
		want []string // substrings of the error; none for valid
	}{
		{"defaults", lease.CoordinatorConfig{WorkerID: "w"}, nil},
		{"no worker", lease.CoordinatorConfig{}, []string{"--worker-id"}},
		{"negative failover", lease.CoordinatorConfig{WorkerID: "w", FailoverTime: -time.Second}, []string{"--failover-time"}},
		{"negative renew", lease.CoordinatorConfig{WorkerID: "w", RenewInterval: -time.Second}, []string{"renew interval", "--failover-time"}},
		{"renew too slow", lease.CoordinatorConfig{WorkerID: "w", FailoverTime: 10 * time.Second, RenewInterval: 5 * time.Second}, []string{"half of --failover-time"}},
		{"renew default of short failover", lease.CoordinatorConfig{WorkerID: "w", FailoverTime: time.Second}, nil},
		{"negative steal", lease.CoordinatorConfig{WorkerID: "w", MaxLeasesToSteal: -1}, []string{"--max-leases-to-steal"}},
		{"every mistake", lease.CoordinatorConfig{FailoverTime: -time.Second, MaxLeasesToSteal: -1}, []string{"--worker-id", "--failover-time", "--max-leases-to-steal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want an error mentioning %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "half of") && !slices.Contains(tc.want, "half of --failover-time") {
				t.Errorf("Validate = %v: the renew/failover relation is checked only when both are valid", err)
			}
		})
	}
	if _, err := lease.NewCoordinator(lease.CoordinatorConfig{WorkerID: "w"}, nil); err == nil {
		t.Error("NewCoordinator with a nil store succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := lease.NewCoordinator(lease.CoordinatorConfig{WorkerID: "w", Registerer: reg}, leasetest.NewFakeStore()); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 5 {
		t.Errorf("registered %d metrics (%v), want 5", len(mfs), err)
	}
	if _, err := lease.NewCoordinator(lease.CoordinatorConfig{WorkerID: "w2", Registerer: reg}, leasetest.NewFakeStore()); err == nil {
		t.Error("registering the lease metrics twice on one registry succeeded")
	}
}

func TestParentsFinished(t *testing.T) {
	all := map[string]lease.Lease{
		"open": {Key: "open", Checkpoint: "5"},
		"done": {Key: "done", Checkpoint: lease.CheckpointShardEnd},
	}
	for _, tc := range []struct {
		parents []string
		want    bool
	}{
		{nil, true},
		{[]string{"done"}, true},
		{[]string{"gone"}, true},
		{[]string{"open"}, false},
		{[]string{"done", "open"}, false},
		{[]string{"done", "gone"}, true},
	} {
		if got := lease.ParentsFinished(lease.Lease{Key: "x", ParentShardIDs: tc.parents}, all); got != tc.want {
			t.Errorf("ParentsFinished(parents %v) = %v, want %v", tc.parents, got, tc.want)
		}
	}
}

// An abandoned lease is no longer renewed: another worker takes it once it
// has expired, and the abandoning worker hears of no loss.
func TestCoordinatorAbandonedLeaseMovesAfterFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(1)...)
		a := startWorker(t, store, "a")
		sleepUntil(t, renew/3)
		if got := a.c.Held(); len(got) != 1 {
			t.Fatalf("a holds %v, want the one lease", got)
		}
		a.c.Drain() // a must not take it back
		b := startWorker(t, store, "b")
		renewsBefore := store.Calls("Renew")
		a.c.Abandon("shardId-000000000000")
		abandonedAt := time.Now()
		if got := a.c.Held(); len(got) != 0 {
			t.Fatalf("a still holds %v after Abandon", got)
		}
		sleepUntil(t, renew/3+failover+3*renew)
		if got := b.c.Held(); !slices.Equal(got, []string{"shardId-000000000000"}) {
			t.Fatalf("b holds %v after the failover time, want the abandoned lease", got)
		}
		acq := b.eventsOf("acquire")
		if len(acq) != 1 || testStart(t).Add(acq[0].at).Sub(abandonedAt) < failover {
			t.Errorf("b acquisitions %v, want one no sooner than %v after the abandon", acq, failover)
		}
		if store.Calls("Renew") == renewsBefore {
			t.Error("b never renewed the lease it took")
		}
		if len(a.eventsOf("lost")) != 0 {
			t.Errorf("abandon was reported as a loss: %v", a.eventsOf("lost"))
		}
	})
}

// Two processes started with the same worker id must not both hold a lease:
// the coordinator used to take every lease recorded under its id at once
// ("a restart under the same id") and to adopt a counter moved by the other
// process as its own earlier write, so both kept every lease and read
// every shard.
func TestCoordinatorSameWorkerIDTwiceNeverHoldsALeaseTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := leasetest.NewFakeStore()
		createLeases(t, store, shards(4)...)
		a := startWorker(t, store, "same")
		sleepUntil(t, renew/3)
		b := startWorker(t, store, "same")
		// A steal is seen by its victim at its next renewal, as between
		// workers with their own ids; after that the two settle.
		sleepUntil(t, renew/3+5*renew)
		first := map[string][]string{"a": a.c.Held(), "b": b.c.Held()}
		for round := 6; round <= 20; round++ {
			sleepUntil(t, renew/3+time.Duration(round)*renew)
			ha, hb := a.c.Held(), b.c.Held()
			for _, s := range ha {
				if slices.Contains(hb, s) {
					t.Fatalf("round %d: both processes hold %s (a %v, b %v)", round, s, ha, hb)
				}
			}
			if len(ha)+len(hb) != 4 {
				t.Fatalf("round %d: the two hold %d leases in all (a %v, b %v), want 4", round, len(ha)+len(hb), ha, hb)
			}
		}
		if last := (map[string][]string{"a": a.c.Held(), "b": b.c.Held()}); !slices.Equal(first["a"], last["a"]) || !slices.Equal(first["b"], last["b"]) {
			t.Errorf("leases kept moving between the two: %v, then %v", first, last)
		}
		if len(b.c.Held()) == 0 {
			t.Errorf("the second process took no share: a %v", a.c.Held())
		}
	})
}
