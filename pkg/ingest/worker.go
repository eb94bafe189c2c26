package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"golang.org/x/sync/errgroup"

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
)

// WorkerConfig configures a consumer worker. Start from
// DefaultWorkerConfig; the consumer's flags fill it.
type WorkerConfig struct {
	Pipeline          PipelineConfig
	Coordinator       lease.CoordinatorConfig
	ShardSyncInterval time.Duration // how often shards are listed (--shard-sync-interval)
	ShutdownTimeout   time.Duration // bound on the final flush (--shutdown-timeout)
	// MaintenanceInterval is how often the maintainer expires old
	// snapshots and drops the positions of shards gone from the stream
	// (--maintenance-interval); 0 disables maintenance and the election of
	// a maintainer. Maintenance says what is kept (--keep-snapshots,
	// --snapshot-age) and how old an orphan file must be to go
	// (--orphan-age, 0 never sweeps); its LiveShards is set by the worker.
	MaintenanceInterval time.Duration
	Maintenance         iceberg.MaintainOptions
	// OrphanInterval is the least time between two orphan sweeps of the
	// maintainer (--orphan-interval): a sweep lists the whole table
	// location and reads every manifest. It runs within a maintenance run,
	// so it is rounded up to MaintenanceInterval.
	OrphanInterval time.Duration
	// CommitMode (--commit-mode) is CommitPerWorker (every worker commits
	// its batches; "" means the same) or CommitSingle (workers stage their
	// batches, one committer per table commits them: committer.go).
	CommitMode string
}

// DefaultOrphanAge is the default --orphan-age: far above the longest
// commit (seconds, a minute with every retry), since a writer's data files
// look like orphans until its commit lands.
const DefaultOrphanAge = 24 * time.Hour

// DefaultWorkerConfig returns the defaults of every setting but the stream
// and the worker id.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{
		Pipeline:            DefaultPipelineConfig(),
		Coordinator:         lease.CoordinatorConfig{FailoverTime: 10 * time.Second, MaxLeasesToSteal: 1},
		ShardSyncInterval:   10 * time.Second,
		ShutdownTimeout:     20 * time.Second,
		MaintenanceInterval: 5 * time.Minute,
		// The newest snapshots only, no age floor: metadata.json stays
		// small at any commit rate (--keep-snapshots, --snapshot-age).
		Maintenance: iceberg.MaintainOptions{
			KeepSnapshots: iceberg.DefaultKeepSnapshots, OrphanAge: DefaultOrphanAge, Retention: iceberg.DefaultRetention,
		},
		OrphanInterval: time.Hour,
		CommitMode:     CommitPerWorker,
	}
}

// Validate rejects settings that cannot work, naming the flag.
func (c WorkerConfig) Validate() error {
	errs := []error{c.Pipeline.Validate(), c.Coordinator.Validate()}
	if c.ShardSyncInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--shard-sync-interval %s: must be at least 100ms", c.ShardSyncInterval))
	}
	if c.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %s: must be at least 1s", c.ShutdownTimeout))
	}
	if c.MaintenanceInterval < 0 {
		errs = append(errs, fmt.Errorf("--maintenance-interval %s: must not be negative (0 disables)", c.MaintenanceInterval))
	}
	if c.MaintenanceInterval > 0 && c.Maintenance.KeepSnapshots < 1 {
		errs = append(errs, fmt.Errorf("--keep-snapshots %d: must be at least 1", c.Maintenance.KeepSnapshots))
	}
	if c.Maintenance.SnapshotAge < 0 {
		errs = append(errs, fmt.Errorf("--snapshot-age %s: must not be negative (0 keeps only --keep-snapshots)", c.Maintenance.SnapshotAge))
	}
	switch age := c.Maintenance.OrphanAge; {
	case age < 0:
		errs = append(errs, fmt.Errorf("--orphan-age %s: must not be negative (0 disables the orphan sweep)", age))
	case age > 0 && age < iceberg.MinOrphanAge:
		errs = append(errs, fmt.Errorf("--orphan-age %s: must be 0 (no sweep) or at least %s: a writer's data files look like orphans until its commit lands", age, iceberg.MinOrphanAge))
	}
	if c.CommitMode != "" && c.CommitMode != CommitPerWorker && c.CommitMode != CommitSingle {
		errs = append(errs, fmt.Errorf("--commit-mode %q: must be %q (each worker commits its batches) or %q (one committer per table commits every worker's batches)", c.CommitMode, CommitPerWorker, CommitSingle))
	}
	if c.Maintenance.OrphanAge > 0 && c.OrphanInterval <= 0 {
		errs = append(errs, fmt.Errorf("--orphan-interval %s: must be positive (to turn the sweep off, set --orphan-age 0)", c.OrphanInterval))
	}
	return errors.Join(errs...)
}

// WorkerDeps are the parts a Worker talks to.
type WorkerDeps struct {
	Kinesis     kinesisAPI
	Leases      lease.Store
	Sink        Sink
	DeadLetters commit.DeadLetters
	Dedup       *dedup.Filter // nil: no de-duplication
	Maintainer  Maintainer    // nil: no maintenance, no maintainer election
	// SweepDeadLetters, when set, runs before each Maintain on the
	// maintainer (*iceberg.Sink.SweepDeadLetters): it publishes the staged
	// dead letters of landed commits and removes those of commits that
	// never landed. Snapshots after its Head are kept from expiry; if
	// it fails, that round's maintenance is skipped.
	SweepDeadLetters func(ctx context.Context) (iceberg.DeadLetterSweep, error)
	// Start fixes what --initial-position latest means (*iceberg.Sink);
	// required when the pipeline's Initial is LATEST.
	Start   LatestStarter
	Logger  *slog.Logger // nil discards
	Metrics *Metrics     // nil records nothing
}

// LatestStarter records, once per application, the time the first worker
// started with --initial-position latest, and returns it (*iceberg.Sink).
// Every worker then reads a shard with no table position from that time:
// resolving LATEST per worker would skip, after a failover or restart, what
// the old owner read but did not commit and what arrived in between.
type LatestStarter interface {
	LatestStart(ctx context.Context, now time.Time) (time.Time, error)
}

// Maintainer maintains the table (*iceberg.Sink): snapshot expiry, dropping
// the positions of shards gone from the stream, the orphan sweep. Only the
// worker holding the maintainer role (lease.RoleMaintainer) calls it.
type Maintainer interface {
	Maintain(ctx context.Context, opts iceberg.MaintainOptions) (iceberg.MaintainResult, error)
}

// Worker is one consumer process: it shares the stream's shards with other
// workers through the lease table, reads the shards it holds and commits
// their records. Construct with NewWorker; Run does the work.
type Worker struct {
	cfg      WorkerConfig
	shards   KinesisShards
	store    lease.Store
	sink     Sink
	maint    Maintainer
	sweepDL  func(ctx context.Context) (iceberg.DeadLetterSweep, error)
	start    LatestStarter
	coord    *lease.Coordinator
	role     *lease.Role // the maintainer election; nil without maintenance
	metrics  *Metrics
	pipeline *Pipeline
	log      *slog.Logger

	// commitRole and committer run in commit mode single only.
	commitRole *lease.Role
	committer  *committer

	events chan leaseEvent
	ready  atomic.Bool
	sinkOK atomic.Int64 // unix nanos of the last successful sink call
	// handover tracks lease hand-overs (finish, giveUp) running off the
	// pipeline goroutine; Run waits for them before releasing what is left.
	handover sync.WaitGroup
	// checkpoints are the committed positions waiting for checkpointLoop.
	checkpoints *checkpointer

	// busyN counts, per shard, starts and hand-overs in progress, which the
	// stall watchdog does not judge (watchdog.go).
	busyMu      sync.Mutex
	busyN       map[string]int
	watchChecks atomic.Int64 // watchdog rounds run, for tests

	maintMu     sync.Mutex
	maintCancel context.CancelFunc // cancels the running Maintain when the role is lost
	lastSweep   time.Time          // last successful orphan sweep here (maintainLoop only)

	probeEvery time.Duration // how often an idle worker probes the table for Ready
}

// readyProbeInterval is how often a worker that has not reached the table
// otherwise (no commit, not the maintainer) reads it to stay ready: well
// within the minute Ready allows.
const readyProbeInterval = 20 * time.Second

// leaseWriteTimeout bounds each lease-table write made for the pipeline
// (checkpoints, SHARD_END, releases): a hung DynamoDB call must neither hold
// up commits nor outlive the lease.
const leaseWriteTimeout = 5 * time.Second

// leaseWriteAttempts is how often a hand-over write is tried before the
// lease is abandoned.
const leaseWriteAttempts = 3

type leaseEvent struct {
	lease lease.Lease
	lost  bool
	done  func() // ends the shard's busy mark of an acquisition
}

// NewWorker checks cfg and builds a worker. It starts no goroutines.
func NewWorker(cfg WorkerConfig, d WorkerDeps) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Leases == nil {
		return nil, errors.New("worker: no lease store")
	}
	if cfg.Pipeline.Initial.Type == ktypes.ShardIteratorTypeLatest && d.Start == nil {
		return nil, errors.New("worker: --initial-position latest needs the table to record the application's start (WorkerDeps.Start)")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		cfg: cfg, shards: KinesisShards{Client: d.Kinesis, Stream: cfg.Pipeline.Stream},
		store: d.Leases, sink: d.Sink, maint: d.Maintainer, sweepDL: d.SweepDeadLetters, start: d.Start, log: log, metrics: d.Metrics,
		events: make(chan leaseEvent, 4096), probeEvery: readyProbeInterval,
		checkpoints: newCheckpointer(), busyN: map[string]int{},
	}
	cc := cfg.Coordinator
	cc.Logger = log
	cc.OnAcquire = func(l lease.Lease) { w.events <- leaseEvent{lease: l, done: w.busy(l.Key)} }
	cc.OnLost = func(id string) { w.events <- leaseEvent{lease: lease.Lease{Key: id}, lost: true} }
	coord, err := lease.NewCoordinator(cc, d.Leases)
	if err != nil {
		return nil, err
	}
	w.coord = coord
	if w.maint != nil && cfg.MaintenanceInterval > 0 {
		w.role, err = lease.NewRole(lease.RoleConfig{
			Name:          lease.RoleMaintainer,
			WorkerID:      cfg.Coordinator.WorkerID,
			FailoverTime:  cfg.Coordinator.FailoverTime,
			RenewInterval: cfg.Coordinator.RenewInterval,
			OnElected:     w.maintainerElected,
			OnLost:        w.maintainerLost,
			Logger:        log,
		}, d.Leases)
		if err != nil {
			return nil, err
		}
	}
	pipeSink, err := w.commitMode(d, log)
	if err != nil {
		return nil, err
	}
	hooks := Hooks{
		Checkpoint: func(_ context.Context, shard, seq string) {
			w.sinkOK.Store(time.Now().UnixNano())
			w.checkpoints.note(shard, seq)
		},
		ShardEnded: func(ctx context.Context, shard string) {
			w.checkpoints.drop(shard)
			w.background(ctx, shard, func(ctx context.Context) { w.finish(ctx, shard) })
		},
		ShardFailed: func(ctx context.Context, shard string) {
			w.checkpoints.drop(shard)
			w.background(ctx, shard, func(ctx context.Context) { w.giveUp(ctx, shard) })
		},
	}
	w.pipeline, err = NewPipeline(cfg.Pipeline, PipelineDeps{
		Kinesis: d.Kinesis, Sink: pipeSink, DeadLetters: d.DeadLetters, Dedup: d.Dedup,
		Hooks: hooks, Logger: log, Metrics: d.Metrics, FlushLead: flushLead(pipeSink),
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Held returns the shards this worker holds leases for.
func (w *Worker) Held() []string { return w.coord.Held() }

// Maintainer reports whether this worker holds the maintainer role, i.e.
// runs table maintenance. Always false when maintenance is off.
func (w *Worker) Maintainer() bool { return w.role != nil && w.role.IsHolder() }

// Ready reports whether the worker is serving: the lease table and the
// stream were reachable at start and the table answered within the last
// minute (a commit, maintenance, or the probe an idle worker makes every
// 20 s). The string says why not.
func (w *Worker) Ready() (bool, string) {
	if !w.ready.Load() {
		return false, "starting: lease table and stream not checked yet"
	}
	last := time.Unix(0, w.sinkOK.Load())
	if time.Since(last) > time.Minute {
		return false, fmt.Sprintf("Iceberg table not reached since %s", last.UTC().Format(time.RFC3339))
	}
	return true, fmt.Sprintf("ok: %d leases held", len(w.coord.Held()))
}

// Run works until ctx ends, then stops reading, commits what was read,
// releases its leases and returns. It returns an error when it cannot start
// (lease table, stream or table unreachable) or the pipeline fails.
func (w *Worker) Run(ctx context.Context) error {
	if err := retry.Startup(ctx, w.log, StartupRetryFor, w.prepare); err != nil {
		return err
	}
	w.sinkOK.Store(time.Now().UnixNano())
	w.ready.Store(true)

	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	coordDone := make(chan error, 1)
	go func() { coordDone <- w.coord.Run(coordCtx) }()
	// The role outlives the maintenance loop, so that maintenance has
	// stopped before the role is released to another worker.
	roleCtx, stopRole := context.WithCancel(context.WithoutCancel(ctx))
	roleDone := make(chan error, 1)
	if w.role != nil {
		go func() { roleDone <- w.role.Run(roleCtx) }()
	} else {
		roleDone <- nil
	}

	commitRoleDone := w.runCommitRole(ctx)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.syncLoop(gctx) })
	g.Go(func() error { return w.eventLoop(gctx) })
	g.Go(func() error { return w.pipeline.Run(gctx, w.cfg.ShutdownTimeout) })
	g.Go(func() error { return w.probeLoop(gctx) })
	g.Go(func() error { return w.checkpointLoop(gctx) })
	g.Go(func() error { return w.watchdogLoop(gctx) })
	if w.role != nil {
		g.Go(func() error { return w.maintainLoop(gctx) })
	}
	if w.committer != nil {
		g.Go(func() error { return w.committer.Run(gctx) })
	}
	err := g.Wait()
	w.handover.Wait()
	stopRole() // releases the maintainer role, if held
	rerr := <-roleDone
	rerr = errors.Join(rerr, commitRoleDone()) // after the final flush: the committer committed it

	// The pipeline has committed what it read; give the leases back so other
	// workers take them at once instead of after the failover time.
	w.coord.Drain()
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	for _, id := range w.coord.Held() {
		if rerr := w.coord.Release(relCtx, id); rerr != nil {
			w.log.Warn("lease not released", "shard", id, "err", rerr.Error())
		}
	}
	cancel()
	stopCoord()
	cerr := <-coordDone // nil once coordCtx ends; an error only if it could not start
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if cerr != nil {
		err = errors.Join(err, fmt.Errorf("lease coordinator: %w", cerr))
	}
	if rerr != nil {
		err = errors.Join(err, fmt.Errorf("maintainer role: %w", rerr))
	}
	return err
}

// StartupRetryFor bounds how long the consumer retries a transient error
// of the lease table, stream or catalog while it starts (opening the
// table, then Worker.Run's checks) before it gives up and its task is
// restarted: a 5xx or a throttle at start-up is not a reason to exit.
const StartupRetryFor = 2 * time.Minute

// prepare checks what the worker needs before it takes leases: the lease
// table (created if missing), the leases of the stream's shards, the
// table, and what --initial-position latest means.
func (w *Worker) prepare(ctx context.Context) error {
	if err := w.store.EnsureTable(ctx); err != nil {
		return fmt.Errorf("lease table: %w", err)
	}
	if err := lease.Sync(ctx, w.shards, w.store, w.log); err != nil {
		return err
	}
	if _, err := w.sink.Positions(ctx); err != nil {
		return fmt.Errorf("iceberg table: %w", err)
	}
	if err := w.pipeline.prepareReads(ctx); err != nil {
		return err
	}
	if w.cfg.Pipeline.Initial.Type == ktypes.ShardIteratorTypeLatest {
		at, err := w.start.LatestStart(ctx, time.Now())
		if err != nil {
			return fmt.Errorf("iceberg table: %w", err)
		}
		w.pipeline.setInitial(InitialPosition{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: at})
		w.log.Info("shards with no table position start at the application's first start", "initial_position", "latest", "at", at)
	}
	return nil
}

func (w *Worker) syncLoop(ctx context.Context) error {
	return every(ctx, w.cfg.ShardSyncInterval, func(ctx context.Context) {
		if err := lease.Sync(ctx, w.shards, w.store, w.log); err != nil && ctx.Err() == nil {
			w.log.Warn("shard sync failed; retrying", "err", err.Error())
		}
	})
}

// every calls fn every d until ctx ends; it returns nil then.
func every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fn(ctx)
	}
}

// eventLoop applies lease changes to the pipeline, in order, on one
// goroutine (adding a shard restores its dedup window, which takes a while).
func (w *Worker) eventLoop(ctx context.Context) error {
	for {
		var ev leaseEvent
		select {
		case <-ctx.Done():
			return nil
		case ev = <-w.events:
		}
		id := ev.lease.Key
		if ev.lost {
			if err := w.pipeline.RemoveShard(ctx, id); err != nil && ctx.Err() == nil {
				return err
			}
			continue
		}
		err := w.addShard(ctx, ev.lease)
		ev.done()
		if err != nil {
			return err
		}
	}
}

// addTimeout bounds the start of a shard on the event loop: the table's
// positions, the stream's shard list and the restore scan of its dedup
// window. A hung call then gives the shard up instead of holding every
// later lease event.
const addTimeout = 5 * time.Minute

// addShard starts reading a newly acquired shard; when it cannot, it gives
// the lease back. It returns an error only when the pipeline has stopped.
func (w *Worker) addShard(ctx context.Context, l lease.Lease) error {
	w.metrics.shardHeld(l.Key)
	actx, cancel := context.WithTimeout(ctx, addTimeout)
	defer cancel()
	err := w.pipeline.AddShard(actx, l.Key, l.ParentShardIDs)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	w.log.Error("shard not started; releasing its lease", "shard", l.Key, "err", err.Error())
	w.giveUp(ctx, l.Key)
	return nil
}

// background runs a hand-over of shard's lease off the pipeline goroutine,
// so that a slow lease table does not hold up commits; the watchdog leaves
// the shard alone meanwhile. It outlives ctx (a shutdown still hands the
// lease over); its writes are bounded by leaseWriteTimeout.
func (w *Worker) background(ctx context.Context, shard string, fn func(context.Context)) {
	done := w.busy(shard)
	w.handover.Add(1)
	go func() {
		defer w.handover.Done()
		defer done()
		fn(context.WithoutCancel(ctx))
	}()
}

// leaseWrite runs a lease-table write up to leaseWriteAttempts times, each
// within leaseWriteTimeout. lease.ErrLost ends it at once: the lease is
// someone else's; so does a refusal (retry.Classify): it would be refused
// again.
func (w *Worker) leaseWrite(ctx context.Context, what, shard string, write func(context.Context) error) error {
	var err error
	for attempt := range leaseWriteAttempts {
		if attempt > 0 {
			if werr := backoff.Wait(ctx, attempt); werr != nil {
				return errors.Join(err, werr)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, leaseWriteTimeout)
		err = write(wctx)
		cancel()
		if err == nil || errors.Is(err, lease.ErrLost) {
			return err
		}
		w.metrics.leaseWriteFailed(what)
		if retry.Classify(err) == retry.Refused {
			return err // DynamoDB refused it (access denied, a bad request): a retry gets the same
		}
		w.log.Warn("lease write failed; retrying", "write", what, "shard", shard, "err", err.Error(), "attempt", attempt+1)
	}
	return err
}

// finish marks a shard read to its end and committed, and gives its lease
// back (finished leases are never taken again; children become eligible).
// If SHARD_END cannot be recorded, the lease is abandoned: whoever takes it
// next reads from the table's position, finds the end and records it.
func (w *Worker) finish(ctx context.Context, shard string) {
	err := w.leaseWrite(ctx, leaseWriteShardEnd, shard, func(ctx context.Context) error {
		return w.coord.Checkpoint(ctx, shard, lease.CheckpointShardEnd)
	})
	if err != nil && !errors.Is(err, lease.ErrLost) {
		w.log.Warn("shard end not recorded in the lease table; abandoning the lease", "shard", shard, "err", err.Error())
		w.coord.Abandon(shard)
		return
	}
	w.giveUp(ctx, shard)
}

// giveUp releases a lease nothing reads any more. If the lease table cannot
// be written, the lease is abandoned (no longer renewed) so that it moves
// after the failover time instead of staying held with no reader.
func (w *Worker) giveUp(ctx context.Context, shard string) {
	err := w.leaseWrite(ctx, leaseWriteRelease, shard, func(ctx context.Context) error {
		return w.coord.Release(ctx, shard)
	})
	if err != nil && !errors.Is(err, lease.ErrLost) {
		w.log.Warn("lease not released; abandoning it", "shard", shard, "err", err.Error())
		w.coord.Abandon(shard)
	}
}

// probeLoop reads the table's positions (one catalog load) when nothing
// else reached the table for probeEvery, so that an idle worker that is not
// the maintainer stays ready while the table answers.
func (w *Worker) probeLoop(ctx context.Context) error {
	return every(ctx, w.probeEvery, func(ctx context.Context) {
		if time.Since(time.Unix(0, w.sinkOK.Load())) < w.probeEvery {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, w.probeEvery)
		_, err := w.sink.Positions(pctx)
		cancel()
		switch {
		case err == nil:
			w.sinkOK.Store(time.Now().UnixNano())
		case ctx.Err() == nil:
			w.log.Warn("iceberg table probe failed", "err", err.Error())
		}
	})
}

// maintainLoop runs table maintenance every MaintenanceInterval while this
// worker holds the maintainer role; the other workers' loops only tick. A
// Maintain call in progress is cancelled when the role is lost. Each run
// drops the positions of shards the stream no longer lists; the orphan
// sweep is added to a run when the last successful one here is at least
// OrphanInterval old (the first run after start sweeps).
func (w *Worker) maintainLoop(ctx context.Context) error {
	return every(ctx, w.cfg.MaintenanceInterval, func(ctx context.Context) {
		if !w.role.IsHolder() {
			return
		}
		opts := w.cfg.Maintenance
		opts.LiveShards = w.liveShards
		if !w.lastSweep.IsZero() && time.Since(w.lastSweep) < w.cfg.OrphanInterval {
			opts.OrphanAge = 0
		}
		mctx, cancel := context.WithCancel(ctx)
		w.maintMu.Lock()
		w.maintCancel = cancel
		w.maintMu.Unlock()
		if !w.role.IsHolder() { // lost while we set up: maintainerLost missed cancel
			cancel()
		}
		res, err := w.maintainRound(mctx, opts)
		w.maintMu.Lock()
		w.maintCancel = nil
		w.maintMu.Unlock()
		lost := mctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case ctx.Err() != nil: // stopping: nothing to report
		case lost:
			w.log.Info("table maintenance stopped: maintainer role lost")
		case err != nil:
			w.metrics.maintained(false)
			w.log.Warn("table maintenance failed", "err", err.Error())
		default:
			if opts.OrphanAge > 0 {
				w.lastSweep = time.Now()
			}
			w.metrics.maintained(true)
			w.sinkOK.Store(time.Now().UnixNano())
			w.log.Info("table maintained", "hourly_tags", res.TagsCreated,
				"files_compacted", res.Compaction.FilesRewritten, "files_written", res.Compaction.FilesWritten,
				"snapshots_expired", res.SnapshotsExpired,
				"orphan_sweep", opts.OrphanAge > 0, "orphans_removed", res.OrphansRemoved,
				"metadata_files_removed", res.MetadataFilesRemoved,
				"positions_dropped", res.PositionsDropped)
		}
	})
}

// maintainRound sweeps the staged dead letters, then maintains the table,
// keeping from expiry the snapshots the sweep may not have resolved.
func (w *Worker) maintainRound(ctx context.Context, opts iceberg.MaintainOptions) (iceberg.MaintainResult, error) {
	if w.sweepDL != nil {
		sw, err := w.sweepDL(ctx)
		if err != nil {
			return iceberg.MaintainResult{}, fmt.Errorf("dead-letter sweep (maintenance skipped, no snapshot expired): %w", err)
		}
		opts.KeepAfter = &sw.Head
	}
	if w.committer != nil && w.committer.compact != nil {
		opts.Compact.TargetSize = -1 // the committer compacts, between its commits
	}
	return w.maint.Maintain(ctx, opts)
}

// liveShards lists the stream's shard ids for Maintain, which drops the
// positions of shards not among them.
func (w *Worker) liveShards(ctx context.Context) ([]string, error) {
	shards, err := w.shards.ListShards(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(shards))
	for i, s := range shards {
		ids[i] = s.ID
	}
	return ids, nil
}

// maintainerElected and maintainerLost are the role's callbacks (on its Run
// goroutine).
func (w *Worker) maintainerElected() {
	w.metrics.maintainer(true)
	w.log.Info("maintainer role won: this worker maintains the table", "every", w.cfg.MaintenanceInterval.String())
}

func (w *Worker) maintainerLost() {
	w.metrics.maintainer(false)
	w.maintMu.Lock()
	if w.maintCancel != nil {
		w.maintCancel()
	}
	w.maintMu.Unlock()
	w.log.Info("maintainer role lost: this worker no longer maintains the table")
}
