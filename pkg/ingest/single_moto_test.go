package ingest_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
)

var errKilled = errors.New("process killed")

// killSwitch makes a worker's lease store and table fail every call once
// killed, as a crashed process would stop talking to them; hold makes the
// table's CommitPrepared wait until the kill.
type killSwitch struct {
	once   sync.Once
	killed chan struct{}
	hold   chan struct{} // closed: CommitPrepared waits for the kill
	held   chan struct{} // closed when a CommitPrepared is waiting
	heldMu sync.Once
}

func newKillSwitch() *killSwitch {
	return &killSwitch{killed: make(chan struct{}), hold: make(chan struct{}), held: make(chan struct{})}
}

func (k *killSwitch) kill() { k.once.Do(func() { close(k.killed) }) }

func (k *killSwitch) check() error {
	select {
	case <-k.killed:
		return errKilled
	default:
		return nil
	}
}

// killableStore is the DynamoDB lease store behind a kill switch.
type killableStore struct {
	*lease.DynamoStore
	k *killSwitch
}

func (s killableStore) EnsureTable(ctx context.Context) error {
	return errors.Join(s.k.check(), s.DynamoStore.EnsureTable(ctx))
}

func (s killableStore) Create(ctx context.Context, l lease.Lease) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.Create(ctx, l)
}

func (s killableStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	if err := s.k.check(); err != nil {
		return lease.Lease{}, err
	}
	return s.DynamoStore.Get(ctx, key)
}

func (s killableStore) List(ctx context.Context) ([]lease.Lease, error) {
	if err := s.k.check(); err != nil {
		return nil, err
	}
	return s.DynamoStore.List(ctx)
}

func (s killableStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := s.k.check(); err != nil {
		return lease.Lease{}, err
	}
	return s.DynamoStore.Renew(ctx, l)
}

func (s killableStore) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	if err := s.k.check(); err != nil {
		return lease.Lease{}, err
	}
	return s.DynamoStore.Take(ctx, l, owner)
}

func (s killableStore) Release(ctx context.Context, l lease.Lease) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.Release(ctx, l)
}

func (s killableStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, cp string) (lease.Lease, error) {
	if err := s.k.check(); err != nil {
		return lease.Lease{}, err
	}
	return s.DynamoStore.UpdateCheckpoint(ctx, l, cp)
}

func (s killableStore) Delete(ctx context.Context, l lease.Lease) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.Delete(ctx, l)
}

func (s killableStore) Stage(ctx context.Context, st lease.Staged) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.Stage(ctx, st)
}

func (s killableStore) GetStaged(ctx context.Context, id string) (lease.Staged, error) {
	if err := s.k.check(); err != nil {
		return lease.Staged{}, err
	}
	return s.DynamoStore.GetStaged(ctx, id)
}

func (s killableStore) ListStaged(ctx context.Context) ([]lease.Staged, error) {
	if err := s.k.check(); err != nil {
		return nil, err
	}
	return s.DynamoStore.ListStaged(ctx)
}

func (s killableStore) SettleStaged(ctx context.Context, id string, state lease.StagedState, snap int64, reason string, at time.Time) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.SettleStaged(ctx, id, state, snap, reason, at)
}

func (s killableStore) DeleteStaged(ctx context.Context, id string) error {
	if err := s.k.check(); err != nil {
		return err
	}
	return s.DynamoStore.DeleteStaged(ctx, id)
}

// killableSink is the table behind a kill switch.
type killableSink struct {
	*iceberg.Sink
	k *killSwitch
}

func (s killableSink) Prepare(ctx context.Context, b commit.Batch) (iceberg.Prepared, error) {
	if err := s.k.check(); err != nil {
		return iceberg.Prepared{}, err
	}
	return s.Sink.Prepare(ctx, b)
}

func (s killableSink) CommitPrepared(ctx context.Context, batches []iceberg.Prepared) ([]iceberg.PreparedOutcome, error) {
	select {
	case <-s.k.hold:
		s.k.heldMu.Do(func() { close(s.k.held) })
		select {
		case <-s.k.killed:
		case <-ctx.Done():
		}
	default:
	}
	if err := s.k.check(); err != nil {
		return make([]iceberg.PreparedOutcome, len(batches)), err
	}
	return s.Sink.CommitPrepared(ctx, batches)
}

func (s killableSink) Positions(ctx context.Context) (map[string]string, error) {
	if err := s.k.check(); err != nil {
		return nil, err
	}
	return s.Sink.Positions(ctx)
}

// startSingle starts a worker in commit mode single whose lease store and
// table are behind k.
func (s *stack) startSingle(id string, k *killSwitch) *runningWorker {
	s.t.Helper()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{s.t, id}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sink := iceberg.NewSink(s.catalog(), ident, iceberg.SinkConfig{Registerer: reg, Logger: log})
	dd, err := dedup.New(dedup.Config{Registerer: reg})
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := ingest.DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Pipeline.FlushInterval, cfg.Pipeline.IdlePoll = s.stream, 500*time.Millisecond, 200*time.Millisecond
	cfg.Pipeline.DedupWindow = time.Hour
	cfg.Coordinator = lease.CoordinatorConfig{WorkerID: id, FailoverTime: 3 * time.Second, Registerer: reg}
	cfg.ShardSyncInterval, cfg.ShutdownTimeout = time.Second, 20*time.Second
	cfg.CommitMode = ingest.CommitSingle
	w, err := ingest.NewWorker(cfg, ingest.WorkerDeps{
		Kinesis: s.kin, Leases: killableStore{s.leaseStore(), k}, Sink: killableSink{sink, k},
		DeadLetters: iceberg.NewDeadLetter(s.catCfg.Warehouse, "", ident, reg), Dedup: dd, Maintainer: sink, Start: sink,
		Logger: log, Metrics: ingest.NewMetrics(reg),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rw := &runningWorker{w: w, cancel: cancel, done: make(chan error, 1), reg: reg}
	go func() { rw.done <- w.Run(ctx) }()
	s.t.Cleanup(func() { rw.stop(s.t) })
	return rw
}

// crash kills rw's worker: its lease store and table fail from now on, so
// it neither commits nor releases anything on the way out.
func (rw *runningWorker) crash(t *testing.T, k *killSwitch) {
	t.Helper()
	k.kill()
	rw.cancel()
	rw.cancel = nil
	select {
	case err := <-rw.done:
		t.Logf("crashed worker returned %v", err) // an error is expected: nothing answers it any more
	case <-time.After(40 * time.Second):
		t.Error("crashed worker did not stop within 40s")
	}
}

// snapshots returns the number of snapshots the table keeps and, for each
// commit id, the number of snapshots naming it.
func (s *stack) snapshots(ctx context.Context) (int, map[string]int) {
	s.t.Helper()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	tbl, err := s.catalog().LoadTable(ctx, ident)
	if err != nil {
		s.t.Fatal(err)
	}
	ids := map[string]int{}
	snaps := tbl.Metadata().Snapshots()
	for _, snap := range snaps {
		if snap.Summary == nil || snap.Summary.Properties[iceberg.CommitIDProperty] == "" {
			continue
		}
		for id := range strings.SplitSeq(snap.Summary.Properties[iceberg.CommitIDProperty], ",") {
			ids[id]++
		}
	}
	return len(snaps), ids
}

func (s *stack) stagedItems(ctx context.Context) []lease.Staged {
	s.t.Helper()
	items, err := s.leaseStore().ListStaged(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	return items
}

func waitCommitter(t *testing.T, ws []*runningWorker, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for i, w := range ws {
			if w.w.Committer() {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no worker took the committer role within %s", within)
	return -1
}

// runThree runs three workers in mode on a four-shard stream through one
// producer run and returns the table's snapshots made, the batches (commit
// ids) they carried and the run's length.
func runThree(t *testing.T, mode string) (int, int, time.Duration) {
	s, _ := newEmulatedStack(t, 4)
	ctx := context.Background()
	tweak := func(c *ingest.WorkerConfig) { c.CommitMode, c.Pipeline.FlushInterval = mode, time.Second }
	ws := []*runningWorker{s.startWorker("w1", tweak), s.startWorker("w2", tweak), s.startWorker("w3", tweak)}
	before, _ := s.snapshots(ctx)
	start := time.Now()
	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.DuplicateRate, cfg.InvalidRate, cfg.DuplicateDelay = 600, 8*time.Second, 0.05, 0.01, time.Second
	sent := s.produceInBackground(ctx, cfg).wait(t)
	s.expectExactlyOnce(ctx, sent, 60*time.Second)
	took := time.Since(start)
	after, ids := s.snapshots(ctx)
	for id, n := range ids {
		if n > 1 {
			t.Errorf("commit %s in %d snapshots", id, n)
		}
	}
	for _, w := range ws {
		w.stop(t)
	}
	if left := s.stagedItems(ctx); len(left) != 0 {
		t.Errorf("%s mode: %d staged items left after the run: %+v", mode, len(left), left[0])
	}
	t.Logf("%s mode: %d table commits carrying %d batches in %s for %d records", mode, after-before, len(ids), took.Round(time.Millisecond), len(sent))
	return after - before, len(ids), took
}

// Three workers in commit mode single: every record once, the table takes
// about one commit per flush interval, and commits carry several workers'
// batches (in per-worker mode every commit carries one).
// Counting batches per commit, not comparing the two modes' commit rates,
// keeps the test independent of the machine's load.
func TestSingleCommitterThreeWorkersExactlyOnce(t *testing.T) {
	for _, mode := range []string{ingest.CommitPerWorker, ingest.CommitSingle} {
		t.Run(mode, func(t *testing.T) {
			n, batches, took := runThree(t, mode)
			if n == 0 {
				t.Fatalf("%s mode: no table commit", mode)
			}
			switch mode {
			case ingest.CommitPerWorker:
				if batches != n {
					t.Errorf("per-worker mode: %d commits carried %d batches, want one each", n, batches)
				}
			case ingest.CommitSingle:
				if n > int(took/time.Second)+3 {
					t.Errorf("single mode: %d table commits in %s, want at most about one per 1s interval", n, took)
				}
				if batches <= n {
					t.Errorf("single mode: %d commits carried %d batches, want commits that carry several workers' batches", n, batches)
				}
			}
		})
	}
}

// The committer crashes (no release, nothing more written) while batches
// are staged; another worker takes the role and commits them exactly once.
func TestSingleCommitterFailoverCommitsStagedBatchesOnce(t *testing.T) {
	s, _ := newEmulatedStack(t, 4)
	ctx := context.Background()
	ks := []*killSwitch{newKillSwitch(), newKillSwitch(), newKillSwitch()}
	ws := []*runningWorker{s.startSingle("w1", ks[0]), s.startSingle("w2", ks[1]), s.startSingle("w3", ks[2])}
	c := waitCommitter(t, ws, 20*time.Second)
	close(ks[c].hold) // the committer's next table commit hangs

	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.DuplicateRate, cfg.DuplicateDelay = 400, 8*time.Second, 0.05, time.Second
	prod := s.produceInBackground(ctx, cfg)
	select {
	case <-ks[c].held:
	case <-time.After(30 * time.Second):
		t.Fatal("the committer made no table commit while records arrive")
	}
	var staged []lease.Staged // wait for both other workers' batches
	deadline := time.Now().Add(20 * time.Second)
	for len(staged) < 2 && time.Now().Before(deadline) {
		staged = s.stagedItems(ctx)
		time.Sleep(50 * time.Millisecond)
	}
	if len(staged) == 0 {
		t.Fatal("no batch staged while the committer hangs")
	}
	ws[c].crash(t, ks[c])

	others := slices.Delete(slices.Clone(ws), c, c+1)
	next := waitCommitter(t, others, 30*time.Second)
	sent := prod.wait(t)
	s.expectExactlyOnce(ctx, sent, 90*time.Second)
	// A staged batch lands once, or is refused when its shard's lease moved
	// meanwhile (the crash makes the others rebalance) and the new owner
	// committed the range first; at least one must have landed.
	_, ids := s.snapshots(ctx)
	landed := 0
	for _, st := range staged {
		switch ids[st.CommitID] {
		case 0:
			t.Logf("batch %s of %s staged before the crash was refused", st.CommitID, st.Worker)
		case 1:
			landed++
		default:
			t.Errorf("batch %s staged before the crash is in %d snapshots, want 1", st.CommitID, ids[st.CommitID])
		}
	}
	if landed == 0 {
		t.Errorf("none of the %d batches staged before the crash landed", len(staged))
	}
	t.Logf("committer w%d crashed with %d batches staged; w%d took over", c+1, len(staged), slices.Index(ws, others[next])+1)
	for _, w := range others {
		w.stop(t)
	}
	if left := s.stagedItems(ctx); len(left) != 0 {
		t.Errorf("%d staged items left after the run", len(left))
	}
}
