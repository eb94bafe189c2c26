package lease

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/retry"
)

// CoordinatorConfig configures a Coordinator. Zero durations and counts take
// the defaults given on each field.
type CoordinatorConfig struct {
	// WorkerID (--worker-id; required) names this worker in leaseOwner. It
	// must be unique among live workers (see NewWorkerID). A worker
	// restarted under the same id takes back the leases still recorded
	// under that id at once.
	WorkerID string
	// FailoverTime (--failover-time, default 10s): a lease whose counter has
	// not moved for this long, as timed on this worker's monotonic clock
	// from when it first saw that counter value, is expired and may be
	// taken. A dead worker's leases are taken within FailoverTime +
	// 2×RenewInterval of its last renewal.
	FailoverTime time.Duration
	// RenewInterval (no flag; default FailoverTime/3) is the period of the loop: renew
	// held leases, list, take, steal. It is also the timeout of each store
	// call, Checkpoint's and Release's included: they hold the lease's
	// write lock, which its renewal waits for. Must be below FailoverTime/2.
	RenewInterval time.Duration
	// MaxLeasesToSteal (--max-leases-to-steal, default 1) bounds the leases
	// taken from the busiest worker per loop when this worker is below its
	// fair share.
	MaxLeasesToSteal int
	// Eligible decides whether a lease that is free (unowned or expired) or
	// stealable may be taken; all is the lease table as just listed, by key.
	// It runs on the Run goroutine, must not block, and must not call the
	// Coordinator. Default ParentsFinished. Shard discovery can supply its
	// own, e.g. to also require that the parent's rows are committed.
	Eligible func(candidate Lease, all map[string]Lease) bool
	// OnAcquire is called when this worker takes a lease: start the shard's
	// reader. OnLost is called when the lease was lost (another worker took
	// it, or it could not be renewed in time): stop the reader, drop its
	// unflushed rows, do not checkpoint, and do not call Release. Both run
	// on the Run goroutine, one at a time, in order, with no lock held; they
	// must return quickly (start or signal a goroutine) and may call Held,
	// Checkpoint and Release. OnAcquire(shard) may follow OnLost(shard) for
	// the same shard; the handler must let the old reader exit before
	// starting a new one. Nil means do nothing.
	OnAcquire func(l Lease)
	OnLost    func(shardID string)
	// Registerer receives the lease metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
}

const (
	defaultFailoverTime     = 10 * time.Second
	defaultMaxLeasesToSteal = 1
	maxParallelRenewals     = 16
)

func (c CoordinatorConfig) withDefaults() CoordinatorConfig {
	if c.FailoverTime == 0 {
		c.FailoverTime = defaultFailoverTime
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime / 3
	}
	if c.MaxLeasesToSteal == 0 {
		c.MaxLeasesToSteal = defaultMaxLeasesToSteal
	}
	if c.Eligible == nil {
		c.Eligible = ParentsFinished
	}
	if c.OnAcquire == nil {
		c.OnAcquire = func(Lease) {}
	}
	if c.OnLost == nil {
		c.OnLost = func(string) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate rejects a configuration the coordinator cannot run with, naming
// the consumer's flag for each mistake it finds. Zero values are fine: they
// mean the defaults.
func (c CoordinatorConfig) Validate() error {
	var errs []error
	if c.WorkerID == "" {
		errs = append(errs, errors.New("lease coordinator: worker id is empty (--worker-id)"))
	}
	if c.FailoverTime < 0 {
		errs = append(errs, fmt.Errorf("--failover-time %s: must not be negative", c.FailoverTime))
	}
	if c.RenewInterval < 0 {
		errs = append(errs, fmt.Errorf("lease renew interval %s: must not be negative (it has no flag; the default is a third of --failover-time)", c.RenewInterval))
	}
	if d := c.withDefaults(); c.FailoverTime >= 0 && c.RenewInterval >= 0 && 2*d.RenewInterval >= d.FailoverTime {
		errs = append(errs, fmt.Errorf("lease renew interval %s must be below half of --failover-time %s, so a lease is renewed at least twice before it can expire", d.RenewInterval, d.FailoverTime))
	}
	if c.MaxLeasesToSteal < 0 {
		errs = append(errs, fmt.Errorf("--max-leases-to-steal %d: must not be negative", c.MaxLeasesToSteal))
	}
	return errors.Join(errs...)
}

// NewWorkerID returns "<hostname>-<random>", unique per process start.
func NewWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + rand.Text()[:10]
}

// ParentsFinished is the default eligibility rule: a lease may be taken when
// each of its parents is finished (checkpoint SHARD_END) or has no lease any
// more (cleaned up after it finished). Shard discovery must therefore create
// a parent's lease before its children's.
func ParentsFinished(l Lease, all map[string]Lease) bool {
	for _, p := range l.ParentShardIDs {
		if pl, ok := all[p]; ok && !pl.Finished() {
			return false
		}
	}
	return true
}

// Coordinator shares the shards of a stream among workers through a Store,
// KCL style. Its Run loop, every RenewInterval: renews the leases this
// worker holds; lists the table; takes free leases (unowned or
// expired, eligible, not finished) up to the fair share ceil(leases/workers),
// counting workers that own a live lease plus itself; and, when nothing is
// free and it is still below its share, steals up to MaxLeasesToSteal from
// the busiest worker. Changes are reported through OnAcquire and OnLost.
//
// The reader of a shard owns the end of its lease: after its goroutine has
// exited it calls Release (graceful) — or, after OnLost, nothing. Run's
// context ending stops renewing without releasing or reporting anything;
// for a graceful shutdown call Drain, stop the readers, flush, Checkpoint,
// Release each lease, and only then cancel Run.
//
// Methods other than Run are safe for concurrent use. See DESIGN.md for
// goroutine ownership and lock order.
type Coordinator struct {
	cfg      CoordinatorConfig
	store    Store
	log      *slog.Logger
	m        metrics
	running  atomic.Bool
	draining atomic.Bool

	mu   sync.Mutex // guards held; never held during I/O or callbacks
	held map[string]*heldLease

	// Owned by the Run goroutine.
	seen map[string]observation
	rng  *mrand.Rand
}

// heldLease is one lease this worker holds.
type heldLease struct {
	// mu serializes the store writes on this lease (renew, checkpoint,
	// release) and guards the fields below. It is held across the store
	// call. Lock order: heldLease.mu before Coordinator.mu.
	mu        sync.Mutex
	lease     Lease     // as last written by us
	renewedAt time.Time // start of the last write that succeeded (monotonic)
	gone      bool      // released or lost: no more writes, not in held
	unknown   bool      // a write of ours ended with an unknown outcome since the last known one
}

// observation is when this worker first saw a lease's current counter.
type observation struct {
	counter int64
	owner   string
	since   time.Time // monotonic reading of this worker's clock
}

// next is the observation after seeing l at now (read after the store call
// that returned l): unchanged if l's counter and owner are those already
// seen, else starting afresh at now.
func (o observation) next(l Lease, now time.Time) observation {
	if !o.since.IsZero() && o.counter == l.Counter && o.owner == l.Owner {
		return o
	}
	return observation{counter: l.Counter, owner: l.Owner, since: now}
}

// expired reports whether l is still the lease observed and has stood still
// for failover on this worker's clock.
func (o observation) expired(l Lease, now time.Time, failover time.Duration) bool {
	return !o.since.IsZero() && o.counter == l.Counter && o.owner == l.Owner && now.Sub(o.since) >= failover
}

type metrics struct {
	held          prometheus.Gauge
	taken         prometheus.Counter
	stolen        prometheus.Counter
	lost          prometheus.Counter
	renewFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "paystream_lease_held", Help: "Shard leases this worker holds.",
		}),
		taken: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_lease_taken_total", Help: "Leases this worker acquired (free or stolen).",
		}),
		stolen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_lease_stolen_total", Help: "Leases this worker stole from a live worker to even out the load (also counted in taken).",
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_lease_lost_total", Help: "Leases this worker lost: taken by another worker or not renewed in time.",
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_lease_renew_failures_total", Help: "Lease renewals that failed with an error other than a lost lease.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.held, m.taken, m.stolen, m.lost, m.renewFailures} {
			if err := reg.Register(c); err != nil {
				return metrics{}, fmt.Errorf("register lease metrics: %w", err)
			}
		}
	}
	return m, nil
}

// NewCoordinator validates cfg and registers the metrics. It starts nothing.
func NewCoordinator(cfg CoordinatorConfig, store Store) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("lease coordinator: nil lease store")
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Coordinator{
		cfg:   cfg,
		store: store,
		log:   cfg.Logger.With("worker", cfg.WorkerID),
		m:     m,
		held:  map[string]*heldLease{},
		seen:  map[string]observation{},
		rng:   mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
	}, nil
}

// Run renews, takes and steals leases every RenewInterval, starting at once,
// until ctx ends; then it returns nil. Store errors are logged and retried on
// the next round, never returned. It may be called once. The lease table
// must exist (Store.EnsureTable).
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("lease coordinator: Run called twice")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		c.renewAll(ctx)
		if ctx.Err() == nil && !c.draining.Load() {
			c.balance(ctx)
		}
		timer.Reset(c.cfg.RenewInterval)
	}
}

// Drain stops acquiring: from now on Run only renews the leases still held,
// so their readers can flush, checkpoint and Release them before shutdown.
// It cannot be undone.
func (c *Coordinator) Drain() { c.draining.Store(true) }

// Held returns the shard ids of the leases this worker holds, sorted.
func (c *Coordinator) Held() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.held))
	for id := range c.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Checkpoint records checkpoint (a sequence number, or CheckpointShardEnd
// once the shard's last records are committed) on a lease this worker
// holds. The lease table's checkpoint is for visibility and for parent/child
// ordering; the Iceberg table holds the position readers resume from. The
// write is bounded by RenewInterval, however long ctx allows: it holds up
// the lease's renewal while it runs.
// ErrLost (wrapped) if the lease is not held or was lost; other errors
// leave the outcome unknown and the caller may retry.
func (c *Coordinator) Checkpoint(ctx context.Context, shardID, checkpoint string) error {
	if checkpoint == "" {
		return fmt.Errorf("checkpoint shard %s: empty checkpoint", shardID)
	}
	h := c.lookup(shardID)
	if h == nil {
		return fmt.Errorf("checkpoint shard %s: %w", shardID, ErrLost)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return fmt.Errorf("checkpoint shard %s: %w", shardID, ErrLost)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	defer cancel()
	l, err := c.write(ctx, h, func(ctx context.Context, l Lease) (Lease, error) {
		return c.store.UpdateCheckpoint(ctx, l, checkpoint)
	})
	if err != nil {
		// On ErrLost, Run's next renewal confirms the loss and calls
		// OnLost.
		return fmt.Errorf("checkpoint shard %s: %w", shardID, err)
	}
	h.lease, h.renewedAt = l, start
	return nil
}

// Release gives up a lease this worker holds so that any worker may take it
// at once. Call it only after the shard's reader has exited (and, on a
// graceful stop, after its last records are committed and checkpointed).
// Releasing a shard that is not held (never taken, lost, or already
// released) returns nil. ErrLost (wrapped) means the lease turned out
// to be lost; it is forgotten all the same and OnLost is not called. Other
// errors leave the lease held and the caller may retry. Release works
// before, during and after Run.
func (c *Coordinator) Release(ctx context.Context, shardID string) error {
	h := c.lookup(shardID)
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	defer cancel()
	_, err := c.write(ctx, h, func(ctx context.Context, l Lease) (Lease, error) {
		return l, c.store.Release(ctx, l)
	})
	switch {
	case err == nil:
		c.forget(h)
		c.log.Info("lease released", "shard", shardID)
		return nil
	case errors.Is(err, ErrLost):
		c.forget(h)
		c.m.lost.Inc()
		c.log.Warn("lease lost", "shard", shardID, "reason", "taken by another worker before release")
		return fmt.Errorf("release shard %s: %w", shardID, err)
	default:
		return fmt.Errorf("release shard %s: %w", shardID, err)
	}
}

// Abandon stops holding a lease without writing to the lease table: it is
// no longer renewed, so it expires after FailoverTime and any worker (this
// one included) may take it. For when the table cannot be written to give
// the lease back (Release failed) but nothing reads the shard any more: a
// lease held and renewed with nobody reading would stall the shard for
// good. OnLost is not called. Abandoning a lease that is not held does
// nothing.
func (c *Coordinator) Abandon(shardID string) {
	h := c.lookup(shardID)
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return
	}
	c.forget(h)
	c.log.Warn("lease abandoned: no longer renewed, it moves after the failover time", "shard", shardID)
}

func (c *Coordinator) lookup(shardID string) *heldLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[shardID]
}

// forget drops h from the held set. Called with h.mu held.
func (c *Coordinator) forget(h *heldLease) {
	h.gone = true
	c.mu.Lock()
	delete(c.held, h.lease.Key)
	n := len(c.held)
	c.mu.Unlock()
	c.m.held.Set(float64(n))
}

// write runs op on h's lease. If the store says the lease was lost, it reads
// the lease back: when this worker is still the owner, the counter moved
// because an earlier write of ours whose outcome was unknown (a timeout) did
// apply, so op is retried once on the fresh copy. Called with h.mu held.
func (c *Coordinator) write(ctx context.Context, h *heldLease, op func(context.Context, Lease) (Lease, error)) (Lease, error) {
	return holderWrite(ctx, c.store, c.cfg.WorkerID, c.log, h.lease, &h.unknown, op)
}

// holderWrite runs op, a write by the holder me, on l. If the store says the
// lease was lost, it reads the lease back: when me is still the owner and an
// earlier write of ours ended with an unknown outcome (*unknown), the counter
// moved because that write did apply (a timeout), so op is retried once on
// the fresh copy. Without an unknown write the counter was moved by another
// process running under the same worker id: the lease is lost. *unknown is
// the holder's own flag, kept up to date here. Shard leases (Coordinator)
// and role leases (Role) share it.
func holderWrite(ctx context.Context, store Store, me string, log *slog.Logger, l Lease, unknown *bool, op func(context.Context, Lease) (Lease, error)) (Lease, error) {
	nl, err := op(ctx, l)
	if !errors.Is(err, ErrLost) {
		*unknown = outcomeUnknown(err)
		return nl, err
	}
	cur, gerr := store.Get(ctx, l.Key)
	switch {
	case errors.Is(gerr, ErrNotFound):
		return Lease{}, err
	case gerr != nil:
		return Lease{}, fmt.Errorf("re-read lease after conflict: %w", gerr) // outcome unknown
	case cur.Owner != me:
		return Lease{}, err
	case !*unknown:
		log.Error("lease counter moved under our own worker id with no write of ours pending: another process runs with the same --worker-id", "lease", cur.Key, "worker", me)
		return Lease{}, err
	}
	log.Debug("lease counter moved by an earlier write of ours; adopting it", "lease", cur.Key)
	nl, err = op(ctx, cur)
	*unknown = !errors.Is(err, ErrLost) && outcomeUnknown(err)
	return nl, err
}

// outcomeUnknown reports whether a store write that returned err may have
// applied. Success and the store's sentinels are known outcomes; so are a
// throttle and a refusal (retry.Classify): DynamoDB did nothing.
func outcomeUnknown(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrHeld), errors.Is(err, ErrExists), errors.Is(err, ErrNotFound), errors.Is(err, ErrLost):
		return false
	}
	return retry.Classify(err) == retry.Unknown
}

// renewAll renews every held lease, in parallel, then reports the lost ones.
func (c *Coordinator) renewAll(ctx context.Context) {
	c.mu.Lock()
	hs := make([]*heldLease, 0, len(c.held))
	for _, h := range c.held {
		hs = append(hs, h)
	}
	c.mu.Unlock()

	var (
		wg     sync.WaitGroup
		lostMu sync.Mutex
		lost   []string
		sem    = make(chan struct{}, maxParallelRenewals)
	)
	for _, h := range hs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if id, ok := c.renew(ctx, h); ok {
				lostMu.Lock()
				lost = append(lost, id)
				lostMu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(lost)
	for _, id := range lost {
		c.cfg.OnLost(id)
	}
}

// renew renews h; it reports the shard id and true when the lease is lost.
func (c *Coordinator) renew(ctx context.Context, h *heldLease) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return "", false
	}
	id := h.lease.Key
	start := time.Now()
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	l, err := c.write(opCtx, h, c.store.Renew)
	cancel()
	switch {
	case err == nil:
		h.lease, h.renewedAt = l, start
		return "", false
	case ctx.Err() != nil:
		return "", false // shutting down; not a renewal failure
	case errors.Is(err, ErrLost):
		c.log.Warn("lease lost", "shard", id, "reason", "taken by another worker")
	default:
		c.m.renewFailures.Inc()
		// Give up before another worker may judge the lease expired: the
		// next attempt would come too late.
		if age := time.Since(h.renewedAt); age+c.cfg.RenewInterval < c.cfg.FailoverTime {
			c.log.Warn("lease renew failed", "shard", id, "since_renewal", age, "err", err)
			return "", false
		}
		c.log.Warn("lease lost", "shard", id, "reason", "not renewed within failover time", "err", err)
	}
	c.forget(h)
	c.m.lost.Inc()
	return id, true
}

// balance lists the table and takes or steals leases towards the fair share.
func (c *Coordinator) balance(ctx context.Context) {
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	leases, err := c.store.List(opCtx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("list leases failed", "err", err)
		}
		return
	}
	now := time.Now() // after the scan: never earlier than the writes it saw
	c.observe(leases, now)

	c.mu.Lock()
	held := make(map[string]bool, len(c.held))
	for id := range c.held {
		held[id] = true
	}
	c.mu.Unlock()

	p := c.plan(leases, held, now)
	took := 0
	for _, l := range p.free {
		if took >= p.need || ctx.Err() != nil || c.draining.Load() {
			break
		}
		if c.take(ctx, l, false) {
			took++
		}
	}
	for _, l := range p.steal {
		if ctx.Err() != nil || c.draining.Load() {
			break
		}
		c.take(ctx, l, true)
	}
}

// observe records when each lease's current counter was first seen.
func (c *Coordinator) observe(leases []Lease, now time.Time) {
	present := make(map[string]bool, len(leases))
	for _, l := range leases {
		present[l.Key] = true
		c.seen[l.Key] = c.seen[l.Key].next(l, now)
	}
	for k := range c.seen {
		if !present[k] {
			delete(c.seen, k)
		}
	}
}

// expired reports whether l's counter has stood still for FailoverTime on
// this worker's clock. Call after observe.
func (c *Coordinator) expired(l Lease, now time.Time) bool {
	o, ok := c.seen[l.Key]
	return ok && o.expired(l, now, c.cfg.FailoverTime)
}

type balancePlan struct {
	target int
	need   int     // leases to take to reach target
	free   []Lease // takeable without stealing, in random order; take up to need
	steal  []Lease // to steal, already bounded
}

// plan decides what to take. Finished leases are ignored entirely. Workers
// are this one plus every owner of a live (unexpired) lease.
func (c *Coordinator) plan(leases []Lease, held map[string]bool, now time.Time) balancePlan {
	all := make(map[string]Lease, len(leases))
	for _, l := range leases {
		all[l.Key] = l
	}
	var p balancePlan
	owned := map[string][]Lease{} // live leases of other workers
	total := 0
	for _, l := range leases {
		switch {
		case l.Finished(), IsRoleKey(l.Key):
			// Finished shards are read by nobody; role leases are not
			// shards (Role elects their holders).
		case held[l.Key]:
			total++
		case l.Owner != "" && !c.expired(l, now):
			// Another worker's live lease — or one recorded under our id
			// that we do not hold: a previous run of this worker (it
			// expires like any dead worker's) or a second process started
			// with the same id (it keeps renewing; treat it as another
			// worker rather than fight over its leases).
			owned[l.Owner] = append(owned[l.Owner], l)
			total++
		case c.cfg.Eligible(l, all):
			// Unowned or expired: free.
			p.free = append(p.free, l)
			total++
		}
	}
	workers := len(owned) + 1
	p.target = (total + workers - 1) / workers
	p.need = p.target - len(held)
	if p.need <= 0 {
		return balancePlan{target: p.target}
	}
	if len(p.free) > 0 {
		c.rng.Shuffle(len(p.free), func(i, j int) { p.free[i], p.free[j] = p.free[j], p.free[i] })
		return p
	}
	// Nothing free: steal from the busiest worker, if that evens things out.
	var victim string
	for _, o := range sortedOwners(owned) {
		if len(owned[o]) > len(owned[victim]) {
			victim = o
		}
	}
	n := 0
	switch most := len(owned[victim]); {
	case most > p.target:
		n = min(most-p.target, p.need)
	case most == p.target && p.need > 1:
		n = 1
	}
	n = min(n, c.cfg.MaxLeasesToSteal)
	var cands []Lease
	for _, l := range owned[victim] {
		if c.cfg.Eligible(l, all) {
			cands = append(cands, l)
		}
	}
	c.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	p.steal = cands[:min(n, len(cands))]
	return p
}

func sortedOwners[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// take takes l and reports OnAcquire; false when someone got there first or
// the store failed.
func (c *Coordinator) take(ctx context.Context, l Lease, stolen bool) bool {
	start := time.Now()
	opCtx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	nl, err := c.store.Take(opCtx, l, c.cfg.WorkerID)
	cancel()
	if err != nil {
		if errors.Is(err, ErrHeld) {
			c.log.Debug("lease take lost a race", "shard", l.Key)
		} else if ctx.Err() == nil {
			c.log.Warn("lease take failed", "shard", l.Key, "err", err)
		}
		return false
	}
	h := &heldLease{lease: nl, renewedAt: start}
	c.mu.Lock()
	c.held[nl.Key] = h
	n := len(c.held)
	c.mu.Unlock()
	c.m.held.Set(float64(n))
	c.m.taken.Inc()
	if stolen {
		c.m.stolen.Inc()
	}
	c.log.Info("lease taken", "shard", nl.Key, "previous_owner", l.Owner, "stolen", stolen)
	c.cfg.OnAcquire(nl.Clone())
	return true
}
