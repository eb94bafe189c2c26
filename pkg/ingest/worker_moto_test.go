package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
	"github.com/paystream/paystream/pkg/schema"
)

// stack is one test's local AWS (moto), stream, catalog and table.
type stack struct {
	t         *testing.T
	aws       aws.Config
	kin       *kinesis.Client
	stream    string
	catCfg    iceberg.CatalogConfig
	leaseName string
	// wrapSink, when set, wraps the sink the workers commit through (to
	// inject commit failures); maintenance and the start use the real one.
	wrapSink func(ingest.Sink) ingest.Sink
	// dynamo, when set, is the DynamoDB client of the lease store.
	dynamo *dynamodb.Client
}

func newStack(t *testing.T, shards int) *stack {
	t.Helper()
	testenv.Moto(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &stack{
		t: t, aws: cfg, kin: kinesis.NewFromConfig(cfg), stream: "payments", leaseName: "paystream-test",
		catCfg: iceberg.CatalogConfig{
			Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
			Warehouse: "file://" + filepath.Join(dir, "warehouse"),
			Table:     iceberg.DefaultTable,
		},
	}
	if _, err := s.kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(s.stream), ShardCount: aws.Int32(int32(shards))}); err != nil {
		t.Fatal(err)
	}
	cat := s.catalog()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, s.catCfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) catalog() catalog.Catalog {
	s.t.Helper()
	cat, err := iceberg.OpenCatalog(context.Background(), s.catCfg)
	if err != nil {
		s.t.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		s.t.Cleanup(func() { _ = c.Close() })
	}
	return cat
}

// produce sends n events and returns what the stream acknowledged.
func (s *stack) produce(ctx context.Context, cfg producer.Config) (producer.Summary, []producer.Sent) {
	s.t.Helper()
	var mu sync.Mutex
	var sent []producer.Sent
	cfg.Stream = s.stream
	// moto's PutRecords is not safe for concurrent calls to one shard: two
	// calls can be given the same sequence number and one record is lost.
	cfg.Concurrency = 1
	cfg.OnSent = func(x producer.Sent) { mu.Lock(); sent = append(sent, x); mu.Unlock() }
	cfg.Logger = slog.New(slog.DiscardHandler)
	sum, err := producer.Run(ctx, cfg, s.kin, io.Discard, io.Discard)
	if err != nil {
		s.t.Fatalf("producer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return sum, append([]producer.Sent(nil), sent...)
}

func (s *stack) leaseStore() *lease.DynamoStore {
	s.t.Helper()
	client := s.dynamo
	if client == nil {
		client = dynamodb.NewFromConfig(s.aws)
	}
	store, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: s.leaseName, CreateTable: true})
	if err != nil {
		s.t.Fatal(err)
	}
	return store
}

type runningWorker struct {
	w      *ingest.Worker
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
}

func (s *stack) startWorker(id string, tweak func(*ingest.WorkerConfig)) *runningWorker {
	s.t.Helper()
	cat := s.catalog()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testWriter{s.t, id}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{Registerer: reg, Logger: log})
	dl := iceberg.NewDeadLetter(s.catCfg.Warehouse, "", ident, reg)
	dd, err := dedup.New(dedup.Config{Registerer: reg})
	if err != nil {
		s.t.Fatal(err)
	}
	store := s.leaseStore()
	cfg := ingest.DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Pipeline.FlushInterval, cfg.Pipeline.IdlePoll = s.stream, 500*time.Millisecond, 200*time.Millisecond
	cfg.Pipeline.DedupWindow = time.Hour
	cfg.Coordinator = lease.CoordinatorConfig{WorkerID: id, FailoverTime: 3 * time.Second, Registerer: reg}
	cfg.ShardSyncInterval, cfg.ShutdownTimeout = time.Second, 20*time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	var commitSink ingest.Sink = sink
	if s.wrapSink != nil {
		commitSink = s.wrapSink(sink)
	}
	w, err := ingest.NewWorker(cfg, ingest.WorkerDeps{
		Kinesis: s.kin, Leases: store, Sink: commitSink, DeadLetters: dl, Dedup: dd, Maintainer: sink, Start: sink,
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

// stop cancels the worker and waits for it to return.
func (rw *runningWorker) stop(t *testing.T) {
	t.Helper()
	if rw.cancel == nil {
		return
	}
	rw.cancel()
	rw.cancel = nil
	select {
	case err := <-rw.done:
		if err != nil {
			t.Errorf("worker returned %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Error("worker did not stop within 40s")
	}
}

type testWriter struct {
	t  *testing.T
	id string
}

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("[%s] %s", w.id, p)
	}
	return len(p), nil
}

// behind lists the shards of last whose table position is short of the
// sequence number last gives them, as "shard: position < last".
func (s *stack) behind(ctx context.Context, last map[string]string) []string {
	s.t.Helper()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	tbl, err := s.catalog().LoadTable(ctx, ident)
	if err != nil {
		s.t.Fatal(err)
	}
	pos := iceberg.TablePositions(tbl)
	var out []string
	for shard, seq := range last {
		if commit.CompareSeq(pos[shard], seq) < 0 {
			out = append(out, fmt.Sprintf("%s: %q < %s", shard, pos[shard], seq))
		}
	}
	slices.Sort(out)
	return out
}

// tableRow is what the checks need of a committed row.
type tableRow struct {
	EventID, Shard, Seq, Customer string
	IngestedAt                    time.Time
}

func (s *stack) rows(ctx context.Context) []tableRow {
	s.t.Helper()
	cat := s.catalog()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		s.t.Fatal(err)
	}
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	arrowTbl, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	defer arrowTbl.Release()
	var out []tableRow
	tr := array.NewTableReader(arrowTbl, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		col := func(name string) *array.String {
			idx := rec.Schema().FieldIndices(name)
			return rec.Column(idx[0]).(*array.String)
		}
		ids, shards, seqs, custs := col(schema.ColEventID), col(schema.ColShardID), col(schema.ColSequenceNumber), col(schema.ColCustomerID)
		ing := rec.Column(rec.Schema().FieldIndices(schema.ColIngestedAt)[0]).(*array.Timestamp)
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, tableRow{ids.Value(i), shards.Value(i), seqs.Value(i), custs.Value(i), time.UnixMicro(int64(ing.Value(i)))})
		}
	}
	return out
}

// expectExactlyOnce waits until the table's position of every shard has
// reached the last record sent to it, then checks each valid event_id is
// in the table exactly once and nothing else is. The position moves in the
// commit of the rows it covers, so by then every record sent, duplicates
// and invalid ones included, was read and its batch committed: a late copy
// of an event would be in the table already, and no commit of these
// records can land later (the position fences it).
func (s *stack) expectExactlyOnce(ctx context.Context, sent []producer.Sent, within time.Duration) []tableRow {
	s.t.Helper()
	want := map[string]bool{}
	last := map[string]string{} // shard → sequence number of the last record sent to it
	for _, x := range sent {
		if x.Kind != "invalid" {
			want[x.EventID] = true
		}
		if commit.CompareSeq(x.SequenceNumber, last[x.ShardID]) > 0 {
			last[x.ShardID] = x.SequenceNumber
		}
	}
	deadline := time.Now().Add(within)
	for {
		behind := s.behind(ctx, last)
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			// Go on to the rows: what is missing says more than the position.
			s.t.Errorf("table positions short of the last record sent after %s: %v", within, behind)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	rows := s.rows(ctx)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.EventID]++
	}
	missing, dups, extra := 0, 0, 0
	for id := range want {
		if seen[id] == 0 {
			missing++
			if missing <= 5 {
				for _, x := range sent {
					if x.EventID == id {
						s.t.Logf("missing: %+v", x)
					}
				}
			}
		}
	}
	for id, n := range seen {
		if n > 1 {
			dups += n - 1
		}
		if !want[id] {
			extra++
		}
	}
	if missing > 0 || dups > 0 || extra > 0 {
		s.t.Fatalf("table vs sent: %d event_ids expected, %d rows; missing %d, duplicated %d, unexpected %d", len(want), len(rows), missing, dups, extra)
	}
	return rows
}

func TestWorkerOneWorkerExactlyOnce(t *testing.T) {
	s := newStack(t, 2)
	ctx := context.Background()
	w := s.startWorker("w1", nil)
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate, cfg.DuplicateRate, cfg.InvalidRate, cfg.DuplicateDelay = 3000, 1500, 0.1, 0.02, time.Second
	sum, sent := s.produce(ctx, cfg)
	if sum.DuplicatesSent == 0 || sum.InvalidSent == 0 {
		t.Fatalf("producer sent no duplicates or invalid records: %+v", sum)
	}
	s.expectExactlyOnce(ctx, sent, 60*time.Second)
	w.stop(t)
	// After a restart of the only worker nothing is read twice.
	w2 := s.startWorker("w1", nil)
	_, sent2 := s.produce(ctx, cfg)
	s.expectExactlyOnce(ctx, append(sent, sent2...), 60*time.Second)
	w2.stop(t)
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	dls, err := iceberg.ReadDeadLetters(ctx, s.catCfg.Warehouse, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	invalid := map[string]bool{}
	for _, x := range append(sent, sent2...) {
		if x.Kind == "invalid" {
			invalid[x.ShardID+"/"+x.SequenceNumber] = true
		}
	}
	got := map[string]bool{}
	for _, d := range dls {
		got[d.Shard+"/"+d.Sequence] = true
	}
	for k := range invalid {
		if !got[k] {
			t.Errorf("invalid record %s not in the dead-letter store", k)
		}
	}
	if len(got) != len(invalid) {
		t.Errorf("dead-letter store holds %d distinct records, want %d", len(got), len(invalid))
	}
}
