package scalebench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/internal/promreport"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
)

// bench is one measurement: a fresh stream, table and lease table, and
// its workers.
type bench struct {
	t       *testing.T
	cfg     Config
	aws     aws.Config
	kin     *kinesis.Client
	stream  string
	catCfg  iceberg.CatalogConfig
	ident   table.Identifier
	leases  string
	workers []*worker
	trace   slog.Handler // the workers' debug logs (Config.Log), nil when off
}

type worker struct {
	w      *ingest.Worker
	reg    *prometheus.Registry
	cat    *DelayCatalog
	cancel context.CancelFunc
	done   chan error
}

// measure runs one worker count: start, balance, produce, drain, check.
func measure(t *testing.T, awsCfg aws.Config, cfg Config, n int) Measure {
	ctx := context.Background()
	b := newBench(t, awsCfg, cfg, n)
	for i := range n {
		b.startWorker(fmt.Sprintf("w%d", i+1))
	}
	b.waitBalanced(90 * time.Second)
	before, attempts0 := b.scrape(), b.attempts()
	start := time.Now()
	warm := make(chan promreport.Snapshot, 1)
	if cfg.Skip > 0 {
		t := time.AfterFunc(cfg.Skip, func() { warm <- b.scrape() })
		defer t.Stop()
	}
	ids, last := b.produce(ctx)
	end := time.Now()
	atEnd, attempts1 := b.scrape(), b.attempts()
	b.waitCommitted(ctx, last, 5*time.Minute)
	drained := time.Now()
	after := b.scrape()
	b.stopWorkers()

	window := promreport.Build(before, atEnd, end.Sub(start))
	run := promreport.Build(before, after, drained.Sub(start))
	steady := promreport.Report{FreshnessP50: math.NaN(), FreshnessP99: math.NaN()}
	if cfg.Skip > 0 {
		steady = promreport.Build(<-warm, after, drained.Sub(start.Add(cfg.Skip)))
	}
	snaps, tableIDs := b.tableContents(ctx, start, end)
	return Measure{
		Workers: n, Window: end.Sub(start), Snapshots: snaps,
		Attempts: float64(attempts1 - attempts0), Conflicts: window.Conflicts, Committed: window.Committed,
		FreshnessP50: run.FreshnessP50, FreshnessP99: run.FreshnessP99,
		SteadyP50: steady.FreshnessP50, SteadyP99: steady.FreshnessP99,
		Dropped: dropped(after) - dropped(before), Drain: drained.Sub(end),
		Tally: CountIDs(ids, tableIDs),
	}
}

func newBench(t *testing.T, awsCfg aws.Config, cfg Config, n int) *bench {
	ctx := context.Background()
	srv := kinesistest.Start(t)
	dir := t.TempDir()
	b := &bench{
		t: t, cfg: cfg, aws: awsCfg, stream: "payments", leases: fmt.Sprintf("scalebench-%d-%d", n, time.Now().UnixNano()),
		kin: kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(srv.URL) }),
		catCfg: iceberg.CatalogConfig{
			Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
			Warehouse: "file://" + filepath.Join(dir, "warehouse"),
			Table:     iceberg.DefaultTable,
		},
	}
	b.ident, _ = iceberg.ParseIdentifier(b.catCfg.Table)
	if cfg.Log != "" {
		f, err := os.OpenFile(cfg.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatalf("BENCH_SCALE_LOG: %v", err)
		}
		t.Cleanup(func() { _ = f.Close() })
		b.trace = slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs([]slog.Attr{slog.Int("workers", n)})
	}
	if _, err := b.kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(b.stream), ShardCount: aws.Int32(int32(cfg.Shards))}); err != nil {
		t.Fatal(err)
	}
	if _, err := iceberg.EnsureTable(ctx, b.catalog(), b.ident, b.catCfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	return b
}

// catalog opens a connection to the run's catalog, closed when the
// measurement ends.
func (b *bench) catalog() catalog.Catalog {
	cat, err := iceberg.OpenCatalog(context.Background(), b.catCfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		b.t.Cleanup(func() { _ = c.Close() })
	}
	return cat
}

// startWorker starts one worker with its own catalog connection, delayed
// commits and metrics registry; maintenance is off, so every snapshot of
// the run is a data commit.
func (b *bench) startWorker(id string) {
	reg := prometheus.NewRegistry()
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})
	if b.trace != nil {
		h = slog.NewMultiHandler(h, b.trace.WithAttrs([]slog.Attr{slog.String("worker", id)}))
	}
	log := slog.New(h)
	cat := NewDelayCatalog(b.catalog(), b.cfg.CommitDelay)
	sink := iceberg.NewSink(cat, b.ident, iceberg.SinkConfig{Registerer: reg, Logger: log})
	dd, err := dedup.New(dedup.Config{Registerer: reg})
	if err != nil {
		b.t.Fatal(err)
	}
	store, err := lease.NewDynamoStore(dynamodb.NewFromConfig(b.aws), lease.DynamoStoreConfig{Table: b.leases, CreateTable: true})
	if err != nil {
		b.t.Fatal(err)
	}
	cfg := ingest.DefaultWorkerConfig()
	cfg.Pipeline.Stream = b.stream
	cfg.Coordinator.WorkerID, cfg.Coordinator.Registerer = id, reg
	cfg.ShardSyncInterval, cfg.MaintenanceInterval = time.Second, 0
	if err := configureMode(&cfg, b.cfg.Mode); err != nil {
		b.t.Fatal(err)
	}
	w, err := ingest.NewWorker(cfg, ingest.WorkerDeps{
		Kinesis: b.kin, Leases: store, Sink: sink, Start: sink, Dedup: dd, Logger: log, Metrics: ingest.NewMetrics(reg),
		DeadLetters: iceberg.NewDeadLetter(b.catCfg.Warehouse, "", b.ident, reg),
	})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{w: w, reg: reg, cat: cat, cancel: cancel, done: make(chan error, 1)}
	go func() { wk.done <- w.Run(ctx) }()
	b.workers = append(b.workers, wk)
	b.t.Cleanup(func() { b.stop(wk) })
}

// waitBalanced waits until every shard is leased and no worker holds more
// than one shard more than another.
func (b *bench) waitBalanced(within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		total, lo, hi := 0, b.cfg.Shards, 0
		for _, wk := range b.workers {
			n := len(wk.w.Held())
			total, lo, hi = total+n, min(lo, n), max(hi, n)
		}
		if total == b.cfg.Shards && hi-lo <= 1 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("leases not spread within %s: %d of %d shards held, %d to %d per worker", within, total, b.cfg.Shards, lo, hi)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// produce sends Rate events/s for Duration and returns the distinct event
// ids the stream acknowledged and the last sequence number per shard.
func (b *bench) produce(ctx context.Context) (map[string]bool, map[string]string) {
	var mu sync.Mutex
	ids, last := map[string]bool{}, map[string]string{}
	cfg := producer.DefaultConfig()
	cfg.Stream, cfg.Rate, cfg.Duration, cfg.Concurrency = b.stream, b.cfg.Rate, b.cfg.Duration, 4
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.OnSent = func(x producer.Sent) {
		mu.Lock()
		defer mu.Unlock()
		ids[x.EventID] = true
		if commit.CompareSeq(x.SequenceNumber, last[x.ShardID]) > 0 {
			last[x.ShardID] = x.SequenceNumber
		}
	}
	sum, err := producer.Run(ctx, cfg, b.kin, io.Discard, io.Discard)
	if err != nil {
		b.t.Fatalf("producer: %v", err)
	}
	if sum.FailedAfterRetries > 0 {
		b.t.Fatalf("producer: %d records failed after retries", sum.FailedAfterRetries)
	}
	mu.Lock()
	defer mu.Unlock()
	// A retried entry whose first send landed too is a second copy of its
	// event: the stream has more records than distinct ids; dedup drops it.
	b.t.Logf("produced %d records, %d distinct ids, in %.1fs (%.0f/s); %d entries retried, %d with unknown outcome",
		sum.Sent, len(ids), sum.ElapsedSeconds, sum.AchievedRate, sum.RetriedEntries, sum.UnknownOutcomeEntries)
	return ids, last
}

// waitCommitted waits until the table's position of every shard has
// reached the last record sent to it.
func (b *bench) waitCommitted(ctx context.Context, last map[string]string, within time.Duration) {
	cat := b.catalog()
	deadline := time.Now().Add(within)
	for {
		tbl, err := cat.LoadTable(ctx, b.ident)
		if err != nil {
			b.t.Fatal(err)
		}
		pos := iceberg.TablePositions(tbl)
		behind := 0
		for shard, seq := range last {
			if commit.CompareSeq(pos[shard], seq) < 0 {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%d shards not committed up to their last record within %s", behind, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape merges the metrics of every worker.
func (b *bench) scrape() promreport.Snapshot {
	var snaps []promreport.Snapshot
	for _, wk := range b.workers {
		fams, err := wk.reg.Gather()
		if err != nil {
			b.t.Fatal(err)
		}
		snaps = append(snaps, promreport.FromFamilies(fams))
	}
	return promreport.Merge(snaps...)
}

func (b *bench) attempts() int64 {
	var n int64
	for _, wk := range b.workers {
		n += wk.cat.Attempts()
	}
	return n
}

// dropped counts batches dropped for a moved position and shards given up
// by the stall watchdog.
func dropped(s promreport.Snapshot) float64 {
	return s.Sum("paystream_ingest_batches_dropped_total") + s.Sum("paystream_ingest_shard_stalled_total")
}

func (b *bench) stopWorkers() {
	for _, wk := range b.workers {
		b.stop(wk)
	}
}

func (b *bench) stop(wk *worker) {
	if wk.cancel == nil {
		return
	}
	wk.cancel()
	wk.cancel = nil
	select {
	case err := <-wk.done:
		if err != nil {
			b.t.Errorf("worker returned %v", err)
		}
	case <-time.After(60 * time.Second):
		b.t.Error("worker did not stop within 60s")
	}
}
