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

// DeadLetterSweep reports what SweepDeadLetters did.
type DeadLetterSweep struct {
	Published int // pending objects of landed commits made readable
	Removed   int // pending objects of commits that never landed, removed
	Waiting   int // pending objects left for a later sweep
	// Head is main's snapshot in the table the sweep loaded (0: it had
	// none): every pending object of a commit in Head or its ancestors has
	// been published. Snapshot expiry must keep every snapshot of main
	// after it (MaintainOptions.KeepAfter), or a crash between a commit and
	// its publication could leave a pending object whose commit can no
	// longer be found. By snapshot id, not by time: no writer's clock is
	// involved, and only the snapshots landed since the sweep are held.
	Head int64
}

// SweepDeadLetters resolves dl's pending objects against the table's
// snapshot history. It loads the table first and lists the pending folder
// after: a commit in the loaded history staged its objects before it
// landed, so the listing holds them. An object whose commit is in the
// history is published; one whose commit is not and that is older than
// minAge (raised to MinOrphanAge, far above SinkConfig.MaxFileAge, past
// which the sink refuses to commit a batch) is removed: its commit never
// landed and never will. The maintainer calls it before Maintain and
// passes Head on to snapshot expiry (DESIGN.md, "Dead letters").
func (s *Sink) SweepDeadLetters(ctx context.Context, dl *DeadLetter, minAge time.Duration) (DeadLetterSweep, error) {
	var res DeadLetterSweep
	minAge = max(minAge, MinOrphanAge)
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
	if cur := tbl.CurrentSnapshot(); cur != nil {
		res.Head = cur.SnapshotID
	}
	s.log.Info("dead letters swept", "published", res.Published, "removed", res.Removed, "waiting", res.Waiting)
	return res, nil
}
