package iceberg

import (
	"context"
	"fmt"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// LatestStartProperty is the table property that fixes what
// --initial-position latest means for the whole application: the time the
// first worker started with it (RFC 3339, UTC). A shard with no position in
// the table starts reading at that time, whichever worker reads it and
// however late, so a failover or restart never skips what arrived since.
const LatestStartProperty = "paystream.initial-position.latest"

// LatestStart returns the application's latest-start time: the table's
// LatestStartProperty, set to now by the first caller (compare-and-swap on
// the table's metadata, so concurrent first callers agree on one value).
// Called once at worker start when --initial-position is latest.
func (s *Sink) LatestStart(ctx context.Context, now time.Time) (time.Time, error) {
	for attempt := 0; ; attempt++ {
		tbl, err := s.cat.LoadTable(ctx, s.ident)
		if err != nil {
			return time.Time{}, fmt.Errorf("load table for the latest start: %w", err)
		}
		if v, ok := tbl.Properties()[LatestStartProperty]; ok {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return time.Time{}, fmt.Errorf("table property %s=%q is not an RFC 3339 time: %w", LatestStartProperty, v, err)
			}
			return t, nil
		}
		// An empty append snapshot with the property, main pinned: of two
		// first callers exactly one lands (a property change alone moves
		// no ref, so both would, and the second would overwrite the first
		// after it was already returned).
		txn := tbl.NewTransaction()
		if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
			return time.Time{}, err
		}
		if err := txn.AddFiles(ctx, nil, nil, true); err != nil {
			return time.Time{}, fmt.Errorf("stage the latest start: %w", err)
		}
		at := now.UTC().Truncate(time.Millisecond)
		if err := txn.SetProperties(iceberggo.Properties{LatestStartProperty: at.Format(time.RFC3339Nano)}); err != nil {
			return time.Time{}, fmt.Errorf("stage the latest start: %w", err)
		}
		_, err = txn.Commit(ctx)
		switch {
		case err == nil:
			s.log.Info("initial position latest fixed for the application", "latest_start", at)
			return at, nil
		case !isConflict(err) || attempt >= s.cfg.MaxRetries:
			return time.Time{}, fmt.Errorf("record the latest start: %w", err)
		}
		if err := s.backoff.Wait(ctx, attempt); err != nil {
			return time.Time{}, err
		}
	}
}
