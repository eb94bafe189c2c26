package kinesistest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/kinesistest"
)

// payload is about the size of a payment event's JSON.
var payload = []byte(`{"event_id":"evt_1795641793575_2836","event_type":"charge","customer_id":"cus_000000","amount_usd":"15.49","currency":"USD","subscription_tier":"standard","status":"succeeded","country_code":"US","payment_processor":"stripe","event_ts":"2026-03-01T12:00:00Z"}`)

// BenchmarkPutRecords measures records/s through the real SDK client: calls
// of 500 records from parallel writers to a 4-shard stream.
func BenchmarkPutRecords(b *testing.B) {
	srv := kinesistest.Start(b)
	kc := benchClient(b, srv)
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(4)}); err != nil {
		b.Fatal(err)
	}
	entries := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("cus_", i)), Data: payload}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
			if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
				b.Errorf("put records: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(entries))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGetRecords measures records/s read through the real SDK client
// in calls of up to 10,000 records.
func BenchmarkGetRecords(b *testing.B) {
	srv := kinesistest.Start(b)
	kc := benchClient(b, srv)
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		b.Fatal(err)
	}
	entries := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("cus_", i)), Data: payload}
	}
	for range 20 {
		if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries}); err != nil {
			b.Fatal(err)
		}
	}
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		b.Fatal(err)
	}
	read := 0
	b.ResetTimer()
	for b.Loop() {
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			b.Fatal(err)
		}
		read += len(out.Records)
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}

func benchClient(b *testing.B, srv *kinesistest.Server) *kinesis.Client {
	b.Helper()
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  aws.AnonymousCredentials{},
	})
}

// BenchmarkSubscribeToShard measures records/s pushed through one
// SubscribeToShard event stream to the real SDK client: each iteration
// subscribes from TRIM_HORIZON to a shard holding 100,000 payment-sized
// records and reads events until it has them all.
func BenchmarkSubscribeToShard(b *testing.B) {
	const backlog = 100_000
	srv := kinesistest.Start(b, kinesistest.WithResubscribeWindow(0))
	kc := benchClient(b, srv)
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		b.Fatal(err)
	}
	entries := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range entries {
		entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("cus_", i)), Data: payload}
	}
	for range backlog / len(entries) {
		if _, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries}); err != nil {
			b.Fatal(err)
		}
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		b.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("bench")})
	if err != nil {
		b.Fatal(err)
	}
	read := 0
	for b.Loop() {
		out, err := kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
			ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
			StartingPosition: &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon},
		})
		if err != nil {
			b.Fatal(err)
		}
		es := out.GetStream()
		n := 0
		for ev := range es.Events() {
			if e, ok := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				n += len(e.Value.Records)
			}
			if n == backlog {
				break
			}
		}
		if err := es.Close(); err != nil || n != backlog {
			b.Fatalf("read %d of %d records: %v", n, backlog, err)
		}
		read += n
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}
