package iceberg

import (
	"context"
	"fmt"
	"time"
)

// ReplaySourcePrefix starts the position key of a replayed dead-letter
// object (pkg/replay). Like ingested files, such positions are never
// dropped as positions of vanished shards.
const ReplaySourcePrefix = "replay-"

// SweepSkew is how much earlier than its table load a sweep's Horizon is:
// iceberg-go refuses a snapshot stamped more than a minute before the
// table's last one, so a commit that lands after the load is stamped after
// Horizon even when its writer's clock is behind.
const SweepSkew = 2 * time.Minute

// DeadLetterSweep reports what SweepDeadLetters did.
type DeadLetterSweep struct {
	Published int // pending objects of landed commits made readable
	Removed   int // pending objects of commits that never landed, removed
	Waiting   int // pending objects left for a later sweep
	// Horizon: every pending object of a commit in a snapshot stamped
	// before Horizon has been published. Snapshot expiry must keep every
	// snapshot stamped at or after it (MaintainOptions.SnapshotAge at
	// least time.Since(Horizon)), or a crash between a commit and its
	// publication could leave a pending object whose commit can no longer
	// be found. Zero when the sweep failed: expire nothing this round.
	Horizon time.Time
}

// SweepDeadLetters resolves dl's pending objects against the table's
// snapshot history. It loads the table first and lists the pending folder
// after: a commit in the loaded history staged its objects before it
// landed, so the listing holds them. An object whose commit is in the
// history is published; one whose commit is not and that is older than
// minAge (raised to MinOrphanAge, far above SinkConfig.MaxFileAge, past
// which the sink refuses to commit a batch) is removed: its commit never
// landed and never will. The maintainer calls it before Maintain and
// passes Horizon on to snapshot expiry (DESIGN.md, "Dead letters").
func (s *Sink) SweepDeadLetters(ctx context.Context, dl *DeadLetter, minAge time.Duration) (DeadLetterSweep, error) {
	var res DeadLetterSweep
	minAge = max(minAge, MinOrphanAge)
	loaded := time.Now()
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return res, fmt.Errorf("load table for the dead-letter sweep: %w", err)
	}
	landed := map[string]bool{}
	for _, snap := range tbl.Metadata().Snapshots() {
		for _, id := range commitIDs(snap) { // several when a committer committed batches together
			landed[id] = true
		}
	}
	objs, err := dl.listPending(ctx, dl.pending)
	if err != nil {
		return res, fmt.Errorf("list pending dead letters: %w", err)
	}
	for _, o := range objs {
		switch {
		case landed[o.commitID]:
			if err := dl.publish(ctx, o); err != nil {
				return res, err
			}
			res.Published++
		case time.Since(o.written) >= minAge:
			if err := removeObject(ctx, o.loc); err != nil {
				return res, fmt.Errorf("dead letter: remove %s: %w", o.loc, err)
			}
			res.Removed++
		default:
			res.Waiting++
		}
	}
	res.Horizon = loaded.Add(-SweepSkew)
	s.log.Info("dead letters swept", "published", res.Published, "removed", res.Removed, "waiting", res.Waiting)
	return res, nil
}
