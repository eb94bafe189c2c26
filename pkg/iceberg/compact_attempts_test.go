package iceberg

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
)

// unreferencedManifests lists the manifests and manifest lists under the
// table folder that no snapshot of the table names.
func unreferencedManifests(t *testing.T, env *testEnv) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	tfs, err := tbl.FS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, snap := range tbl.Metadata().Snapshots() {
		named[strings.TrimPrefix(snap.ManifestList, "file://")] = true
		ms, err := snap.Manifests(tfs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			named[strings.TrimPrefix(m.FilePath(), "file://")] = true
		}
	}
	var out []string
	err = filepath.WalkDir(tableDir(t, env), func(p string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".avro") && !named[filepath.ToSlash(p)] {
			out = append(out, filepath.Base(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A rewrite attempt that loses its compare-and-swap to an append leaves
// no manifest or manifest list behind once the rebased attempt lands (a
// 20,000-commit soak left about one every two seconds for the orphan sweep).
func TestRewriteAttemptsLeaveNoManifests(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	commitBatches(t, s, "shardId-1", 1, 4, 10)
	other := NewSink(env.cat, env.ident, SinkConfig{})
	cat := &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
		if n == 0 { // an append lands between the rewrite's load and its commit
			if _, err := other.Commit(ctx, makeBatch(t, "shardId-2", "", 1, 5)); err != nil {
				return err
			}
		}
		return nil
	}}
	compactor := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	res, err := compactor.Compact(ctx, compactNow)
	if err != nil || res.Partitions != 1 {
		t.Fatalf("compaction %+v, %v; want one partition rewritten", res, err)
	}
	if cat.calls < 2 {
		t.Fatalf("%d rewrite attempts, want the first to lose to the append", cat.calls)
	}
	if left := unreferencedManifests(t, env); len(left) != 0 {
		t.Errorf("manifests no snapshot names: %v", left)
	}
}

// A rewrite whose compare-and-swap applied though the catalog answered
// with a conflict (an SDK resending a request that had applied) has
// replaced the files itself: it must be found as landed, and its output
// files kept — not taken for stale and removed, which leaves the table
// naming deleted files.
func TestRewriteReportedAsConflictButLandedIsKept(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	commitBatches(t, s, "shardId-1", 1, 4, 10)
	before := tableRows(t, env, 0)
	cat := &scriptedCatalog{Catalog: env.cat, after: func(n int, err error) error {
		if n == 0 && err == nil {
			return fmt.Errorf("%w: ConcurrentModificationException: Update table failed due to concurrent modifications", table.ErrCommitFailed)
		}
		return nil
	}}
	compactor := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	res, err := compactor.Compact(ctx, compactNow)
	if err != nil || res.Partitions != 1 {
		t.Errorf("compaction %+v, %v; want the landed rewrite reported", res, err)
	}
	if cat.calls != 1 {
		t.Errorf("%d rewrite commits, want 1 (the landed one found, not repeated)", cat.calls)
	}
	if after := tableRows(t, env, 0); !slices.Equal(before, after) {
		t.Fatalf("rows changed: %d before, %d after", len(before), len(after))
	}
	if got := len(liveDataFiles(t, env)); got != 1 {
		t.Errorf("%d live files, want the rewrite's 1", got)
	}
}
