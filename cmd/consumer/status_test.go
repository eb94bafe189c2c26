package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/schema"
	"github.com/paystream/paystream/pkg/status"
)

// Status timing: workers renew every failover/3 = 3s; the status sample
// (4s) sees every live lease move at least once, and a worker frozen just
// before it runs keeps its leases until failover (9s) minus one renew
// period after the freeze, past the sample's end.
const (
	statusTestFailover = 9 * time.Second
	statusTestSample   = 4 * time.Second
)

// frozenStore is a lease store that a test can cut off: once frozen every
// call fails, as for a worker killed with SIGKILL or cut from the network
// (it never renews nor releases its leases again).
type frozenStore struct {
	lease.Store
	frozen atomic.Bool
}

var errFrozen = errors.New("lease store unreachable (test freeze)")

func (s *frozenStore) ok() error {
	if s.frozen.Load() {
		return errFrozen
	}
	return nil
}

func (s *frozenStore) EnsureTable(ctx context.Context) error {
	if err := s.ok(); err != nil {
		return err
	}
	return s.Store.EnsureTable(ctx)
}

func (s *frozenStore) Create(ctx context.Context, l lease.Lease) error {
	if err := s.ok(); err != nil {
		return err
	}
	return s.Store.Create(ctx, l)
}

func (s *frozenStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	if err := s.ok(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.Get(ctx, key)
}

func (s *frozenStore) List(ctx context.Context) ([]lease.Lease, error) {
	if err := s.ok(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx)
}

func (s *frozenStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := s.ok(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.Renew(ctx, l)
}

func (s *frozenStore) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	if err := s.ok(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.Take(ctx, l, owner)
}

func (s *frozenStore) Release(ctx context.Context, l lease.Lease) error {
	if err := s.ok(); err != nil {
		return err
	}
	return s.Store.Release(ctx, l)
}

func (s *frozenStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, cp string) (lease.Lease, error) {
	if err := s.ok(); err != nil {
		return lease.Lease{}, err
	}
	return s.Store.UpdateCheckpoint(ctx, l, cp)
}

func (s *frozenStore) Delete(ctx context.Context, l lease.Lease) error {
	if err := s.ok(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, l)
}

type statusWorker struct {
	w      *ingest.Worker
	store  *frozenStore
	cancel context.CancelFunc
	done   chan error
}

// startStatusWorker runs a worker wired as buildService wires one, but on a
// lease store the test can freeze.
func startStatusWorker(t *testing.T, ms *metricsStack, cfg serviceConfig, id string) *statusWorker {
	t.Helper()
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := lease.NewDynamoStore(dynamodb.NewFromConfig(awsCfg), lease.DynamoStoreConfig{Table: cfg.LeaseTable, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	store := &frozenStore{Store: ds}
	if err := ensureLocalDirs(cfg.Catalog); err != nil {
		t.Fatal(err)
	}
	cat, err := iceberg.OpenCatalog(ctx, cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	ident, _ := iceberg.ParseIdentifier(cfg.Catalog.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Catalog.Warehouse); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{Registerer: reg, Logger: log})
	dd, err := dedup.New(dedup.Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	cfg.WorkerID = id
	wc := cfg.workerConfig()
	wc.Coordinator.Registerer = reg
	w, err := ingest.NewWorker(wc, ingest.WorkerDeps{
		Kinesis: ms.kin, Leases: store, Sink: sink, DeadLetters: iceberg.NewDeadLetter(cfg.Catalog.Warehouse, "", ident, reg),
		Dedup: dd, Maintainer: sink, Logger: log, Metrics: ingest.NewMetrics(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	sw := &statusWorker{w: w, store: store, cancel: cancel, done: make(chan error, 1)}
	go func() { sw.done <- w.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-sw.done:
			if err != nil { // a frozen worker reports its failed release
				t.Logf("worker %s stopped: %v", id, err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("worker %s did not stop within 40s", id)
		}
	})
	return sw
}

// runStatusCmd runs "consumer status" with args and returns its output,
// error and exit status.
func runStatusCmd(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runStatus(context.Background(), args, &out, &errOut)
	code := exitCode(err, &errOut)
	t.Logf("consumer status %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), code, err
}

func statusJSON(t *testing.T, args ...string) (status.Report, int) {
	t.Helper()
	out, code, _ := runStatusCmd(t, append(args, "--format", "json")...)
	var rep struct {
		status.Report
		Shards []struct {
			status.Shard
			BehindSeconds float64 `json:"behind_seconds"`
		} `json:"shards"`
		SampleSeconds float64 `json:"sample_seconds"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --format json is not JSON: %v\n%s", err, out)
	}
	r := rep.Report
	r.Sample = time.Duration(rep.SampleSeconds * float64(time.Second))
	r.Shards = nil
	for _, s := range rep.Shards {
		s.Behind = time.Duration(s.BehindSeconds * float64(time.Second))
		r.Shards = append(r.Shards, s.Shard)
	}
	var table bytes.Buffer
	_ = r.WriteTable(&table)
	t.Logf("the same report as a table:\n%s", table.String())
	return r, code
}

func byState(r status.Report) map[string][]string {
	m := map[string][]string{}
	for _, s := range r.Shards {
		m[s.State] = append(m[s.State], s.ID)
	}
	return m
}

// consumer status on a 4-shard stream: two live workers → every shard
// reading, exit 0; one worker frozen (never renews nor releases again) →
// its shards stalled under its name, exit 3; once the survivor has taken
// them → all reading again under it, exit 0. The JSON form carries the
// same facts as the table.
func TestStatusTwoWorkersThenOneDies(t *testing.T) {
	ms := newMetricsStack(t, 4)
	dir := t.TempDir()
	cfg := localServiceConfig(dir, ms.stream)
	cfg.LeaseTable = "paystream-status-test"
	cfg.FailoverTime = statusTestFailover
	cfg.FlushInterval, cfg.IdlePoll, cfg.ShardSyncInterval = 500*time.Millisecond, 200*time.Millisecond, time.Second
	cfg.MaintenanceInterval = time.Hour // elects a maintainer; never runs in the test
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--stream", ms.stream, "--lease-table", cfg.LeaseTable,
		"--catalog", cfg.Catalog.Catalog, "--warehouse", cfg.Catalog.Warehouse, "--table", cfg.Catalog.Table,
		"--failover-time", statusTestFailover.String(), "--sample", statusTestSample.String(),
	}
	ctx := context.Background()

	a := startStatusWorker(t, ms, cfg, "worker-a")
	b := startStatusWorker(t, ms, cfg, "worker-b")
	gen := schema.NewGenerator(17, time.Now())
	send := func(n int) {
		var recs []ktypes.PutRecordsRequestEntry
		var kinds []string
		for range n {
			e := gen.Next(time.Now())
			recs = append(recs, ktypes.PutRecordsRequestEntry{Data: e.AppendJSON(nil), PartitionKey: aws.String(e.CustomerID)})
			kinds = append(kinds, "valid")
		}
		ms.put(ctx, recs, kinds)
	}
	send(120)
	waitFor(t, 60*time.Second, "each worker holds two shards and all four are committed", func() bool {
		if len(a.w.Held()) != 2 || len(b.w.Held()) != 2 {
			return false
		}
		cat, err := iceberg.OpenCatalog(ctx, cfg.Catalog)
		if err != nil {
			return false
		}
		defer func() { _ = cat.(io.Closer).Close() }()
		ident, _ := iceberg.ParseIdentifier(cfg.Catalog.Table)
		st, err := status.IcebergTable{Catalog: cat, Ident: ident}.State(ctx)
		return err == nil && len(st.Positions) == 4
	})

	// Two live workers: all reading.
	out, code, err := runStatusCmd(t, args...)
	if err != nil || code != 0 {
		t.Fatalf("healthy status: exit %d, err %v", code, err)
	}
	if n := strings.Count(out, " reading "); n != 4 {
		t.Errorf("table shows %d shards reading, want 4", n)
	}
	for _, want := range []string{`(?m)^OK  at `, `(?m)^maintainer: +worker-[ab] \(renewing\)$`, `(?m)^worker-a +yes +2: `, `(?m)^worker-b +yes +2: `} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("table output does not match %s", want)
		}
	}
	rep, code := statusJSON(t, args...)
	if code != 0 || !rep.Healthy || len(rep.Problems) != 0 {
		t.Errorf("JSON: exit %d, healthy %v, problems %v; want 0, true, none", code, rep.Healthy, rep.Problems)
	}
	if got := byState(rep); len(got[status.StateReading]) != 4 {
		t.Errorf("JSON states %v, want 4 reading", got)
	}
	for _, s := range rep.Shards {
		if !s.Renewing || s.Position == "" || (s.Owner != "worker-a" && s.Owner != "worker-b") {
			t.Errorf("JSON shard %+v: want renewing, a position and owner worker-a or worker-b", s)
		}
	}
	if rep.Maintainer == nil || !rep.Maintainer.Renewing || rep.LastCommit == nil {
		t.Errorf("JSON maintainer %+v, last commit %v: want a renewing holder and a commit time", rep.Maintainer, rep.LastCommit)
	}
	if len(rep.Workers) != 2 || len(rep.Workers[0].Shards) != 2 || len(rep.Workers[1].Shards) != 2 {
		t.Errorf("JSON workers %+v, want two with two shards each", rep.Workers)
	}

	// worker-b dies: its lease store is cut off, then it is stopped; it
	// never renews nor releases again. More records arrive for every shard.
	bShards := b.w.Held()
	slices.Sort(bShards)
	b.store.frozen.Store(true)
	b.cancel()
	send(40)
	rep, code = statusJSON(t, args...)
	if code != statusExitProblems || rep.Healthy {
		t.Errorf("after worker-b died: exit %d, healthy %v; want %d, false", code, rep.Healthy, statusExitProblems)
	}
	states := byState(rep)
	if got := states[status.StateStalled]; !slices.Equal(got, bShards) {
		t.Errorf("stalled shards %v, want worker-b's %v (states %v)", got, bShards, states)
	}
	for _, s := range rep.Shards {
		if slices.Contains(bShards, s.ID) && (s.Owner != "worker-b" || s.Renewing || s.Problem == "") {
			t.Errorf("dead worker's shard %+v: want owner worker-b, not renewing, with a problem", s)
		}
	}
	if len(rep.Problems) < 2 || !strings.Contains(rep.Problems[0].Text, "worker-b did not renew") {
		t.Errorf("problems %+v: want worker-b's shards first", rep.Problems)
	}
	if len(rep.Shards) != 4 || !slices.Contains(bShards, rep.Shards[0].ID) {
		t.Errorf("shards not ordered problems first: %+v", rep.Shards)
	}
	var deadWorker bool
	for _, w := range rep.Workers {
		deadWorker = deadWorker || (w.ID == "worker-b" && !w.Alive)
	}
	if !deadWorker {
		t.Errorf("workers %+v: want worker-b not alive", rep.Workers)
	}

	// worker-a takes worker-b's shards once their leases expire.
	waitFor(t, 60*time.Second, "worker-a holds all four shards", func() bool { return len(a.w.Held()) == 4 })
	out, code, err = runStatusCmd(t, args...)
	if err != nil || code != 0 {
		t.Fatalf("status after take-over: exit %d, err %v", code, err)
	}
	if !regexp.MustCompile(`(?m)^worker-a +yes +4: `).MatchString(out) || strings.Count(out, " reading ") != 4 {
		t.Errorf("after take-over want worker-a reading all four shards")
	}
}

// Bad flags are usage errors (exit 2) that name the flag; a missing lease
// table or table says what to check.
func TestStatusErrors(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--stream is required"},
		{[]string{"--stream", "s", "--format", "yaml"}, `--format "yaml"`},
		{[]string{"--stream", "s", "--failover-time", "9s", "--sample", "2s"}, "--sample 2s: must be longer than a third of --failover-time"},
		{[]string{"--stream", "s", "--stall-after", "0s"}, "--stall-after"},
		{[]string{"--stream", "s", "extra"}, "no arguments"},
	} {
		_, err := parseStatus(tc.args, noEnv, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseStatus(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	c, err := parseStatus([]string{"--stream", "s", "--app-name", "shop"}, noEnv, io.Discard)
	if err != nil || c.LeaseTable != "shop" || c.Sample != c.FailoverTime/2 {
		t.Errorf("defaults: %+v, %v; want lease table = app name, sample = failover/2", c, err)
	}
	var help bytes.Buffer
	if _, err := parseStatus([]string{"--help"}, noEnv, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, f := range []string{"--stream", "--app-name", "--lease-table", "--catalog", "--warehouse", "--table", "--failover-time", "--sample", "--stall-after", "--format", "Exit status"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("--help does not explain %s", f)
		}
	}
}

// Against moto: a missing lease table, stream or table is named with what
// to check, and is not reported as unhealthy.
func TestStatusMissingSources(t *testing.T) {
	ms := newMetricsStack(t, 1)
	dir := t.TempDir()
	cfg := localServiceConfig(dir, ms.stream)
	cfg.FailoverTime = 3 * time.Second
	base := []string{"--catalog", cfg.Catalog.Catalog, "--warehouse", cfg.Catalog.Warehouse, "--failover-time", "3s", "--sample", "1100ms"}
	_, code, err := runStatusCmd(t, append([]string{"--stream", ms.stream, "--lease-table", "no-such-leases"}, base...)...)
	if code != 1 || err == nil || !strings.Contains(err.Error(), `lease table "no-such-leases" not found`) || !strings.Contains(err.Error(), "--lease-table") {
		t.Errorf("missing lease table: exit %d, %v", code, err)
	}
	// A worker creates the lease table and the table; then ask for the wrong stream and table.
	w := startStatusWorker(t, ms, cfg, "worker-a")
	waitFor(t, 30*time.Second, "the worker takes the shard", func() bool { return len(w.w.Held()) == 1 })
	_, code, err = runStatusCmd(t, append([]string{"--stream", "no-such-stream", "--lease-table", cfg.LeaseTable}, base...)...)
	if code != 1 || err == nil || !strings.Contains(err.Error(), "--stream no-such-stream") || !strings.Contains(err.Error(), "stream not found") {
		t.Errorf("missing stream: exit %d, %v", code, err)
	}
	_, code, err = runStatusCmd(t, append([]string{"--stream", ms.stream, "--lease-table", cfg.LeaseTable, "--table", "nope.missing"}, base...)...)
	if code != 1 || err == nil || !strings.Contains(err.Error(), "table nope.missing not found") {
		t.Errorf("missing table: exit %d, %v", code, err)
	}
	_, code, err = runStatusCmd(t, append([]string{"--stream", ms.stream, "--lease-table", cfg.LeaseTable}, base...)...)
	if code != 0 || err != nil {
		t.Errorf("single live worker: exit %d, %v", code, err)
	}
}

// After a split, on the Kinesis emulator (moto never ends a closed shard):
// the parent is shown finished and its two children reading, exit 0.
func TestStatusAfterSplit(t *testing.T) {
	srv := kinesistest.Start(t)
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL) // wins over moto's AWS_ENDPOINT_URL for Kinesis
	ms := newMetricsStack(t, 1)
	cfg := localServiceConfig(t.TempDir(), ms.stream)
	cfg.LeaseTable = "paystream-status-split"
	cfg.FailoverTime = 3 * time.Second
	cfg.FlushInterval, cfg.IdlePoll, cfg.ShardSyncInterval = 300*time.Millisecond, 200*time.Millisecond, 500*time.Millisecond
	w := startStatusWorker(t, ms, cfg, "worker-a")
	ctx := context.Background()
	gen := schema.NewGenerator(3, time.Now())
	send := func(n int) {
		var recs []ktypes.PutRecordsRequestEntry
		var kinds []string
		for range n {
			e := gen.Next(time.Now())
			recs = append(recs, ktypes.PutRecordsRequestEntry{Data: e.AppendJSON(nil), PartitionKey: aws.String(e.CustomerID)})
			kinds = append(kinds, "valid")
		}
		ms.put(ctx, recs, kinds)
	}
	send(30)
	waitFor(t, 30*time.Second, "the worker takes the shard", func() bool { return len(w.w.Held()) == 1 })
	out, err := ms.kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(ms.stream)})
	if err != nil {
		t.Fatal(err)
	}
	parent := out.Shards[0]
	start, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	end, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(start, end), 1)
	if _, err := ms.kin.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(ms.stream), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	send(30)
	waitFor(t, 60*time.Second, "the worker finishes the parent and reads both children", func() bool {
		held := w.w.Held()
		return len(held) == 2 && !slices.Contains(held, aws.ToString(parent.ShardId))
	})
	args := []string{
		"--stream", ms.stream, "--lease-table", cfg.LeaseTable,
		"--catalog", cfg.Catalog.Catalog, "--warehouse", cfg.Catalog.Warehouse,
		"--failover-time", "3s", "--sample", "1500ms",
	}
	rep, code := statusJSON(t, args...)
	if code != 0 || !rep.Healthy {
		t.Errorf("after the split: exit %d, healthy %v; want 0, true (problems %+v)", code, rep.Healthy, rep.Problems)
	}
	states := byState(rep)
	if got := states[status.StateFinished]; !slices.Equal(got, []string{aws.ToString(parent.ShardId)}) {
		t.Errorf("finished %v, want the parent %s (states %v)", got, aws.ToString(parent.ShardId), states)
	}
	if got := states[status.StateReading]; len(got) != 2 {
		t.Errorf("reading %v, want the two children (states %v)", got, states)
	}
	for _, s := range rep.Shards {
		if s.State == status.StateReading && (s.Owner != "worker-a" || !slices.Equal(s.Parents, []string{aws.ToString(parent.ShardId)})) {
			t.Errorf("child %+v: want owner worker-a and parent %s", s, aws.ToString(parent.ShardId))
		}
	}
}
