package iceberg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
)

// prepare writes b's files, passing the batch through Marshal and
// UnmarshalPrepared as a staged item does.
func prepare(t *testing.T, s *Sink, b commit.Batch) Prepared {
	t.Helper()
	p, err := s.Prepare(context.Background(), b)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	data, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalPrepared(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Files, p.Files) {
		t.Fatalf("files changed in encoding:\n got %+v\nwant %+v", back.Files, p.Files)
	}
	return back
}

func snapshotCount(t *testing.T, env *testEnv) int {
	t.Helper()
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	return len(tbl.Metadata().Snapshots())
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func localFiles(t *testing.T, p Prepared) []string {
	t.Helper()
	var out []string
	for _, f := range p.Files {
		lp, ok := localPath(f.Path)
		if !ok {
			t.Fatalf("not a local file: %s", f.Path)
		}
		out = append(out, filepath.FromSlash(lp))
	}
	return out
}

func TestCommitPreparedBatchesInOneSnapshot(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	a := prepare(t, s, makeBatch(t, "a", "", 1, 30))
	b := prepare(t, s, makeBatch(t, "b", "", 1, 20))
	before := snapshotCount(t, env)

	out, err := s.CommitPrepared(ctx, []Prepared{a, b})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if !o.Landed || o.Already || o.Refused != nil || o.SnapshotID == 0 {
			t.Errorf("batch %d: %+v, want landed now", i, o)
		}
	}
	if out[0].SnapshotID != out[1].SnapshotID || snapshotCount(t, env) != before+1 {
		t.Errorf("snapshots %d → %d (ids %d, %d), want one snapshot for both", before, snapshotCount(t, env), out[0].SnapshotID, out[1].SnapshotID)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("a", 1, 30), ids("b", 1, 20)...))
	pos, err := s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pos["a"] != "30" || pos["b"] != "20" {
		t.Errorf("positions %v, want a=30 b=20", pos)
	}
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.CommitID, b.CommitID} {
		if snap := findCommit(tbl, id); snap == nil || snap.SnapshotID != out[0].SnapshotID {
			t.Errorf("findCommit(%s) = %v, want snapshot %d", id, snap, out[0].SnapshotID)
		}
	}
	// The rebuilt files keep their partition: a day filter still prunes.
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if len(task.File.Partition()) != 1 {
			t.Errorf("file %s has partition %v, want one day", task.File.FilePath(), task.File.Partition())
		}
	}
}

func TestCommitPreparedAlreadyLandedIsNotCommittedAgain(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	a := prepare(t, s, makeBatch(t, "a", "", 1, 10))
	first, err := s.CommitPrepared(ctx, []Prepared{a})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshotCount(t, env)

	// A committer that died before recording the outcome: the next one
	// commits the same batch again.
	again, err := s.CommitPrepared(ctx, []Prepared{a})
	if err != nil {
		t.Fatal(err)
	}
	if o := again[0]; !o.Landed || !o.Already || o.SnapshotID != first[0].SnapshotID {
		t.Errorf("second commit: %+v, want already landed in %d", o, first[0].SnapshotID)
	}
	if n := snapshotCount(t, env); n != before {
		t.Errorf("snapshots %d → %d, want no new snapshot", before, n)
	}
	for _, f := range localFiles(t, a) {
		if !exists(f) {
			t.Errorf("committed file %s removed", f)
		}
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("a", 1, 10))
}

func TestCommitPreparedRivalsFirstWinsOthersRemoved(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	win := prepare(t, s, makeBatch(t, "a", "", 1, 10))
	lose := prepare(t, s, makeBatch(t, "a", "", 1, 12))
	other := prepare(t, s, makeBatch(t, "b", "", 1, 5))

	out, err := s.CommitPrepared(ctx, []Prepared{win, lose, other})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Landed || !out[2].Landed {
		t.Errorf("winner %+v, other shard %+v: want both landed", out[0], out[2])
	}
	if o := out[1]; o.Landed || !errors.Is(o.Refused, ErrRivalBatch) || !errors.Is(o.Refused, commit.ErrPositionMoved) || !o.Removed {
		t.Errorf("rival: %+v, want refused as a rival, files removed", o)
	}
	for _, f := range localFiles(t, lose) {
		if exists(f) {
			t.Errorf("rival's file %s still there", f)
		}
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("a", 1, 10), ids("b", 1, 5)...))
}

func TestCommitPreparedMovedPositions(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	behind := prepare(t, s, makeBatch(t, "a", "", 1, 20)) // a's table position will be 10: before its Last
	covered := prepare(t, s, makeBatch(t, "b", "", 1, 5)) // b's will be 8: past its Last
	if _, err := s.Commit(ctx, makeBatch(t, "a", "", 1, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, makeBatch(t, "b", "", 1, 8)); err != nil {
		t.Fatal(err)
	}

	out, err := s.CommitPrepared(ctx, []Prepared{behind, covered})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Landed || !errors.Is(o.Refused, commit.ErrPositionMoved) {
			t.Errorf("batch %d: %+v, want refused as moved", i, o)
		}
	}
	if !out[0].Removed || slices.ContainsFunc(localFiles(t, behind), exists) {
		t.Errorf("batch behind the table's position: removed %v, want its files gone", out[0].Removed)
	}
	// b's position is past the batch's Last: it might have landed in a
	// snapshot since expired, so its files are left to the orphan sweep.
	if out[1].Removed || !slices.ContainsFunc(localFiles(t, covered), exists) {
		t.Errorf("batch covered by the table's position: removed %v, want its files kept", out[1].Removed)
	}
}

func TestCommitPreparedTooOld(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{MaxFileAge: time.Minute})
	old := prepare(t, s, makeBatch(t, "a", "", 1, 10))
	old.Written = time.Now().Add(-2 * time.Minute)
	out, err := s.CommitPrepared(ctx, []Prepared{old})
	if err != nil {
		t.Fatal(err)
	}
	if o := out[0]; o.Landed || !errors.Is(o.Refused, ErrFilesTooOld) || !o.Removed {
		t.Errorf("old batch: %+v, want refused as too old, files removed", o)
	}
	if n := len(eventIDCounts(t, env.cat, env.ident)); n != 0 {
		t.Errorf("table has %d rows, want none", n)
	}
}

// A batch committed with others is found by the dead-letter sweep by its
// own id.
func TestSweepPublishesBatchOfMultiBatchSnapshot(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	dl := NewDeadLetter(env.cfg.Warehouse, "", env.ident, nil)
	id := uuid.NewString()
	rej := []commit.Rejected{{Raw: []byte("{bad"), Reasons: []string{"not JSON"}, Shard: "b", Sequence: "4"}}
	if _, err := dl.Stage(ctx, id, "b", "4", "4", rej); err != nil {
		t.Fatal(err)
	}
	a := prepare(t, s, makeBatch(t, "a", "", 1, 3))
	b := prepare(t, s, commit.Batch{Ranges: []commit.ShardRange{{Shard: "b", Last: "4"}}, CommitID: id, Staged: time.Now()})
	if _, err := s.CommitPrepared(ctx, []Prepared{a, b}); err != nil {
		t.Fatal(err)
	}

	res, err := s.SweepDeadLetters(ctx, dl, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 1 || res.Waiting != 0 {
		t.Errorf("sweep %+v, want the batch's dead letter published", res)
	}
}

// The committer's form of TestConflictReportedForALandedCommitKeepsIt: a
// multi-batch commit that applied is reported as a conflict (Glue's SDK
// resent the UpdateTable). CommitPrepared must find its batches landed and
// leave the snapshot's manifests alone; it used to remove them before
// looking, so the table's current snapshot pointed at a deleted manifest
// list and every later commit and scan failed (found by a fault-injection
// trial on Glue + S3 in commit mode single).
func TestCommitPreparedConflictReportedForALandedCommitKeepsIt(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := &scriptedCatalog{Catalog: env.cat, after: func(n int, err error) error {
		if n == 0 && err == nil {
			return fmt.Errorf("%w: ConcurrentModificationException: Update table failed due to concurrent modifications", table.ErrCommitFailed)
		}
		return nil
	}}
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	a := prepare(t, s, makeBatch(t, "a", "", 1, 10))
	b := prepare(t, s, makeBatch(t, "b", "", 1, 5))

	out, err := s.CommitPrepared(ctx, []Prepared{a, b})
	if err != nil {
		t.Fatalf("CommitPrepared: %v (the commit landed; it must be reported as committed)", err)
	}
	for i, o := range out {
		if !o.Landed || o.Refused != nil {
			t.Errorf("batch %d: %+v, want landed", i, o)
		}
	}
	if cat.calls != 1 {
		t.Errorf("CommitTable called %d times, want 1 (the landed commit must be found, not repeated)", cat.calls)
	}
	// The table is whole: the next commit of any writer works and every row
	// reads back once.
	other := NewSink(env.cat, env.ident, SinkConfig{})
	if _, err := other.Commit(ctx, makeBatch(t, "a", "10", 11, 5)); err != nil {
		t.Fatalf("next commit after the reported conflict: %v", err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("a", 1, 15), ids("b", 1, 5)...))
}

// The same, but the landed snapshot is expired (other writers' commits and
// a maintenance run) before the committer looks: its manifests are the
// table's now and must stay, and the batches are not reported as certainly
// refused (their files stay; the caller keeps their dead letters).
func TestCommitPreparedConflictForALandedCommitThenExpiredKeepsIt(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	cat := landThenExpire(t, env, fmt.Errorf("%w: ConcurrentModificationException: Update table failed due to concurrent modifications", table.ErrCommitFailed))
	s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
	a := prepare(t, s, makeBatch(t, "a", "", 1, 10))
	b := prepare(t, s, makeBatch(t, "b", "", 1, 5))
	out, err := s.CommitPrepared(ctx, []Prepared{a, b})
	if err != nil {
		t.Fatalf("CommitPrepared: %v", err)
	}
	for i, o := range out {
		if o.Landed || o.Refused == nil || o.Removed {
			t.Errorf("batch %d: %+v, want refused (positions moved) with its files kept", i, o)
		}
	}
	if _, err := NewSink(env.cat, env.ident, SinkConfig{}).Commit(ctx, makeBatch(t, "a", "10", 11, 5)); err != nil {
		t.Fatalf("next commit: %v", err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(append(ids("a", 1, 15), ids("b", 1, 5)...), ids("other", 1, 6)...))
}

// A conflict that did not land still leaves no manifests behind.
func TestCommitPreparedRefusedAttemptManifestsRemoved(t *testing.T) {
	count := func(inject bool) int {
		env := newSQLiteEnv(t)
		cat := conflictOnce(env, inject)
		s := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
		out, err := s.CommitPrepared(context.Background(), []Prepared{prepare(t, s, makeBatch(t, "s", "", 1, 10))})
		if err != nil || !out[0].Landed {
			t.Fatalf("CommitPrepared: %+v, %v; want landed", out, err)
		}
		if inject && (out[0].Retries != 1 || cat.calls != 2) {
			t.Fatalf("retries %d, CommitTable calls %d; want 1 and 2: the conflict was not injected", out[0].Retries, cat.calls)
		}
		return manifestFiles(t, env)
	}
	clean, refused := count(false), count(true)
	if clean == 0 || refused != clean {
		t.Errorf("%d manifest files after a refused attempt and its retry, %d after a clean commit; want equal", refused, clean)
	}
}
