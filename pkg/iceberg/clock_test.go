package iceberg

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
)

// stampFuture makes the table's newest snapshot one stamped ahead by skew,
// as a writer whose clock runs ahead would leave it (a copy of the current
// snapshot, same manifest list, committed through the catalog).
func stampFuture(t *testing.T, env *testEnv, skew time.Duration) {
	t.Helper()
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		t.Fatal("no snapshot to copy")
	}
	next := *cur
	next.SnapshotID = cur.SnapshotID + 1
	next.ParentSnapshotID = &cur.SnapshotID
	next.SequenceNumber = tbl.Metadata().LastSequenceNumber() + 1
	next.TimestampMs = time.Now().Add(skew).UnixMilli()
	_, _, err = env.cat.CommitTable(ctx, env.ident,
		[]table.Requirement{table.AssertRefSnapshotID(table.MainBranch, &cur.SnapshotID)},
		[]table.Update{
			table.NewAddSnapshotUpdate(&next),
			table.NewSetSnapshotRefUpdate(table.MainBranch, next.SnapshotID, table.BranchRef, -1, -1, -1),
		})
	if err != nil {
		t.Fatalf("stamp a future snapshot: %v", err)
	}
}

// A writer whose clock is more than a minute ahead leaves snapshots that
// iceberg-go refuses to follow with an older one. The sink used to take the
// refusal for an unknown outcome and retry, keeping every attempt's data
// files; it now reports ErrClockSkew at once and removes its files.
func TestClockSkewIsReportedNotRetried(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	if _, err := NewSink(env.cat, env.ident, SinkConfig{}).Commit(ctx, makeBatch(t, "s", "", 1, 5)); err != nil {
		t.Fatal(err)
	}
	stampFuture(t, env, 5*time.Minute)
	cat := &scriptedCatalog{Catalog: env.cat}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	countParquet := func() int {
		n := 0
		root := strings.TrimPrefix(env.cfg.Warehouse, "file://")
		if err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				n++
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := countParquet()
	res, err := s.Commit(ctx, makeBatch(t, "s", "5", 6, 5))
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("commit under skew: %+v, %v; want ErrClockSkew", res, err)
	}
	if res.Retries != 0 || cat.calls > 1 {
		t.Errorf("%d retries, %d catalog commits; want none retried", res.Retries, cat.calls)
	}
	if got := countParquet(); got != before {
		t.Errorf("%d data files after the refused commit, want the %d from before", got, before)
	}
}
