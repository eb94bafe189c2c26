package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
)

// Commit modes (WorkerConfig.CommitMode, --commit-mode).
const (
	// CommitPerWorker: every worker commits its own batches.
	CommitPerWorker = "worker"
	// CommitSingle: workers write their batches' data files and stage
	// them; one committer per table (lease.RoleCommitter) commits every
	// batch of an interval in one snapshot (DESIGN.md, "One committer").
	CommitSingle = "single"
)

// StagingSink is what commit mode single needs of the table
// (*iceberg.Sink): write a batch's files without committing them, commit
// many such batches in one snapshot, remove the files of one that will
// never be committed.
type StagingSink interface {
	Sink
	Prepare(ctx context.Context, b commit.Batch) (iceberg.Prepared, error)
	CommitPrepared(ctx context.Context, batches []iceberg.Prepared) ([]iceberg.PreparedOutcome, error)
	RemovePrepared(ctx context.Context, p iceberg.Prepared)
	Compact(ctx context.Context, opts iceberg.CompactOptions) (iceberg.CompactResult, error)
}

// StageStore is what commit mode single needs of the lease table
// (*lease.DynamoStore): staged batches, and the leases' owners.
type StageStore interface {
	Stage(ctx context.Context, st lease.Staged) error
	GetStaged(ctx context.Context, commitID string) (lease.Staged, error)
	ListStaged(ctx context.Context) ([]lease.Staged, error)
	SettleStaged(ctx context.Context, commitID string, state lease.StagedState, snapshotID int64, reason string, at time.Time) error
	DeleteStaged(ctx context.Context, commitID string) error
	List(ctx context.Context) ([]lease.Lease, error)
}

var (
	_ StagingSink = (*iceberg.Sink)(nil)
	_ StageStore  = (*lease.DynamoStore)(nil)
)

// Reasons a committer refuses a staged batch, recorded in its item and
// used as the metric label. A worker maps them back to the error
// Sink.Commit would have returned.
const (
	refusedMoved      = "moved"       // a shard's position is not the batch's After; files removed
	refusedRival      = "rival"       // another batch for the same range was committed; files removed
	refusedTooOld     = "too_old"     // files older than MaxFileAge
	refusedMaybeIn    = "maybe_in"    // positions past the batch's Last: it may be in the table; files kept
	refusedUndecoding = "bad_payload" // the item cannot be decoded
)

// settledGrace is how long the committer leaves a settled item for its
// worker to read before deleting it itself (the worker died).
const settledGrace = 5 * time.Minute

// committer commits, while its worker holds lease.RoleCommitter, the
// batches of its own pipeline (handed in by roundInSlot) and every staged
// batch, in one table commit per round. roundInSlot is called by the
// pipeline's flush (own batch) and by Run at each slot's start (slot.go);
// at most one round runs per slot, and rounds never overlap (mu).
type committer struct {
	sink     StagingSink
	store    StageStore
	workerID string
	isHolder func() bool
	interval time.Duration
	log      *slog.Logger
	metrics  *Metrics
	// afterCommit, when set, runs after the table commit and before the
	// staged items are marked; an error stops the round there (a test
	// simulates a committer dying between the two).
	afterCommit func() error
	// compact, when set, is compaction's rewrite (Sink.Compact), run every
	// compactEvery between this committer's commits: in commit mode single
	// nothing else appends, so the rewrite no longer starves on a busy
	// table. lastCompact is the Run goroutine's.
	compact      func(ctx context.Context) (iceberg.CompactResult, error)
	compactEvery time.Duration
	lastCompact  time.Time

	mu        sync.Mutex // held by a round and by a compaction: they never overlap
	lastRound time.Time
	// ownSince is when the holder's flush began to prepare its own batch
	// (unix ns; 0: none coming): its round serves the slot, and Run waits
	// for it (ownWait).
	ownSince atomic.Int64
}

// Run starts a round at the start of every slot (slot.go) while this
// worker holds the role, until ctx ends. When the holder's own flush is
// preparing a batch, whose round serves the slot, Run waits for it until
// 0.4 intervals into the slot, then runs the round without it.
//
// It also runs compaction every compactEvery, while holding the round
// lock.
func (c *committer) Run(ctx context.Context) error {
	t := time.NewTimer(untilSlot(time.Now(), c.interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		c.slotStarted(ctx)
		t.Reset(untilSlot(time.Now(), c.interval))
	}
}

func (c *committer) slotStarted(ctx context.Context) {
	if !c.isHolder() {
		return
	}
	if since := c.ownSince.Load(); since != 0 && time.Since(time.Unix(0, since)) < c.interval {
		// The holder's own batch is being prepared and its round serves
		// the slot. If it has not started by ownWait into the slot (a slow
		// write on a loaded machine), the round runs without it, so the
		// staged batches do not lose the slot with it.
		slot := slotStart(time.Now(), c.interval)
		if err := retry.Sleep(ctx, time.Until(slot.Add(c.interval*ownWait/10))); err != nil {
			return
		}
	}
	if _, err := c.roundInSlot(ctx, nil); err != nil && ctx.Err() == nil {
		c.log.Warn("committer round failed; retrying next slot", "err", err.Error())
	}
	if c.compact != nil && time.Since(c.lastCompact) >= c.compactEvery {
		c.lastCompact = time.Now()
		_, _ = c.compactNow(ctx) // logged; the next run retries
	}
}

// ownWait is how far into a slot, in tenths of an interval, Run waits for
// the round of the holder's own batch before it runs the slot's round
// without it (rounds start in the slot's first half).
const ownWait = 4

// ownComing marks the holder's own batch as being prepared (until the
// returned func is called): Run leaves the slot's round to it.
func (c *committer) ownComing() func() {
	c.ownSince.Store(time.Now().UnixNano())
	return func() { c.ownSince.Store(0) }
}

// roundInSlot runs a round if none ran in the current slot and the slot
// is less than half over; otherwise, with own (the holder's flush) it
// waits for the next slot, and without (Run) it returns at once: the slot
// had its round. So the committer commits at most once per slot, rounds
// start at least half an interval apart, and staged batches, staged just
// before a slot starts, wait only for the lead.
func (c *committer) roundInSlot(ctx context.Context, own *iceberg.Prepared) (iceberg.PreparedOutcome, error) {
	asked := time.Now()
	for {
		c.mu.Lock()
		now := time.Now()
		slot := slotStart(now, c.interval)
		if c.lastRound.Before(slot) && now.Sub(slot) <= c.interval/2 {
			defer c.mu.Unlock()
			return c.roundLocked(ctx, own, asked)
		}
		c.mu.Unlock()
		if own == nil {
			return iceberg.PreparedOutcome{}, nil
		}
		if err := retry.Sleep(ctx, untilSlot(now, c.interval)); err != nil {
			return iceberg.PreparedOutcome{}, err
		}
	}
}

// compactNow runs compaction between two rounds: no commit of this
// committer (the table's only appender in commit mode single) can land
// while it runs, so its rewrite commits are not refused by appends. Rounds
// wait meanwhile; staged batches wait with them.
func (c *committer) compactNow(ctx context.Context) (iceberg.CompactResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	res, err := c.compact(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("compaction by the committer failed; the next run retries", "err", err.Error())
		}
		return res, err
	}
	c.log.Info("table compacted by the committer", "partitions", res.Partitions, "files_compacted", res.FilesRewritten,
		"files_written", res.FilesWritten, "took", time.Since(start).String())
	return res, nil
}

// round commits own (nil: none) with every staged batch in one table
// commit, marks the staged items committed or refused, and returns own's
// outcome.
func (c *committer) round(ctx context.Context, own *iceberg.Prepared) (iceberg.PreparedOutcome, error) {
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roundLocked(ctx, own, asked)
}

// roundLocked is round's body; c.mu is held.
func (c *committer) roundLocked(ctx context.Context, own *iceberg.Prepared, asked time.Time) (iceberg.PreparedOutcome, error) {
	rt := roundTrace{asked: asked, start: time.Now(), prev: c.lastRound, own: own != nil}
	defer c.traced(&rt)
	c.lastRound = rt.start
	items, err := c.store.ListStaged(ctx)
	rt.listed = time.Now()
	if err != nil {
		if own == nil {
			return iceberg.PreparedOutcome{}, err
		}
		// The own batch does not wait for the lease table: staged batches
		// wait for the next round.
		c.log.Warn("staged batches not listed; committing this worker's batch alone", "err", err.Error())
	}
	pending := c.sweepSettled(ctx, items)
	batches, staged := c.order(ctx, own, pending)
	rt.ordered, rt.staged = time.Now(), staged
	if len(batches) == 0 {
		return iceberg.PreparedOutcome{}, nil
	}
	outs, cerr := c.sink.CommitPrepared(ctx, batches)
	rt.committed = time.Now()
	c.metrics.committerCommitted(outs)
	if c.afterCommit != nil {
		if err := c.afterCommit(); err != nil {
			return iceberg.PreparedOutcome{}, err
		}
	}
	first := 0
	if own != nil {
		first = 1
	}
	c.settle(ctx, staged, outs[first:])
	rt.settled = time.Now()
	if own == nil {
		return iceberg.PreparedOutcome{}, cerr
	}
	return outs[0], cerr
}

// roundTrace is when a round passed each step, for the debug line
// "committer round".
type roundTrace struct {
	asked, start, prev                  time.Time
	listed, ordered, committed, settled time.Time
	own                                 bool
	staged                              []lease.Staged
}

func (c *committer) traced(rt *roundTrace) {
	if c.log == nil || !c.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	var oldest time.Duration
	for _, st := range rt.staged {
		oldest = max(oldest, rt.start.Sub(st.StagedAt))
	}
	since := func(a, b time.Time) float64 {
		if a.IsZero() || b.IsZero() {
			return -1
		}
		return a.Sub(b).Seconds()
	}
	c.log.Debug("committer round", "own", rt.own, "staged", len(rt.staged), "oldest_staged_s", oldest.Seconds(),
		"since_prev_s", since(rt.start, rt.prev), "lock_s", since(rt.start, rt.asked), "list_s", since(rt.listed, rt.start),
		"order_s", since(rt.ordered, rt.listed), "commit_s", since(rt.committed, rt.ordered), "settle_s", since(rt.settled, rt.committed))
}

// sweepSettled deletes settled items older than settledGrace (their worker
// did not) and returns the items still staged.
func (c *committer) sweepSettled(ctx context.Context, items []lease.Staged) []lease.Staged {
	var pending []lease.Staged
	for _, st := range items {
		switch {
		case st.State == lease.StateStaged:
			pending = append(pending, st)
		case time.Since(st.SettledAt) > settledGrace:
			if err := c.store.DeleteStaged(ctx, st.CommitID); err != nil {
				c.log.Warn("settled staged batch not deleted", "commit_id", st.CommitID, "err", err.Error())
			}
		}
	}
	c.metrics.stagedWaiting(len(pending))
	return pending
}

// order decodes the staged items and orders the batches for
// CommitPrepared, whose earlier batches win a rivalry: own first (its
// worker holds its leases), then batches staged by the current owner of
// every shard they carry, then by staging time. It returns the batches and
// the items they came from (after own, in the same order); an item that
// cannot be decoded is refused on the spot.
func (c *committer) order(ctx context.Context, own *iceberg.Prepared, pending []lease.Staged) ([]iceberg.Prepared, []lease.Staged) {
	owners := map[string]string{}
	if rivals(own, pending) {
		owners = c.owners(ctx, pending)
	}
	type cand struct {
		st      lease.Staged
		p       iceberg.Prepared
		current bool
	}
	var cands []cand
	for _, st := range pending {
		p, err := iceberg.UnmarshalPrepared(st.Payload)
		if err != nil {
			c.refuseItem(ctx, st, refusedUndecoding, err)
			continue
		}
		current := true
		for _, shard := range st.Shards {
			current = current && (len(owners) == 0 || owners[shard] == st.Worker)
		}
		cands = append(cands, cand{st: st, p: p, current: current})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.current != b.current {
			return boolFirst(a.current)
		}
		return cmp.Or(a.st.StagedAt.Compare(b.st.StagedAt), strings.Compare(a.st.CommitID, b.st.CommitID))
	})
	var batches []iceberg.Prepared
	if own != nil {
		batches = append(batches, *own)
	}
	staged := make([]lease.Staged, len(cands))
	for i, cd := range cands {
		batches = append(batches, cd.p)
		staged[i] = cd.st
	}
	return batches, staged
}

// rivals reports whether two of the batches (own and the staged ones)
// carry the same shard. Only then does the order decide anything, and only
// then are the leases' owners read: in the steady state every worker
// stages one batch for its own shards, and the round saves a scan of the
// lease table.
func rivals(own *iceberg.Prepared, pending []lease.Staged) bool {
	seen := map[string]bool{}
	if own != nil {
		for _, r := range own.Ranges {
			seen[r.Shard] = true
		}
	}
	for _, st := range pending {
		for _, s := range st.Shards {
			if seen[s] {
				return true
			}
		}
		for _, s := range st.Shards {
			seen[s] = true
		}
	}
	return false
}

func boolFirst(a bool) int {
	if a {
		return -1
	}
	return 1
}

// owners maps each shard lease to its owner, read only when two batches
// of a round carry the same shard (rivals). If the lease table cannot be read, every staged batch counts as
// its shards' owner's and the oldest wins a rivalry: still one batch per
// range, and the loser re-reads.
func (c *committer) owners(ctx context.Context, pending []lease.Staged) map[string]string {
	out := map[string]string{}
	if len(pending) == 0 {
		return out
	}
	leases, err := c.store.List(ctx)
	if err != nil {
		c.log.Warn("lease owners not read; staged rivals are ordered by age", "err", err.Error())
		for _, st := range pending {
			for _, s := range st.Shards {
				out[s] = st.Worker
			}
		}
		return out
	}
	for _, l := range leases {
		out[l.Key] = l.Owner
	}
	return out
}

// settle marks each staged item with its batch's outcome; undecided ones
// stay staged for the next round, which finds them in the table if they
// landed.
//
// The items are marked in parallel: each is one conditional write of its
// own, and their workers wait for them.
func (c *committer) settle(ctx context.Context, staged []lease.Staged, outs []iceberg.PreparedOutcome) {
	var wg sync.WaitGroup
	for i, st := range staged {
		o := outs[i]
		switch {
		case o.Landed:
			wg.Go(func() {
				err := c.store.SettleStaged(ctx, st.CommitID, lease.StateCommitted, o.SnapshotID, "", time.Now())
				if err != nil {
					c.log.Warn("staged batch committed but not marked; the next round marks it", "commit_id", st.CommitID, "err", err.Error())
					return
				}
				c.metrics.stageLatency(time.Since(st.StagedAt))
			})
		case o.Refused != nil:
			wg.Go(func() { c.refuseItem(ctx, st, refusalReason(o), o.Refused) })
		}
	}
	wg.Wait()
}

func (c *committer) refuseItem(ctx context.Context, st lease.Staged, reason string, why error) {
	c.metrics.stagedRefused(reason)
	c.log.Info("staged batch refused", "commit_id", st.CommitID, "worker", st.Worker, "reason", reason, "err", why.Error())
	if err := c.store.SettleStaged(ctx, st.CommitID, lease.StateRefused, 0, reason+": "+why.Error(), time.Now()); err != nil {
		c.log.Warn("staged batch refused but not marked; the next round decides again", "commit_id", st.CommitID, "err", err.Error())
	}
}

func refusalReason(o iceberg.PreparedOutcome) string {
	switch {
	case errors.Is(o.Refused, iceberg.ErrFilesTooOld):
		return refusedTooOld
	case !o.Removed:
		return refusedMaybeIn
	case errors.Is(o.Refused, iceberg.ErrRivalBatch):
		return refusedRival
	default:
		return refusedMoved
	}
}

// outcomeResult turns a batch's outcome into what Sink.Commit returns:
// a Result when it landed, an error wrapping commit.ErrPositionMoved when
// a position moved (or a rival won) and its files are gone,
// iceberg.ErrFilesTooOld, or another error (outcome unknown to the
// caller; the pipeline retries and the positions decide).
func outcomeResult(p iceberg.Prepared, o iceberg.PreparedOutcome, err error) (commit.Result, error) {
	switch {
	case o.Landed:
		return commit.Result{SnapshotID: o.SnapshotID, Rows: p.Rows(), DataFiles: len(p.Files), Bytes: p.Bytes(), Retries: o.Retries}, nil
	case o.Refused != nil:
		return commit.Result{}, refusedError(refusalReason(o), o.Refused.Error())
	case err != nil:
		return commit.Result{}, fmt.Errorf("commit batch %s: %w", p.CommitID, err)
	}
	return commit.Result{}, fmt.Errorf("commit batch %s: no outcome", p.CommitID)
}

// refusedError is the error for a batch refused for reason.
func refusedError(reason, detail string) error {
	switch reason {
	case refusedMoved, refusedRival:
		return fmt.Errorf("%w (committer: %s)", commit.ErrPositionMoved, detail)
	case refusedTooOld:
		return fmt.Errorf("%w (committer: %s)", iceberg.ErrFilesTooOld, detail)
	}
	// maybe_in, bad_payload: the batch may be in the table; the caller
	// retries, and the table's positions fence the retry.
	return fmt.Errorf("batch refused by the committer, it may be in the table: %s", detail)
}
