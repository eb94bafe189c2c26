package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
)

// singleTable is the table the pipeline commits to in commit mode single
// (a commit.Table, like *iceberg.Sink): it writes the batch's data files,
// then hands the batch to the committer in-process when this worker holds
// the committer role (to the round of the next slot, slot.go), and
// otherwise stages it in the lease table and waits for the committer's
// verdict. It returns what Sink.Commit would.
type singleTable struct {
	StagingSink
	store     StageStore
	committer *committer
	workerID  string
	poll      time.Duration // how often a staged batch's item is read
	metrics   *Metrics
	log       *slog.Logger // nil: no debug trace of staged batches
	lead      *leadTracker // nil: not measured
}

var _ Sink = (*singleTable)(nil)

// Commit implements commit.Table.
func (t *singleTable) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	start := time.Now()
	if t.committer.isHolder() {
		defer t.committer.ownComing()()
	}
	p, err := t.Prepare(ctx, b)
	if err != nil {
		return commit.Result{}, err
	}
	if t.committer.isHolder() {
		t.noteLead(time.Since(start))
		o, err := t.committer.roundInSlot(ctx, &p)
		return outcomeResult(p, o, err)
	}
	return t.stage(ctx, p, start)
}

// stage writes p as a staged batch under the condition that this worker
// owns its shards' leases, then waits for its outcome.
func (t *singleTable) stage(ctx context.Context, p iceberg.Prepared, start time.Time) (commit.Result, error) {
	prepared := time.Now()
	payload, err := p.Marshal()
	if err != nil {
		t.RemovePrepared(ctx, p)
		return commit.Result{}, err
	}
	shards := make([]string, len(p.Ranges))
	for i, r := range p.Ranges {
		shards[i] = r.Shard
	}
	st := lease.Staged{CommitID: p.CommitID, Worker: t.workerID, Shards: shards, StagedAt: time.Now(), Payload: payload}
	err = t.store.Stage(ctx, st)
	if errors.Is(err, lease.ErrLost) {
		// Certainly not staged: the files are ours alone.
		t.RemovePrepared(ctx, p)
		return commit.Result{}, fmt.Errorf("%w: batch not staged, a lease moved: %w", commit.ErrPositionMoved, err)
	}
	if err != nil {
		// It may be staged: the committer commits or refuses it (and
		// removes its files); if it is not, the orphan sweep removes them.
		return commit.Result{}, fmt.Errorf("stage batch (outcome unknown): %w", err)
	}
	t.metrics.batchStaged()
	t.noteLead(time.Since(start))
	return t.await(ctx, p, trace{start: start, prepared: prepared, staged: time.Now()})
}

func (t *singleTable) noteLead(d time.Duration) {
	if t.lead != nil {
		t.lead.note(d)
	}
}

func (t *singleTable) leadNow() time.Duration {
	if t.lead == nil {
		return 0
	}
	return t.lead.get()
}

// lastReadTimeout bounds the read of a staged batch's item after the
// wait for it ended.
const lastReadTimeout = 2 * time.Second

// trace is when a staged batch passed each step on its worker, for the
// debug line "staged batch settled" (the committer's clock gives the
// rest: when its round picked the batch up, and when it settled it).
type trace struct {
	start, prepared, staged time.Time
	polls                   int
}

func (t *singleTable) traced(p iceberg.Prepared, tr trace, st lease.Staged) {
	if t.log == nil || !t.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	now := time.Now()
	t.log.Debug("staged batch settled", "commit_id", p.CommitID, "state", string(st.State),
		"prepare_s", tr.prepared.Sub(tr.start).Seconds(), "stage_s", tr.staged.Sub(tr.prepared).Seconds(),
		"to_settled_s", st.SettledAt.Sub(tr.staged).Seconds(), "to_seen_s", now.Sub(st.SettledAt).Seconds(),
		"total_s", now.Sub(tr.start).Seconds(), "polls", tr.polls, "lead_s", t.leadNow().Seconds())
}

// await polls p's staged item until the committer settles it, deletes the
// item and returns the outcome. When ctx ends first the outcome is
// unknown: the caller retries, and the table's positions decide.
func (t *singleTable) await(ctx context.Context, p iceberg.Prepared, tr trace) (commit.Result, error) {
	timer := time.NewTimer(t.poll)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		rctx := ctx
		if ctx.Err() != nil {
			// One last read, so that a batch settled since the last poll
			// (a worker stopping right after the committer's round) is
			// known and its item deleted.
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), lastReadTimeout)
			defer cancel()
		}
		st, err := t.store.GetStaged(rctx, p.CommitID)
		tr.polls++
		switch {
		case errors.Is(err, lease.ErrNotFound):
			return commit.Result{}, fmt.Errorf("staged batch %s vanished before this worker read its outcome (outcome unknown)", p.CommitID)
		case (err != nil || st.State == lease.StateStaged) && ctx.Err() != nil:
			return commit.Result{}, fmt.Errorf("staged batch %s not settled (outcome unknown): %w", p.CommitID, ctx.Err())
		case err != nil || st.State == lease.StateStaged:
			timer.Reset(t.poll)
			continue
		}
		t.traced(p, tr, st)
		// Best effort: the committer deletes it after a grace period.
		_ = t.store.DeleteStaged(rctx, p.CommitID)
		if st.State == lease.StateCommitted {
			return commit.Result{SnapshotID: st.SnapshotID, Rows: p.Rows(), DataFiles: len(p.Files), Bytes: p.Bytes()}, nil
		}
		reason, detail, _ := strings.Cut(st.Reason, ": ")
		return commit.Result{}, refusedError(reason, detail)
	}
}
