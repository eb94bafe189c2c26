package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RoleKeyPrefix starts the leaseKey of every role lease. Kinesis shard ids
// ("shardId-000000000000") never contain '#', so a role lease can never be
// mistaken for a shard's: Coordinator neither counts nor takes it, and Sync
// neither creates nor deletes it.
const RoleKeyPrefix = "role#"

// RoleMaintainer names the role of the one worker that maintains the table
// (snapshot expiry and, later, compaction and orphan sweeps).
const RoleMaintainer = "maintainer"

// RoleKey returns the leaseKey of the role name: "role#" + name.
func RoleKey(name string) string { return RoleKeyPrefix + name }

// IsRoleKey reports whether key is a role lease's, not a shard's.
func IsRoleKey(key string) bool { return strings.HasPrefix(key, RoleKeyPrefix) }

// RoleConfig configures a Role. Zero durations take the defaults given on
// each field.
type RoleConfig struct {
	// Name is the role (RoleMaintainer); the lease key is RoleKey(Name).
	Name string
	// WorkerID names this worker in leaseOwner; the same id as its
	// Coordinator's (--worker-id), unique among live workers.
	WorkerID string
	// FailoverTime (default 10s): a role whose counter has not moved for
	// this long on this worker's monotonic clock is expired and may be
	// taken, exactly as a shard lease (CoordinatorConfig.FailoverTime).
	FailoverTime time.Duration
	// RenewInterval (default FailoverTime/3) is the period of Run's loop and
	// the timeout of each store call. Must be below FailoverTime/2.
	RenewInterval time.Duration
	// OnElected is called when this worker takes the role; OnLost when it
	// stops holding it for any reason: taken by another worker, not renewed
	// in time, or released because Run's context ended. They alternate,
	// starting with OnElected, run on the Run goroutine with no lock held,
	// and must return quickly. Nil means do nothing.
	OnElected func()
	OnLost    func()
	// Logger; nil discards.
	Logger *slog.Logger
}

func (c RoleConfig) withDefaults() RoleConfig {
	if c.FailoverTime == 0 {
		c.FailoverTime = defaultFailoverTime
	}
	if c.RenewInterval == 0 {
		c.RenewInterval = c.FailoverTime / 3
	}
	if c.OnElected == nil {
		c.OnElected = func() {}
	}
	if c.OnLost == nil {
		c.OnLost = func() {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate rejects a configuration a Role cannot run with. The durations
// follow the Coordinator's rules and flags.
func (c RoleConfig) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("lease role: empty role name"))
	}
	if c.WorkerID == "" {
		errs = append(errs, errors.New("lease role: worker id is empty (--worker-id)"))
	}
	if c.FailoverTime < 0 {
		errs = append(errs, fmt.Errorf("--failover-time %s: must not be negative", c.FailoverTime))
	}
	if c.RenewInterval < 0 {
		errs = append(errs, fmt.Errorf("role renew interval %s: must not be negative", c.RenewInterval))
	}
	if d := c.withDefaults(); c.FailoverTime >= 0 && c.RenewInterval >= 0 && 2*d.RenewInterval >= d.FailoverTime {
		errs = append(errs, fmt.Errorf("role renew interval %s must be below half of --failover-time %s", d.RenewInterval, d.FailoverTime))
	}
	return errors.Join(errs...)
}

// Role elects one holder of a role among the workers sharing a lease table:
// a lease item keyed RoleKey(Name), with the shard leases' attributes and
// rules (every write conditional on leaseCounter; expiry judged on the
// observer's monotonic clock). Its Run loop, every RenewInterval, renews the
// role while held, and otherwise reads it (creating it unowned if absent)
// and takes it when it is unowned, expired, or still recorded under this
// worker's id. A dead holder's role is taken between FailoverTime and
// FailoverTime + 2×RenewInterval after its last renewal; a holder whose Run
// ends releases it, so another worker takes it on its next round.
//
// The role is an election, not a fence: a holder that is paused may act for
// a moment after another worker took over. Work done under a role must be
// safe to run twice at once (table maintenance is: its commits are
// compare-and-swap), the role only keeps it from running everywhere.
//
// IsHolder is safe for concurrent use; Run may be called once.
type Role struct {
	cfg     RoleConfig
	store   Store
	key     string
	log     *slog.Logger
	running atomic.Bool

	mu        sync.Mutex // guards held and renewedAt; never held during I/O or callbacks
	held      *Lease     // as last written by us; nil when not holding
	renewedAt time.Time  // start of the last write that succeeded (monotonic)

	seen    observation // owned by the Run goroutine
	unknown bool        // owned by the Run goroutine: a write's outcome is unknown (see holderWrite)
}

// NewRole validates cfg. It starts nothing.
func NewRole(cfg RoleConfig, store Store) (*Role, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("lease role: nil lease store")
	}
	cfg = cfg.withDefaults()
	return &Role{
		cfg:   cfg,
		store: store,
		key:   RoleKey(cfg.Name),
		log:   cfg.Logger.With("worker", cfg.WorkerID, "role", cfg.Name),
	}, nil
}

// IsHolder reports whether this worker holds the role now. It turns false
// as soon as the role is lost or released, and in any case once the last
// successful write is FailoverTime old, before any other worker can judge
// the role expired.
func (r *Role) IsHolder() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held != nil && time.Since(r.renewedAt) < r.cfg.FailoverTime
}

// Run takes and keeps the role every RenewInterval, starting at once, until
// ctx ends; then it releases the role if held (calling OnLost first) and
// returns nil. Store errors are logged and retried on the next round. The
// lease table must exist (Store.EnsureTable).
func (r *Role) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("lease role: Run called twice")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			r.release(context.WithoutCancel(ctx))
			return nil
		case <-timer.C:
		}
		if r.holding() != nil {
			r.renew(ctx)
		} else {
			r.tryTake(ctx)
		}
		timer.Reset(r.cfg.RenewInterval)
	}
}

func (r *Role) holding() *Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// renew renews the held role; on loss it reports OnLost.
func (r *Role) renew(ctx context.Context) {
	held := r.holding()
	start := time.Now()
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.RenewInterval)
	l, err := holderWrite(opCtx, r.store, r.cfg.WorkerID, r.log, *held, &r.unknown, r.store.Renew)
	cancel()
	switch {
	case err == nil:
		r.mu.Lock()
		r.held, r.renewedAt = &l, start
		r.mu.Unlock()
		return
	case ctx.Err() != nil:
		return // shutting down; Run releases
	case errors.Is(err, ErrLost):
		r.log.Warn("role lost", "reason", "taken by another worker")
	default:
		r.mu.Lock()
		age := time.Since(r.renewedAt)
		r.mu.Unlock()
		// Give up before another worker may judge the role expired: the
		// next attempt would come too late.
		if age+r.cfg.RenewInterval < r.cfg.FailoverTime {
			r.log.Warn("role renew failed", "since_renewal", age, "err", err)
			return
		}
		r.log.Warn("role lost", "reason", "not renewed within failover time", "err", err)
	}
	r.drop()
}

// drop forgets the role and reports OnLost.
func (r *Role) drop() {
	r.mu.Lock()
	r.held = nil
	r.mu.Unlock()
	r.cfg.OnLost()
}

// tryTake reads the role (creating it, unowned, when absent) and takes it
// if it is free: unowned, expired on this worker's clock, or recorded under
// this worker's id (a restart under the same id, or a role given up
// locally after failed renewals).
func (r *Role) tryTake(ctx context.Context) {
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.RenewInterval)
	l, err := r.store.Get(opCtx, r.key)
	if errors.Is(err, ErrNotFound) {
		l = Lease{Key: r.key}
		err = r.store.Create(opCtx, l)
		if errors.Is(err, ErrExists) {
			cancel()
			return // another worker created it and is taking it; look again next round
		}
	}
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("read role lease failed", "err", err)
		}
		return
	}
	now := time.Now() // after the read: never earlier than the write it saw
	r.seen = r.seen.next(l, now)
	if l.Owner != "" && l.Owner != r.cfg.WorkerID && !r.seen.expired(l, now, r.cfg.FailoverTime) {
		return
	}
	start := time.Now()
	opCtx, cancel = context.WithTimeout(ctx, r.cfg.RenewInterval)
	nl, err := r.store.Take(opCtx, l, r.cfg.WorkerID)
	cancel()
	if err != nil {
		if errors.Is(err, ErrHeld) {
			r.log.Debug("role take lost a race")
		} else if ctx.Err() == nil {
			r.log.Warn("role take failed", "err", err)
		}
		return
	}
	r.mu.Lock()
	r.held, r.renewedAt = &nl, start
	r.mu.Unlock()
	r.log.Info("role taken", "previous_owner", l.Owner)
	r.cfg.OnElected()
}

// release gives the role back at the end of Run so that another worker
// takes it at once. OnLost is called before the write: whatever runs under
// the role stops before anyone else can take it.
func (r *Role) release(ctx context.Context) {
	held := r.holding()
	if held == nil {
		return
	}
	r.drop()
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.RenewInterval)
	defer cancel()
	_, err := holderWrite(opCtx, r.store, r.cfg.WorkerID, r.log, *held, &r.unknown, func(ctx context.Context, l Lease) (Lease, error) {
		return l, r.store.Release(ctx, l)
	})
	switch {
	case err == nil:
		r.log.Info("role released")
	case errors.Is(err, ErrLost):
		r.log.Warn("role lost", "reason", "taken by another worker before release")
	default:
		r.log.Warn("role not released; it moves after the failover time", "err", err)
	}
}
