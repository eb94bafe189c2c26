package e2ebench_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/sivchari/kumo"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/internal/quantile"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
	"github.com/paystream/paystream/pkg/schema"
)

// BenchmarkFreshnessReadMode compares event→table freshness of the two
// read modes at the same load: one worker reads a 4-shard stream of the
// in-process Kinesis emulator (kinesistest, which serves SubscribeToShard)
// while the producer sends 1,000 events/s for 20 s (PAYSTREAM_BENCH_DURATION
// changes it); leases are on kumo's DynamoDB, the catalog is SQLite. An
// event's freshness is the time from Kinesis acknowledging its PutRecords
// to the return of the table commit that holds it, for every event (exact
// quantiles, not histogram buckets; an event committed before the
// producer's callback saw its acknowledgement counts as 0). The worker runs the service's defaults
// (--idle-poll 1s) at --flush-interval 1s and 250ms.
//
//	go test -run '^$' -bench FreshnessReadMode -benchtime 1x ./pkg/ingest/e2ebench
func BenchmarkFreshnessReadMode(b *testing.B) {
	duration := 20 * time.Second
	if v := os.Getenv("PAYSTREAM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PAYSTREAM_BENCH_DURATION: %v", err)
		}
		duration = d
	}
	for _, flush := range []time.Duration{time.Second, 250 * time.Millisecond} {
		for _, mode := range []string{ingest.ReadPolling, ingest.ReadEFO} {
			b.Run(fmt.Sprintf("flush=%s/mode=%s", flush, mode), func(b *testing.B) {
				var all []time.Duration
				for i := 0; i < b.N; i++ {
					all = append(all, benchFreshness(b, mode, flush, duration)...)
				}
				early := 0
				for _, d := range all {
					if d == 0 {
						early++
					}
				}
				slices.Sort(all)
				b.ReportMetric(quantile.Sorted(0.5, all).Seconds(), "freshness-p50-s")
				b.ReportMetric(quantile.Sorted(0.9, all).Seconds(), "freshness-p90-s")
				b.ReportMetric(quantile.Sorted(0.99, all).Seconds(), "freshness-p99-s")
				b.ReportMetric(float64(len(all))/float64(b.N), "events")
				b.ReportMetric(float64(early)/float64(b.N), "committed-before-ack")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// freshSink notes when each event's PutRecords was acknowledged (the
// producer's OnSent) and when the commit holding it returned.
type freshSink struct {
	*iceberg.Sink
	mu          sync.Mutex
	sentAt      map[string]time.Time
	committedAt map[string]time.Time
}

func (s *freshSink) sent(x producer.Sent) {
	if x.EventID == "" {
		return
	}
	now := time.Now()
	s.mu.Lock()
	if _, ok := s.sentAt[x.EventID]; !ok {
		s.sentAt[x.EventID] = now
	}
	s.mu.Unlock()
}

func (s *freshSink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	res, err := s.Sink.Commit(ctx, b)
	if err != nil || b.Records == nil {
		return res, err
	}
	at := time.Now()
	ids := b.Records.Column(b.Records.Schema().FieldIndices(schema.ColEventID)[0]).(*array.String)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ids.Len() {
		s.committedAt[ids.Value(i)] = at
	}
	return res, nil
}

// samples returns each event's freshness. An event pushed and committed
// before the producer's OnSent saw its acknowledgement counts as 0.
func (s *freshSink) samples() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Duration, 0, len(s.sentAt))
	for id, sent := range s.sentAt {
		if at, ok := s.committedAt[id]; ok {
			out = append(out, max(at.Sub(sent), 0))
		}
	}
	return out
}

func benchFreshness(b *testing.B, mode string, flush, duration time.Duration) []time.Duration {
	b.StopTimer()
	ctx := context.Background()
	ksrv, err := kinesistest.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	defer ksrv.Close()
	dsrv := kumo.NewServer()
	defer dsrv.Close()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		b.Fatal(err)
	}
	kin := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(ksrv.URL) })
	ddb := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(dsrv.URL) })
	stream := fmt.Sprintf("fresh-%d", time.Now().UnixNano())
	if _, err := kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(4)}); err != nil {
		b.Fatal(err)
	}
	cat, ident, warehouse := benchTable(b)
	sink := &freshSink{Sink: iceberg.NewSink(cat, ident, iceberg.SinkConfig{}), sentAt: map[string]time.Time{}, committedAt: map[string]time.Time{}}
	store, err := lease.NewDynamoStore(ddb, lease.DynamoStoreConfig{Table: stream + "-leases", CreateTable: true})
	if err != nil {
		b.Fatal(err)
	}
	wc := ingest.DefaultWorkerConfig()
	wc.Pipeline.Stream, wc.Pipeline.FlushInterval = stream, flush
	wc.Pipeline.ReadMode, wc.Pipeline.ConsumerName = mode, "paystream"
	wc.Coordinator.WorkerID = "bench"
	wc.MaintenanceInterval = 0
	w, err := ingest.NewWorker(wc, ingest.WorkerDeps{
		Kinesis: kin, Leases: store, Sink: sink, DeadLetters: iceberg.NewDeadLetter(warehouse, "", ident, nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	// The worker holds every shard before the producer starts.
	for deadline := time.Now().Add(30 * time.Second); len(w.Held()) < 4; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("the worker holds %d of 4 shards after 30s", len(w.Held()))
		}
	}
	time.Sleep(2 * time.Second) // readers started and subscribed

	pc := producer.DefaultConfig()
	pc.Stream, pc.Rate, pc.Duration, pc.Concurrency, pc.Seed = stream, 1000, duration, 4, 3
	pc.DuplicateRate, pc.InvalidRate = 0, 0
	pc.Logger = slog.New(slog.DiscardHandler)
	pc.OnSent = sink.sent
	b.StartTimer()
	sum, err := producer.Run(ctx, pc, kin, io.Discard, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		sink.mu.Lock()
		n := len(sink.committedAt)
		sink.mu.Unlock()
		if n >= int(sum.UniqueEventIDs) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events committed 60s after the producer's end", n, sum.UniqueEventIDs)
		}
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st := ksrv.Stats()
	b.Logf("mode %s flush %s: %d events, %d GetRecords calls, %d SubscribeToShard calls", mode, flush, sum.UniqueEventIDs, st.Requests["GetRecords"], st.Requests["SubscribeToShard"])
	return sink.samples()
}
