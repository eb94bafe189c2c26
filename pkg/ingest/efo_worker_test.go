package ingest_test

import (
	"context"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
)

func efoMode(c *ingest.WorkerConfig) {
	c.Pipeline.ReadMode, c.Pipeline.ConsumerName = ingest.ReadEFO, "paystream-test"
}

// Two workers in read mode efo, subscriptions that end every 1.5 s, and a
// split while the producer runs (with duplicates and invalid records):
// every valid event is in the table once, and no shard was polled.
func TestWorkerEFOExactlyOnce(t *testing.T) {
	s, srv := newEmulatedStack(t, 2,
		kinesistest.WithSubscriptionLifetime(1500*time.Millisecond), kinesistest.WithResubscribeWindow(500*time.Millisecond))
	ctx := context.Background()
	s.startWorker("w1", efoMode)
	s.startWorker("w2", efoMode)

	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.DuplicateRate, cfg.InvalidRate, cfg.DuplicateDelay = 400, 8*time.Second, 0.1, 0.02, time.Second
	cfg.Seed = 11
	prod := s.produceInBackground(ctx, cfg)
	prod.waitSent(t, 1200, 20*time.Second)
	first := s.openShards(ctx)[0]
	start, end := bigOf(t, first.HashKeyRange.StartingHashKey), bigOf(t, first.HashKeyRange.EndingHashKey)
	mid := new(big.Int).Add(start, end)
	mid.Rsh(mid, 1)
	if _, err := s.kin.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(s.stream), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	s.waitActive(ctx)
	sent := prod.wait(t)
	perShard := map[string]int{}
	for _, x := range sent {
		perShard[x.ShardID]++
	}
	if len(perShard) != 4 {
		t.Fatalf("records went to %d shards, want the 2 first and the split's 2 children: %v", len(perShard), perShard)
	}
	s.expectExactlyOnce(ctx, sent, 60*time.Second)

	st := srv.Stats()
	if n := st.Requests["GetRecords"]; n != 0 {
		t.Errorf("%d GetRecords calls in read mode efo", n)
	}
	if st.Requests["SubscribeToShard"] < 8 || st.RecordsPushed < len(sent) {
		t.Errorf("%d SubscribeToShard calls pushed %d records; want subscriptions renewed and every one of the %d records pushed",
			st.Requests["SubscribeToShard"], st.RecordsPushed, len(sent))
	}
	// Both workers may find no consumer at start and register: the
	// second is refused (ResourceInUseException) and uses the first's.
	if n := st.Requests["RegisterStreamConsumer"]; n < 1 || n > 2 {
		t.Errorf("%d RegisterStreamConsumer calls for two workers of one application, want 1 or 2", n)
	}
	sum, err := s.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.stream)})
	if err != nil {
		t.Fatal(err)
	}
	consumers, err := s.kin.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: sum.StreamDescriptionSummary.StreamARN})
	if err != nil {
		t.Fatal(err)
	}
	if len(consumers.Consumers) != 1 {
		t.Errorf("%d stream consumers registered for two workers of one application, want 1", len(consumers.Consumers))
	}
	t.Logf("sent %d records to %v; %d subscriptions", len(sent), perShard, st.Requests["SubscribeToShard"])
}

// A stream with no room for another consumer: the worker does not start,
// and says why and what to do.
func TestWorkerEFOConsumerLimit(t *testing.T) {
	s, _ := newEmulatedStack(t, 1, kinesistest.WithConsumerLimit(1))
	ctx := context.Background()
	sum, err := s.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.stream)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.kin.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("another-app"),
	}); err != nil {
		t.Fatal(err)
	}
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	reg := prometheus.NewRegistry()
	sink := iceberg.NewSink(s.catalog(), ident, iceberg.SinkConfig{Registerer: reg})
	dd, err := dedup.New(dedup.Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingest.DefaultWorkerConfig()
	cfg.Pipeline.Stream = s.stream
	cfg.Coordinator = lease.CoordinatorConfig{WorkerID: "w1", FailoverTime: 3 * time.Second, Registerer: reg}
	efoMode(&cfg)
	w, err := ingest.NewWorker(cfg, ingest.WorkerDeps{
		Kinesis: s.kin, Leases: s.leaseStore(), Sink: sink, Dedup: dd, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = w.Run(rctx)
	if !errors.Is(err, ingest.ErrConsumerLimit) {
		t.Fatalf("Run: %v, want ErrConsumerLimit", err)
	}
	if rctx.Err() != nil {
		t.Fatal("Run kept retrying the consumer limit until its context ended")
	}
	for _, want := range []string{"--read-mode polling", "deregister"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
}
