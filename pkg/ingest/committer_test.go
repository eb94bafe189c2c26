package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
	"github.com/paystream/paystream/pkg/schema"
)

// commitEnv is a SQLite-catalog table and a moto lease table.
type commitEnv struct {
	t     *testing.T
	cat   catalog.Catalog
	ident table.Identifier
	sink  *iceberg.Sink
	store *lease.DynamoStore
}

func newCommitEnv(t *testing.T) *commitEnv {
	t.Helper()
	testenv.Moto(t)
	ctx := t.Context()
	dir := t.TempDir()
	cfg := iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Table:     iceberg.DefaultTable,
	}
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store, err := lease.NewDynamoStore(dynamodb.NewFromConfig(awsCfg), lease.DynamoStoreConfig{Table: "paystream-committer", CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	return &commitEnv{t: t, cat: cat, ident: ident, sink: iceberg.NewSink(cat, ident, iceberg.SinkConfig{}), store: store}
}

// own makes owner the owner of shard's lease.
func (e *commitEnv) own(shard, owner string) {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.store.Create(ctx, lease.Lease{Key: shard}); err != nil && !errors.Is(err, lease.ErrExists) {
		e.t.Fatal(err)
	}
	l, err := e.store.Get(ctx, shard)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.Take(ctx, l, owner); err != nil {
		e.t.Fatal(err)
	}
}

// batch is n rows of shard with sequence numbers first.., after after.
func batch(t *testing.T, shard, after string, first, n int) commit.Batch {
	t.Helper()
	g := schema.NewGenerator(uint64(first), time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	rows := make([]schema.Row, n)
	for i := range rows {
		e := g.Next(time.Date(2026, 3, 1, 12, first+i, 0, 0, time.UTC))
		e.EventID = fmt.Sprintf("evt_%s_%d", shard, first+i)
		rows[i] = schema.Row{Event: e, ShardID: shard, SequenceNumber: strconv.Itoa(first + i), IngestedAt: time.Now().UTC()}
	}
	rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
	t.Cleanup(rec.Release)
	return commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: shard, After: after, Last: strconv.Itoa(first + n - 1)}}}
}

// stage writes b's files and stages it as worker's.
func (e *commitEnv) stage(worker string, b commit.Batch) iceberg.Prepared {
	e.t.Helper()
	p, err := e.sink.Prepare(e.t.Context(), b)
	if err != nil {
		e.t.Fatal(err)
	}
	payload, err := p.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	st := lease.Staged{CommitID: p.CommitID, Worker: worker, Shards: []string{b.Ranges[0].Shard}, StagedAt: time.Now(), Payload: payload}
	if err := e.store.Stage(e.t.Context(), st); err != nil {
		e.t.Fatalf("stage: %v", err)
	}
	return p
}

func (e *commitEnv) committer(id string) *committer {
	return &committer{
		sink: e.sink, store: e.store, workerID: id, isHolder: func() bool { return true },
		interval: time.Second, log: slog.New(slog.DiscardHandler),
	}
}

func (e *commitEnv) snapshots() int {
	e.t.Helper()
	tbl, err := e.cat.LoadTable(e.t.Context(), e.ident)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(tbl.Metadata().Snapshots())
}

// eventIDs counts each event id in the table.
func (e *commitEnv) eventIDs() map[string]int {
	e.t.Helper()
	ctx := e.t.Context()
	tbl, err := e.cat.LoadTable(ctx, e.ident)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	if tbl.CurrentSnapshot() == nil {
		return out
	}
	err = e.sink.RecentEventIDs(ctx, []string{"a", "b"}, time.Time{}, func(_, id string, _ time.Time) { out[id]++ })
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *commitEnv) state(id string) lease.StagedState {
	e.t.Helper()
	st, err := e.store.GetStaged(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return st.State
}

func filesExist(t *testing.T, p iceberg.Prepared) (n int) {
	t.Helper()
	for _, f := range p.Files {
		u, err := url.Parse(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(u.Path); err == nil {
			n++
		}
	}
	return n
}

func TestCommitterCommitsStagedBatchesInOneCommit(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	e.own("b", "w2")
	pa := e.stage("w1", batch(t, "a", "", 1, 10))
	pb := e.stage("w2", batch(t, "b", "", 1, 7))
	c := e.committer("w3")
	own, err := e.sink.Prepare(t.Context(), batch(t, "c", "", 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	before := e.snapshots()

	o, err := c.round(t.Context(), &own)
	if err != nil || !o.Landed {
		t.Fatalf("round: %+v, %v; want the own batch landed", o, err)
	}
	if n := e.snapshots(); n != before+1 {
		t.Errorf("snapshots %d → %d, want one commit for three batches", before, n)
	}
	for _, id := range []string{pa.CommitID, pb.CommitID} {
		if s := e.state(id); s != lease.StateCommitted {
			t.Errorf("staged batch %s is %s, want committed", id, s)
		}
	}
	if got := e.eventIDs(); len(got) != 17 {
		t.Errorf("shards a and b have %d rows, want 17", len(got))
	}
}

// A committer that died after its table commit and before marking the
// staged batches: the next committer marks them and commits nothing again.
func TestCommitterDiedBeforeMarkingNextMarksWithoutCommitting(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	e.own("b", "w2")
	pa := e.stage("w1", batch(t, "a", "", 1, 10))
	pb := e.stage("w2", batch(t, "b", "", 1, 7))
	dying := e.committer("w3")
	died := errors.New("killed after the commit")
	dying.afterCommit = func() error { return died }
	before := e.snapshots()

	if _, err := dying.round(t.Context(), nil); !errors.Is(err, died) {
		t.Fatalf("dying committer's round: %v, want it to stop after the commit", err)
	}
	if n := e.snapshots(); n != before+1 {
		t.Fatalf("snapshots %d → %d, want the dying committer's commit landed", before, n)
	}
	if s := e.state(pa.CommitID); s != lease.StateStaged {
		t.Fatalf("batch %s is %s after the crash, want still staged", pa.CommitID, s)
	}

	next := e.committer("w4")
	if _, err := next.round(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if n := e.snapshots(); n != before+1 {
		t.Errorf("snapshots %d → %d, want no second commit", before, n)
	}
	for _, p := range []iceberg.Prepared{pa, pb} {
		if s := e.state(p.CommitID); s != lease.StateCommitted {
			t.Errorf("batch %s is %s, want marked committed", p.CommitID, s)
		}
		if filesExist(t, p) != len(p.Files) {
			t.Errorf("batch %s lost data files", p.CommitID)
		}
	}
	for id, n := range e.eventIDs() {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
}

// Two staged batches for the same range: the current lease owner's wins
// even when staged later; the other's files are removed.
func TestCommitterRivalsCurrentOwnerWins(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	old := e.stage("w1", batch(t, "a", "", 1, 10))
	e.own("a", "w2") // w1's lease moved to w2, which re-read from the same position
	cur := e.stage("w2", batch(t, "a", "", 1, 12))
	if filesExist(t, old) == 0 {
		t.Fatal("the old owner's batch has no files to remove")
	}

	if _, err := e.committer("w3").round(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if s := e.state(cur.CommitID); s != lease.StateCommitted {
		t.Errorf("current owner's batch is %s, want committed", s)
	}
	st, err := e.store.GetStaged(t.Context(), old.CommitID)
	if err != nil {
		t.Fatal(err)
	}
	reason, detail, _ := strings.Cut(st.Reason, ": ")
	if st.State != lease.StateRefused || reason != refusedRival || !errors.Is(refusedError(reason, detail), commit.ErrPositionMoved) {
		t.Errorf("old owner's batch: %s (%s), want refused as a rival", st.State, st.Reason)
	}
	if n := filesExist(t, old); n != 0 {
		t.Errorf("%d of the refused batch's files still exist", n)
	}
	got := e.eventIDs()
	if len(got) != 12 {
		t.Errorf("table has %d rows of a, want the winner's 12", len(got))
	}
}

// A zombie whose lease was taken cannot stage: its batch's files are
// removed and the pipeline sees a moved position. Positive signal first:
// the same table stages while it holds the lease, and gets the result once
// a committer commits the batch.
func TestSingleTableStagesOnlyUnderItsLease(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	notHolder := &committer{isHolder: func() bool { return false }}
	tbl := &singleTable{StagingSink: e.sink, store: e.store, committer: notHolder, workerID: "w1", poll: 20 * time.Millisecond}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		res, err := tbl.Commit(ctx, batch(t, "a", "", 1, 5))
		if err == nil && res.Rows != 5 {
			err = fmt.Errorf("result %+v, want 5 rows", res)
		}
		done <- err
	}()
	waitStaged(t, e.store, 1)
	if _, err := e.committer("w2").round(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("owner's staged commit: %v", err)
	}
	if left, _ := e.store.ListStaged(ctx); len(left) != 0 {
		t.Errorf("%d staged items left after the worker saw its outcome", len(left))
	}

	e.own("a", "w9") // the lease moves: w1 is now a zombie
	p, err := e.sink.Prepare(ctx, batch(t, "a", "5", 6, 5))
	if err != nil {
		t.Fatal(err)
	}
	_, err = tbl.stage(ctx, p, time.Now())
	if !errors.Is(err, commit.ErrPositionMoved) || !errors.Is(err, lease.ErrLost) {
		t.Fatalf("zombie's stage: %v, want a moved position (lease lost)", err)
	}
	if n := filesExist(t, p); n != 0 {
		t.Errorf("%d of the zombie's files still exist", n)
	}
	if left, _ := e.store.ListStaged(ctx); len(left) != 0 {
		t.Errorf("zombie staged %d items", len(left))
	}
}

func waitStaged(t *testing.T, store StageStore, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		items, err := store.ListStaged(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(items) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d staged items after 10s, want %d", len(items), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Commit mode single needs a table that can stage and the DynamoDB lease
// store; anything else is refused at construction with what is missing.
func TestSingleModeNeedsStagingTableAndDynamoDB(t *testing.T) {
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Coordinator.WorkerID, cfg.CommitMode = "s", "w1", CommitSingle
	kin := &stopKinesis{recs: map[string][][]byte{}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	_, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: leasetest.NewFakeStore(), Sink: sink})
	if err == nil || !strings.Contains(err.Error(), "--commit-mode single needs a table") {
		t.Errorf("single mode on a table that cannot stage: %v", err)
	}
	e := newCommitEnv(t)
	_, err = NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: leasetest.NewFakeStore(), Sink: e.sink})
	if err == nil || !strings.Contains(err.Error(), "--commit-mode single needs the DynamoDB lease store") {
		t.Errorf("single mode on the in-memory lease store: %v", err)
	}
	if _, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: e.store, Sink: e.sink}); err != nil {
		t.Errorf("single mode on DynamoDB and an Iceberg sink: %v", err)
	}
}

// The committer compacts between its own commits: on a table it commits
// to back to back, no commit of it overlaps the rewrite, which lands.
func TestCommitterCompactsBetweenItsCommits(t *testing.T) {
	e := newCommitEnv(t)
	c := e.committer("w1")
	var mu sync.Mutex
	var compacting [2]time.Time // the rewrite's start and end
	var landed []time.Time      // when each commit of the committer had landed
	c.afterCommit = func() error {
		mu.Lock()
		landed = append(landed, time.Now())
		mu.Unlock()
		return nil
	}
	c.compact = func(ctx context.Context) (iceberg.CompactResult, error) {
		start := time.Now()
		res, err := e.sink.Compact(ctx, iceberg.CompactOptions{MinFiles: 2, MinAge: -1})
		mu.Lock()
		compacting = [2]time.Time{start, time.Now()}
		mu.Unlock()
		return res, err
	}
	ctx := t.Context()
	after := ""
	commitNext := func(first int) {
		p, err := e.sink.Prepare(ctx, batch(t, "a", after, first, 5))
		if err != nil {
			t.Error(err)
			return
		}
		if o, err := c.round(ctx, &p); err != nil || !o.Landed {
			t.Errorf("round: %+v, %v", o, err)
			return
		}
		after = p.Ranges[0].Last
	}
	for i := range 8 {
		commitNext(1 + 5*i)
	}
	busy, stop := make(chan struct{}), make(chan struct{})
	go func() { // a busy table: commits back to back
		defer close(busy)
		for i := 8; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			commitNext(1 + 5*i)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	res, err := c.compactNow(ctx)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-busy
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions != 1 || res.FilesRewritten < 8 {
		t.Errorf("compaction %+v, want the partition's 8+ small files rewritten", res)
	}
	during, later := 0, 0
	for _, at := range landed {
		if at.After(compacting[0]) && at.Before(compacting[1]) {
			during++
		}
		if at.After(compacting[1]) {
			later++
		}
	}
	if during > 0 || later == 0 {
		t.Errorf("%d of %d commits landed during the rewrite (want none), %d after it (want some)", during, len(landed), later)
	}
	n := 0
	for id, k := range e.eventIDs() {
		n++
		if k != 1 {
			t.Errorf("event %s stored %d times", id, k)
		}
	}
	if last, _ := strconv.Atoi(after); n != last {
		t.Errorf("table has %d rows, want %d", n, last)
	}
}
