package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

func TestCommitAndPositions(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})

	pos, err := s.Positions(ctx)
	if err != nil || len(pos) != 0 {
		t.Fatalf("fresh table positions = %v, %v; want empty", pos, err)
	}
	res, err := s.Commit(ctx, makeBatch(t, "shardId-000", "", 1, 50))
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if res.Rows != 50 || res.DataFiles < 1 || res.Bytes <= 0 || res.SnapshotID == 0 {
		t.Errorf("result = %+v", res)
	}
	if _, err := s.Commit(ctx, makeBatch(t, "shardId-000", "50", 51, 10)); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	pos, err = s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pos["shardId-000"] != "60" || len(pos) != 1 {
		t.Errorf("positions = %v, want shardId-000=60", pos)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("shardId-000", 1, 60))
}

func TestPositionMovedNothingAppended(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	if _, err := s.Commit(ctx, makeBatch(t, "s1", "", 1, 5)); err != nil {
		t.Fatal(err)
	}
	before, _ := env.cat.LoadTable(ctx, env.ident)
	for _, after := range []string{"", "3", "6"} {
		_, err := s.Commit(ctx, makeBatch(t, "s1", after, 7, 5))
		if !errors.Is(err, commit.ErrPositionMoved) {
			t.Errorf("after=%q: err = %v, want commit.ErrPositionMoved", after, err)
		}
	}
	after, _ := env.cat.LoadTable(ctx, env.ident)
	if before.CurrentSnapshot().SnapshotID != after.CurrentSnapshot().SnapshotID {
		t.Error("a rejected batch made a snapshot")
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s1", 1, 5))
}

func TestConcurrentWritersDifferentShards(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	const writers, batches, perBatch = 4, 8, 25
	reg := prometheus.NewRegistry()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for w := range writers {
		cat := openCatalog(t, env.cfg) // one catalog handle per writer, like separate tasks
		s := NewSink(cat, env.ident, SinkConfig{Registerer: reg, MaxRetries: 50, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		shard := fmt.Sprintf("shardId-%03d", w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			after := ""
			for b := range batches {
				first := b*perBatch + 1
				batch := makeBatch(t, shard, after, first, perBatch)
				if _, err := s.Commit(ctx, batch); err != nil {
					errs <- fmt.Errorf("%s batch %d: %w", shard, b, err)
					return
				}
				after = batch.Ranges[0].Last
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var want []string
	pos, err := NewSink(env.cat, env.ident, SinkConfig{}).Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for w := range writers {
		shard := fmt.Sprintf("shardId-%03d", w)
		want = append(want, ids(shard, 1, batches*perBatch)...)
		if got := pos[shard]; got != strconv.Itoa(batches*perBatch) {
			t.Errorf("position of %s = %q, want %d", shard, got, batches*perBatch)
		}
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), want)
	t.Logf("conflicts retried: %v, commits: %v",
		metricValue(t, reg, "paystream_sink_commit_conflicts_total"),
		metricValue(t, reg, "paystream_sink_commits_total"))
}

func TestZombieSameRangeExactlyOneWins(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	sinks := []*Sink{
		NewSink(openCatalog(t, env.cfg), env.ident, SinkConfig{MinBackoff: time.Millisecond}),
		NewSink(openCatalog(t, env.cfg), env.ident, SinkConfig{MinBackoff: time.Millisecond}),
	}
	const rounds, perBatch = 6, 20
	after := ""
	for r := range rounds {
		batch := makeBatch(t, "shardId-7", after, r*perBatch+1, perBatch)
		var (
			wg      sync.WaitGroup
			results [2]error
			start   = make(chan struct{})
		)
		for i, s := range sinks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, results[i] = s.Commit(ctx, batch)
			}()
		}
		close(start)
		wg.Wait()
		wins, moved := 0, 0
		for _, err := range results {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, commit.ErrPositionMoved):
				moved++
			default:
				t.Fatalf("round %d: unexpected error %v", r, err)
			}
		}
		if wins != 1 || moved != 1 {
			t.Fatalf("round %d: %d winners and %d commit.ErrPositionMoved, want 1 and 1 (%v)", r, wins, moved, results)
		}
		after = batch.Ranges[0].Last
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("shardId-7", 1, rounds*perBatch))
}

// scriptedCatalog wraps a real catalog and lets a test act around
// CommitTable calls (iceberg-go's sequentialCatalog pattern).
type scriptedCatalog struct {
	catalog.Catalog
	mu    sync.Mutex
	calls int
	// before runs ahead of CommitTable call n (0-based); a non-nil error is
	// returned without committing.
	before func(n int) error
	// after runs once the real CommitTable returned; a non-nil error replaces
	// its result (the commit happened but the caller hears an error).
	after func(n int, err error) error
}

func (c *scriptedCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, upd []table.Update) (table.Metadata, string, error) {
	c.mu.Lock()
	n := c.calls
	c.calls++
	c.mu.Unlock()
	if c.before != nil {
		if err := c.before(n); err != nil {
			return nil, "", err
		}
	}
	md, loc, err := c.Catalog.CommitTable(ctx, ident, reqs, upd)
	if c.after != nil {
		if aerr := c.after(n, err); aerr != nil {
			return nil, "", aerr
		}
	}
	return md, loc, err
}

// LoadTable must hand out tables whose commits go through the wrapper.
func (c *scriptedCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}
	return table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, c), nil
}

func TestConflictWithOtherShardIsRetried(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	other := NewSink(env.cat, env.ident, SinkConfig{})
	reg := prometheus.NewRegistry()
	cases := []struct {
		name   string
		inject func(n int) error
	}{
		// A commit for another shard lands between our load and our commit:
		// iceberg-go fails the pinned branch requirement with a plain error.
		{"branch changed", func(n int) error {
			if n == 0 {
				if _, err := other.Commit(ctx, makeBatch(t, "other", "", 1, 3)); err != nil {
					return err
				}
			}
			return nil
		}},
		// The catalog reports a lost compare-and-swap.
		{"ErrCommitFailed", func(n int) error {
			if n == 0 {
				return fmt.Errorf("%w: metadata location moved", table.ErrCommitFailed)
			}
			return nil
		}},
	}
	after := ""
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cat := &scriptedCatalog{Catalog: env.cat, before: tc.inject}
			s := NewSink(cat, env.ident, SinkConfig{Registerer: reg, MinBackoff: time.Millisecond})
			batch := makeBatch(t, "mine", after, i*10+1, 10)
			res, err := s.Commit(ctx, batch)
			if err != nil {
				t.Fatalf("commit: %v", err)
			}
			if res.Retries != 1 {
				t.Errorf("retries = %d, want 1", res.Retries)
			}
			after = batch.Ranges[0].Last
		})
	}
	if got := metricValue(t, reg, "paystream_sink_commit_conflicts_total"); got != 2 {
		t.Errorf("conflicts metric = %v, want 2", got)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("mine", 1, 20), ids("other", 1, 3)...))
}

func TestUnknownOutcomeThatLandedIsNotRepeated(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := &scriptedCatalog{Catalog: env.cat, after: func(n int, err error) error {
		if n == 0 && err == nil {
			return errors.New("read tcp 10.0.0.1:443: connection reset by peer")
		}
		return nil
	}}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	res, err := s.Commit(ctx, makeBatch(t, "s", "", 1, 10))
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if res.SnapshotID == 0 || res.Rows != 10 {
		t.Errorf("result = %+v", res)
	}
	if cat.calls != 1 {
		t.Errorf("CommitTable called %d times, want 1 (the landed commit must be found, not repeated)", cat.calls)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 10))
}

func TestUnknownOutcomeThatFailedIsRetried(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
		if n == 0 {
			return context.DeadlineExceeded // the request timed out before reaching the catalog
		}
		return nil
	}}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	res, err := s.Commit(ctx, makeBatch(t, "s", "", 1, 10))
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if res.Retries != 1 || cat.calls != 2 {
		t.Errorf("retries = %d, CommitTable calls = %d; want 1 and 2", res.Retries, cat.calls)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 10))
}

func TestWriterKilledBeforeCommitLeavesNoRows(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	// The writer dies after writing its data files, before the catalog
	// commit: modelled by a catalog that never lets the commit through.
	dead := &scriptedCatalog{Catalog: env.cat, before: func(int) error { return errors.New("killed") }}
	batch := makeBatch(t, "s", "", 1, 40)
	if _, err := NewSink(dead, env.ident, SinkConfig{MaxRetries: -1}).Commit(ctx, batch); err == nil {
		t.Fatal("commit through a dead catalog succeeded")
	}
	if got := eventIDCounts(t, env.cat, env.ident); len(got) != 0 {
		t.Fatalf("table has %d rows after a killed writer, want 0", len(got))
	}
	orphans := parquetFiles(t, env)
	if len(orphans) == 0 {
		t.Fatal("expected the killed writer's data files on disk (orphans)")
	}

	// The restarted worker resumes from the table's position (none) and
	// commits the same records once.
	s := NewSink(env.cat, env.ident, SinkConfig{})
	pos, err := s.Positions(ctx)
	if err != nil || len(pos) != 0 {
		t.Fatalf("positions = %v, %v; want none", pos, err)
	}
	if _, err := s.Commit(ctx, batch); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 40))
	live := liveDataFiles(t, env)
	for _, o := range orphans {
		if live[o] {
			t.Errorf("orphan %s became part of the table", o)
		}
	}
}

func TestRejectsNullOrEmptyEventID(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})

	rows := makeRows("s", 1, 3)
	rows[1].EventID = ""
	empty := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
	defer empty.Release()

	good := schema.BuildRecordBatch(memory.DefaultAllocator, makeRows("s", 1, 3))
	defer good.Release()
	nb := array.NewStringBuilder(memory.DefaultAllocator)
	nb.AppendValues([]string{"a", "", "c"}, []bool{true, false, true})
	nullIDs := nb.NewArray()
	defer nullIDs.Release()
	cols := append([]arrow.Array{nullIDs}, good.Columns()[1:]...)
	withNull := array.NewRecordBatch(good.Schema(), cols, good.NumRows())
	defer withNull.Release()

	for name, rec := range map[string]arrow.RecordBatch{"empty": empty, "null": withNull} {
		_, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "s", Last: "3"}}})
		if !errors.Is(err, commit.ErrInvalidBatch) {
			t.Errorf("%s event_id: err = %v, want commit.ErrInvalidBatch", name, err)
		}
	}
	if got := eventIDCounts(t, env.cat, env.ident); len(got) != 0 {
		t.Errorf("table has %d rows, want 0", len(got))
	}
	if files := parquetFiles(t, env); len(files) != 0 {
		t.Errorf("invalid batches wrote %d data files", len(files))
	}
}

func TestEmptyBatchMovesPositionOnly(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	if _, err := s.Commit(ctx, commit.Batch{Ranges: []commit.ShardRange{{Shard: "a", Last: "17"}, {Shard: "b", After: "", Last: "99"}}}); err != nil {
		t.Fatal(err)
	}
	pos, _ := s.Positions(ctx)
	if pos["a"] != "17" || pos["b"] != "99" {
		t.Errorf("positions = %v", pos)
	}
	// A zombie holding the old position is still fenced: the empty commit
	// made a snapshot, so the pinned branch check sees it.
	if _, err := s.Commit(ctx, makeBatch(t, "a", "", 1, 17)); !errors.Is(err, commit.ErrPositionMoved) {
		t.Errorf("err = %v, want commit.ErrPositionMoved", err)
	}
	if got := eventIDCounts(t, env.cat, env.ident); len(got) != 0 {
		t.Errorf("table has %d rows, want 0", len(got))
	}
}

func TestInvalidRanges(t *testing.T) {
	env := newSQLiteEnv(t)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	for _, rs := range [][]commit.ShardRange{
		nil,
		{{Shard: "", Last: "1"}},
		{{Shard: strings.Repeat("s", commit.MaxShardIDBytes+1), Last: "1"}},
		{{Shard: "a", Last: "x1"}},
		{{Shard: "a", After: "5", Last: "5"}},
		{{Shard: "a", After: "6", Last: "5"}},
		{{Shard: "a", Last: "5"}, {Shard: "a", After: "5", Last: "6"}},
	} {
		if _, err := s.Commit(context.Background(), commit.Batch{Ranges: rs}); !errors.Is(err, commit.ErrInvalidBatch) {
			t.Errorf("ranges %v: err = %v, want commit.ErrInvalidBatch", rs, err)
		}
	}
}

func TestRecentEventIDs(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	for _, shard := range []string{"s1", "s2"} {
		if _, err := s.Commit(ctx, makeBatch(t, shard, "", 1, 30)); err != nil {
			t.Fatal(err)
		}
	}
	// makeRows ingests row i at 12:00 + i minutes + 1s.
	since := time.Date(2026, 3, 1, 12, 21, 0, 0, time.UTC)
	got := recentIDs(t, s, []string{"s1"}, since)
	var want []string
	for _, id := range ids("s1", 21, 10) {
		want = append(want, "s1/"+id)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("recent ids = %v\nwant %v", got, want)
	}
}

func TestMaintainExpiresSnapshots(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	after := ""
	for i := range 20 {
		b := makeBatch(t, "s", after, i*2+1, 2)
		if _, err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		after = b.Ranges[0].Last
	}
	res, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 5})
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := env.cat.LoadTable(ctx, env.ident)
	if got := len(tbl.Metadata().Snapshots()); got != 5 || res.SnapshotsExpired != 15 {
		t.Errorf("after Maintain(keep 5): %d snapshots, %d expired; want 5 and 15", got, res.SnapshotsExpired)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 40))
}

// Glue's SDK retryer resends an UpdateTable whose first attempt applied; the
// resend fails with ConcurrentModificationException, which iceberg-go
// reports as ErrCommitFailed. The commit landed: the sink must find it and
// report success, and must not delete its manifests or data files (it used
// to delete both, losing the rows and breaking every later commit with
// "could not open manifest file").
func TestConflictReportedForALandedCommitKeepsIt(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := &scriptedCatalog{Catalog: env.cat, after: func(n int, err error) error {
		if n == 0 && err == nil {
			return fmt.Errorf("%w: ConcurrentModificationException: Update table failed due to concurrent modifications", table.ErrCommitFailed)
		}
		return nil
	}}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	first := makeBatch(t, "s", "", 1, 10)
	res, err := s.Commit(ctx, first)
	if err != nil {
		t.Fatalf("commit: %v (the commit landed; it must be reported as committed)", err)
	}
	if res.SnapshotID == 0 || res.Rows != 10 {
		t.Errorf("result = %+v, want the landed snapshot with 10 rows", res)
	}
	if cat.calls != 1 {
		t.Errorf("CommitTable called %d times, want 1 (the landed commit must be found, not repeated)", cat.calls)
	}
	// The table is whole: the next commit of any writer works and every row
	// reads back once.
	other := NewSink(env.cat, env.ident, SinkConfig{})
	if _, err := other.Commit(ctx, makeBatch(t, "s", first.Ranges[0].Last, 11, 5)); err != nil {
		t.Fatalf("next commit after the reported conflict: %v", err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 15))
}

// A conflict that did not land leaves no manifests behind: after the retry
// the warehouse holds as many manifest files as a commit without conflict.
func TestRefusedAttemptManifestsRemoved(t *testing.T) {
	count := func(inject bool) int {
		env := newSQLiteEnv(t)
		cat := conflictOnce(env, inject)
		s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
		res, err := s.Commit(context.Background(), makeBatch(t, "s", "", 1, 10))
		if err != nil {
			t.Fatal(err)
		}
		if inject && res.Retries != 1 {
			t.Fatalf("retries = %d, want 1: the conflict was not injected", res.Retries)
		}
		return manifestFiles(t, env)
	}
	clean, refused := count(false), count(true)
	if clean == 0 || refused != clean {
		t.Errorf("%d manifest files after a refused attempt and its retry, %d after a clean commit; want equal", refused, clean)
	}
}

// conflictOnce is env's catalog refusing the first commit as a conflict
// before it reaches the catalog, when inject is set.
func conflictOnce(env *testEnv, inject bool) *scriptedCatalog {
	return &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
		if inject && n == 0 {
			return fmt.Errorf("%w: metadata location moved", table.ErrCommitFailed)
		}
		return nil
	}}
}

// manifestFiles counts the manifests and manifest lists in env's
// warehouse.
func manifestFiles(t *testing.T, env *testEnv) int {
	t.Helper()
	n := 0
	root := strings.TrimPrefix(env.cfg.Warehouse, "file://")
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".avro") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A writer held up past MaxFileAge between writing its data files and
// committing them (a pause, a slow catalog) drops them instead: the orphan
// sweep may already have deleted them, and a commit referencing a deleted
// file loses its rows.
func TestFilesOlderThanMaxFileAgeAreNotCommitted(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
		if n == 0 {
			time.Sleep(3 * time.Second) // held up…
			return fmt.Errorf("%w: metadata location moved", table.ErrCommitFailed)
		}
		return nil
	}}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond, MaxFileAge: 2 * time.Second})
	_, err := s.Commit(ctx, makeBatch(t, "s", "", 1, 10))
	if !errors.Is(err, ErrFilesTooOld) {
		t.Fatalf("err = %v, want ErrFilesTooOld", err)
	}
	if cat.calls != 1 {
		t.Errorf("CommitTable called %d times, want 1 (no attempt with files past their age)", cat.calls)
	}
	root := strings.TrimPrefix(env.cfg.Warehouse, "file://")
	parquet := 0
	if err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			parquet++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if parquet != 0 {
		t.Errorf("%d data files left behind, want the dropped batch's files removed", parquet)
	}
	pos, err := s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 0 {
		t.Errorf("positions %v after a dropped batch, want none", pos)
	}
	if _, err := NewSink(env.cat, env.ident, SinkConfig{}).Commit(ctx, makeBatch(t, "s", "", 1, 10)); err != nil {
		t.Fatalf("the batch read again: %v", err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s", 1, 10))
}

// Each commit names the shards it moved in its snapshot summary, so the
// time of every shard's last commit can be read from the table.
func TestShardLastCommits(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	commitRanges := func(rs ...commit.ShardRange) {
		t.Helper()
		if _, err := s.Commit(ctx, commit.Batch{Ranges: rs}); err != nil {
			t.Fatal(err)
		}
	}
	commitRanges(commit.ShardRange{Shard: "a", Last: "1"}, commit.ShardRange{Shard: "b", Last: "1"})
	time.Sleep(5 * time.Millisecond)
	commitRanges(commit.ShardRange{Shard: "a", After: "1", Last: "2"})
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	got := ShardLastCommits(tbl)
	first, second := time.UnixMilli(snaps[0].TimestampMs), time.UnixMilli(snaps[1].TimestampMs)
	if len(got) != 2 || !got["a"].Equal(second) || !got["b"].Equal(first) {
		t.Errorf("last commits %v, want a at %v and b at %v", got, second, first)
	}
}

// An attempt that landed though the catalog answered with an error, whose
// snapshot is then expired (other writers' commits and a maintenance run)
// before the sink looks for it: the position moved, but the sink cannot
// tell by whom. It deletes nothing (the landed attempt's files and
// manifests are the table's now) and says the outcome is unknown, so the
// caller does not discard the attempt's staged dead letters. Both kinds of
// answer: a lost connection, and a refused compare-and-swap for a request
// the SDK resent after the first had applied.
func TestUnknownOutcomeExpiredBeforeTheLookIsNotCertain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer error
	}{
		{"connection reset", errors.New("read tcp 10.0.0.1:443: connection reset by peer")},
		{"conflict", fmt.Errorf("%w: metadata location moved", table.ErrCommitFailed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newSQLiteEnv(t)
			ctx := context.Background()
			cat := landThenExpire(t, env, tc.answer)
			s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
			_, err := s.Commit(ctx, makeBatch(t, "s", "", 1, 10))
			if !errors.Is(err, commit.ErrPositionMoved) || !errors.Is(err, commit.ErrOutcomeUnknown) {
				t.Fatalf("err = %v; want a moved position with the outcome unknown", err)
			}
			assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("s", 1, 10), ids("other", 1, 6)...))
		})
	}
}

// landThenExpire wraps env's catalog: the first commit through it lands,
// then another writer commits shard "other" three times (rows 1–6) and a
// maintenance run expires every snapshot but the newest — the landed
// commit's too — and the caller hears answer instead of success.
func landThenExpire(t *testing.T, env *testEnv, answer error) *scriptedCatalog {
	t.Helper()
	other := NewSink(env.cat, env.ident, SinkConfig{})
	return &scriptedCatalog{Catalog: env.cat, after: func(n int, err error) error {
		if n != 0 || err != nil {
			return nil
		}
		commitBatches(t, other, "other", 1, 3, 2)
		res, err := other.Maintain(context.Background(), MaintainOptions{KeepSnapshots: 1, Compact: CompactOptions{TargetSize: -1}})
		if err != nil || res.SnapshotsExpired != 3 {
			t.Errorf("maintenance expired %d snapshots, %v; want 3 (the landed commit's too)", res.SnapshotsExpired, err)
		}
		return answer
	}}
}
