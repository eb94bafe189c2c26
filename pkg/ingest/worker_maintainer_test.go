package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

// countingMaintainer records which worker called Maintain, and fails
// when told to.
type countingMaintainer struct {
	id   string
	mu   *sync.Mutex
	runs map[string]int
	fail bool
	// opts and live record each call's options and what its LiveShards
	// listed.
	opts []iceberg.MaintainOptions
	live [][]string
}

func (m *countingMaintainer) Maintain(ctx context.Context, opts iceberg.MaintainOptions) (iceberg.MaintainResult, error) {
	var live []string
	if opts.LiveShards != nil {
		var err error
		if live, err = opts.LiveShards(ctx); err != nil {
			return iceberg.MaintainResult{}, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[m.id]++
	m.opts = append(m.opts, opts)
	m.live = append(m.live, live)
	if m.fail {
		return iceberg.MaintainResult{}, errors.New("commit failed")
	}
	return iceberg.MaintainResult{SnapshotsExpired: 1}, nil
}

type maintWorker struct {
	w      *Worker
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// stop shuts the worker down gracefully and waits for Run.
func (m *maintWorker) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	if err := <-m.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func startMaintWorker(t *testing.T, id string, store lease.Store, maint *countingMaintainer) *maintWorker {
	t.Helper()
	kin := &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{{ShardId: aws.String("p")}}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Pipeline.FlushInterval, cfg.Pipeline.IdlePoll = "s", 20*time.Millisecond, 200*time.Millisecond
	cfg.Coordinator.WorkerID, cfg.Coordinator.FailoverTime = id, 3*time.Second
	cfg.ShardSyncInterval, cfg.ShutdownTimeout, cfg.MaintenanceInterval = time.Second, 5*time.Second, 20*time.Millisecond
	reg := prometheus.NewRegistry()
	w, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: store, Sink: sink, Maintainer: maint, Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &maintWorker{w: w, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- w.Run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// Of two workers only the maintainer runs table maintenance; when it stops,
// the other takes the role at once and runs it.
func TestOnlyTheMaintainerMaintains(t *testing.T) {
	store := leasetest.NewFakeStore()
	var mu sync.Mutex
	runs := map[string]int{}
	a := startMaintWorker(t, "a", store, &countingMaintainer{id: "a", mu: &mu, runs: runs})
	waitFor(t, "a becomes the maintainer", a.w.Maintainer)
	b := startMaintWorker(t, "b", store, &countingMaintainer{id: "b", mu: &mu, runs: runs})
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return runs[id] }

	// b runs several rounds of its lease loop (1s) and many maintenance ticks.
	time.Sleep(2500 * time.Millisecond)
	if b.w.Maintainer() {
		t.Fatal("b says it is the maintainer while a is")
	}
	if n := count("b"); n != 0 {
		t.Fatalf("b ran maintenance %d times while a was the maintainer", n)
	}
	if n := count("a"); n < 10 {
		t.Fatalf("a ran maintenance %d times in 2.5s at a 20ms interval", n)
	}
	l, err := store.Get(context.Background(), lease.RoleKey(lease.RoleMaintainer))
	if err != nil || l.Owner != "a" {
		t.Fatalf("role lease %+v, %v; want owner a", l, err)
	}
	if v := gaugeValue(t, a.reg, "paystream_maintenance_maintainer"); v != 1 {
		t.Errorf("a paystream_maintenance_maintainer = %v, want 1", v)
	}
	if v := gaugeValue(t, b.reg, "paystream_maintenance_maintainer"); v != 0 {
		t.Errorf("b paystream_maintenance_maintainer = %v, want 0", v)
	}
	if v := gaugeValue(t, a.reg, "paystream_maintenance_last_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("a last success = %v, want within the last minute", v)
	}

	a.stop(t) // graceful: releases the role
	stopped := time.Now()
	waitFor(t, "b becomes the maintainer", b.w.Maintainer)
	if took := time.Since(stopped); took > 2*time.Second {
		t.Errorf("b became the maintainer %v after a stopped; a released role should move within a lease round (1s)", took)
	}
	waitFor(t, "b maintains", func() bool { return count("b") > 0 })
	before := count("a")
	time.Sleep(100 * time.Millisecond)
	if count("a") != before {
		t.Error("a maintained after it stopped")
	}
}

// Failed runs are counted by result and do not move the last success.
func TestMaintenanceFailuresAreCounted(t *testing.T) {
	store := leasetest.NewFakeStore()
	var mu sync.Mutex
	m := &countingMaintainer{id: "a", mu: &mu, runs: map[string]int{}, fail: true}
	a := startMaintWorker(t, "a", store, m)
	waitFor(t, "a fails maintenance", func() bool { mu.Lock(); defer mu.Unlock(); return m.runs["a"] >= 3 })
	a.stop(t)
	mu.Lock()
	n := m.runs["a"]
	mu.Unlock()
	runsVec := func(result string) float64 {
		t.Helper()
		mfs, err := a.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "paystream_maintenance_runs_total" {
				continue
			}
			for _, s := range mf.GetMetric() {
				if s.GetLabel()[0].GetValue() == result {
					return s.GetCounter().GetValue()
				}
			}
		}
		t.Fatalf("no paystream_maintenance_runs_total{result=%q}", result)
		return 0
	}
	if got := runsVec("error"); int(got) != n {
		t.Errorf("runs_total{result=error} = %v, want %d", got, n)
	}
	if got := runsVec("ok"); got != 0 {
		t.Errorf("runs_total{result=ok} = %v, want 0", got)
	}
	if v := gaugeValue(t, a.reg, "paystream_maintenance_last_success_timestamp_seconds"); v != 0 {
		t.Errorf("last success = %v after failures only, want 0", v)
	}
	if v := gaugeValue(t, a.reg, "paystream_maintenance_maintainer"); v != 0 {
		t.Errorf("maintainer gauge = %v after a stopped, want 0", v)
	}
}

// Without a Maintainer or with maintenance off no role is elected.
func TestNoMaintenanceNoRole(t *testing.T) {
	store := leasetest.NewFakeStore()
	kin := &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{{ShardId: aws.String("p")}}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Coordinator.WorkerID, cfg.Coordinator.FailoverTime = "s", "a", 3*time.Second
	cfg.ShardSyncInterval, cfg.ShutdownTimeout, cfg.MaintenanceInterval = time.Second, 5*time.Second, 0
	var mu sync.Mutex
	w, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: store, Sink: sink, Maintainer: &countingMaintainer{id: "a", mu: &mu, runs: map[string]int{}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "a takes p", func() bool { return len(w.Held()) == 1 })
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(context.Background(), lease.RoleKey(lease.RoleMaintainer)); !errors.Is(err, lease.ErrNotFound) {
		t.Errorf("role lease with maintenance off: %v, want none", err)
	}
	if w.Maintainer() {
		t.Error("Maintainer() true with maintenance off")
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// countingPositions counts the table reads of an otherwise idle worker.
type countingPositions struct {
	*stopSink
	mu    sync.Mutex
	calls int
}

func (c *countingPositions) Positions(ctx context.Context) (map[string]string, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.stopSink.Positions(ctx)
}

// A worker that neither commits nor maintains still reaches the table
// (Ready needs an answer within the last minute): it probes it.
func TestIdleWorkerProbesTheTable(t *testing.T) {
	store := leasetest.NewFakeStore()
	kin := &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{{ShardId: aws.String("p")}}}
	sink := &countingPositions{stopSink: &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}}
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Coordinator.WorkerID, cfg.Coordinator.FailoverTime = "s", "a", 3*time.Second
	cfg.ShardSyncInterval, cfg.ShutdownTimeout, cfg.MaintenanceInterval = time.Second, 5*time.Second, 0
	w, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: store, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	w.probeEvery = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "a takes p", func() bool { return len(w.Held()) == 1 })
	sink.mu.Lock()
	before := sink.calls
	sink.mu.Unlock()
	started := time.Unix(0, w.sinkOK.Load())
	waitFor(t, "the idle worker probes the table", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.calls >= before+3
	})
	if last := time.Unix(0, w.sinkOK.Load()); !last.After(started) {
		t.Errorf("the table's last answer did not move (%v) although the probes succeeded", last)
	}
	if ok, why := w.Ready(); !ok {
		t.Errorf("Ready() = false, %q", why)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The maintainer sweeps orphans (with the configured age) in its first run
// and then not again before --orphan-interval; every run gets the stream's
// shard list to drop the positions of vanished shards.
func TestMaintainerSweepsOrphansOncePerInterval(t *testing.T) {
	store := leasetest.NewFakeStore()
	var mu sync.Mutex
	m := &countingMaintainer{id: "a", mu: &mu, runs: map[string]int{}}
	startMaintWorker(t, "a", store, m) // default --orphan-interval 1h, --orphan-age 24h
	waitFor(t, "a maintains 5 times", func() bool { mu.Lock(); defer mu.Unlock(); return m.runs["a"] >= 5 })
	mu.Lock()
	defer mu.Unlock()
	for i, o := range m.opts {
		want := time.Duration(0)
		if i == 0 {
			want = DefaultOrphanAge
		}
		if o.OrphanAge != want {
			t.Errorf("run %d: OrphanAge = %v, want %v (sweep in the first run only within the interval)", i, o.OrphanAge, want)
		}
		if o.LiveShards == nil || !slices.Equal(m.live[i], []string{"p"}) {
			t.Errorf("run %d: live shards %v, want the stream's [p]", i, m.live[i])
		}
	}
}
