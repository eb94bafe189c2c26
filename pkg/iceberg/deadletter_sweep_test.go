package iceberg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
)

// stageAndCommit stages one reject of shard at seq for a new commit id,
// commits an empty batch moving shard from after to seq with that id, and
// returns the id. Nothing is published: the writer crashed after its
// commit.
func stageAndCommit(t *testing.T, s *Sink, dl *DeadLetter, shard, after, seq string) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.NewString()
	rej := []commit.Rejected{{Raw: []byte("{bad"), Reasons: []string{"not JSON"}, Shard: shard, Sequence: seq}}
	if _, err := dl.Stage(ctx, id, shard, seq, seq, rej); err != nil {
		t.Fatal(err)
	}
	b := commit.Batch{Ranges: []commit.ShardRange{{Shard: shard, After: after, Last: seq}}, CommitID: id, Staged: time.Now()}
	if _, err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	return id
}

// backdate makes the pending objects of commit id look written age ago.
func backdate(t *testing.T, dl *DeadLetter, id string, age time.Duration) {
	t.Helper()
	root, _ := localPath(dl.PendingDir() + "/" + id)
	old := time.Now().Add(-age)
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSweepPublishesLandedAndRemovesNeverLanded(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	dl := NewDeadLetter(env.cfg.Warehouse, "", env.ident, nil)

	landed := stageAndCommit(t, s, dl, "a", "", "3")
	// A fenced attempt: staged, its commit refused, the writer gone.
	fenced := uuid.NewString()
	if _, err := dl.Stage(ctx, fenced, "a", "2", "3", []commit.Rejected{{Raw: []byte("x"), Sequence: "2"}, {Raw: []byte("y"), Sequence: "3"}}); err != nil {
		t.Fatal(err)
	}
	backdate(t, dl, fenced, MinOrphanAge+time.Minute)
	// An attempt still in flight (recent): left alone.
	inflight := uuid.NewString()
	if _, err := dl.Stage(ctx, inflight, "b", "7", "7", []commit.Rejected{{Raw: []byte("z"), Sequence: "7"}}); err != nil {
		t.Fatal(err)
	}

	res, err := s.SweepDeadLetters(ctx, dl, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 1 || res.Removed != 1 || res.Waiting != 1 {
		t.Errorf("sweep %+v, want 1 published (%s), 1 removed (%s), 1 waiting (%s)", res, landed, fenced, inflight)
	}
	if tbl, err := env.cat.LoadTable(ctx, env.ident); err != nil || res.Head != tbl.CurrentSnapshot().SnapshotID {
		t.Errorf("sweep head %d, want the table's current snapshot (%v)", res.Head, err)
	}
	got, err := ReadDeadLetters(ctx, env.cfg.Warehouse, "", env.ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Shard != "a" || got[0].Sequence != "3" {
		t.Errorf("readable dead letters %+v, want only the landed commit's a/3", got)
	}
}

// A landed commit whose writer crashed before publishing must stay
// findable: snapshot expiry keeps every snapshot of main after the head
// the last sweep resolved, however many there are, so the next sweep
// still sees the commit and publishes. Snapshots the sweep resolved go by
// KeepSnapshots alone, whatever their age: the table does not keep minutes
// of snapshots for the sweep's sake.
func TestExpiryKeepsSnapshotsAfterTheSweptHead(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	dl := NewDeadLetter(env.cfg.Warehouse, "", env.ident, nil)

	stageAndCommit(t, s, dl, "a", "", "1")
	stageAndCommit(t, s, dl, "a", "1", "2")
	first, err := s.SweepDeadLetters(ctx, dl, 0)
	if err != nil || first.Published != 2 || first.Head == 0 {
		t.Fatalf("first sweep %+v, %v; want 2 published and the head it resolved", first, err)
	}
	id := stageAndCommit(t, s, dl, "a", "2", "3")
	after := ""
	for _, last := range []string{"10", "20", "30"} {
		stageAndCommit(t, s, dl, "b", after, last)
		after = last
	}
	res, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, KeepAfter: &first.Head})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	if findCommit(tbl, id) == nil {
		t.Fatalf("the unpublished commit's snapshot was expired (%d snapshots left)", len(tbl.Metadata().Snapshots()))
	}
	if res.SnapshotsExpired != 2 || len(tbl.Metadata().Snapshots()) != 4 {
		t.Errorf("%d expired, %d left; want the 2 swept ones expired, the 4 after them kept", res.SnapshotsExpired, len(tbl.Metadata().Snapshots()))
	}
	second, err := s.SweepDeadLetters(ctx, dl, 0)
	if err != nil || second.Published != 4 {
		t.Fatalf("second sweep %+v, %v; want the 4 landed commits published", second, err)
	}
	// A head no longer in main's history (or 0: the sweep saw no snapshot)
	// keeps the whole history.
	for _, head := range []int64{0, 12345} {
		res, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, KeepAfter: &head})
		if err != nil || res.SnapshotsExpired != 0 {
			t.Errorf("head %d: %d expired, %v; want none", head, res.SnapshotsExpired, err)
		}
	}
}

// The sink refuses a batch whose dead letters were staged longer ago than
// MaxFileAge: the sweep may already have removed them as never landed.
func TestSinkRefusesBatchStagedTooLongAgo(t *testing.T) {
	env := newSQLiteEnv(t)
	s := NewSink(env.cat, env.ident, SinkConfig{MaxFileAge: time.Minute})
	b := commit.Batch{Ranges: []commit.ShardRange{{Shard: "a", Last: "1"}}, CommitID: uuid.NewString(), Staged: time.Now().Add(-2 * time.Minute)}
	if _, err := s.Commit(context.Background(), b); !errors.Is(err, ErrFilesTooOld) {
		t.Fatalf("err = %v, want ErrFilesTooOld", err)
	}
}
