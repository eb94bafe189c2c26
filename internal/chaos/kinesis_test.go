//go:build linux

package chaos_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/paystream/paystream/internal/chaos"
	"github.com/paystream/paystream/internal/retry"
)

// efoSub is an open SubscribeToShard event stream whose events a goroutine
// moves to a channel, so the test can wait for one with a deadline.
type efoSub struct {
	es     *kinesis.SubscribeToShardEventStream
	events chan ktypes.SubscribeToShardEvent
}

// subscribeVia subscribes consumer to shard through kc, each call with a
// protocol of its own (the SDK's shared one races between streams).
func subscribeVia(ctx context.Context, kc *kinesis.Client, consumer *string, shard string, pos ktypes.StartingPosition) (*efoSub, error) {
	out, err := kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: consumer, ShardId: aws.String(shard), StartingPosition: &pos},
		func(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) })
	if err != nil {
		return nil, err
	}
	s := &efoSub{es: out.GetStream(), events: make(chan ktypes.SubscribeToShardEvent, 1024)}
	go func() {
		defer close(s.events)
		for ev := range s.es.Events() {
			if e, ok := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				s.events <- e.Value
			}
		}
	}()
	return s, nil
}

// records waits up to d for n records and returns their sequence numbers
// and the last event's continuation.
func (s *efoSub) records(t *testing.T, n int, d time.Duration) ([]string, *ktypes.SubscribeToShardEvent) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var seqs []string
	var last ktypes.SubscribeToShardEvent
	for len(seqs) < n {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended after %d of %d records: %v", len(seqs), n, s.es.Err())
			}
			for _, r := range ev.Records {
				seqs = append(seqs, aws.ToString(r.SequenceNumber))
			}
			last = ev
		case <-timer.C:
			t.Fatalf("%d of %d records within %s", len(seqs), n, d)
		}
	}
	return seqs, &last
}

// end waits up to d for the stream to end and returns its error.
func (s *efoSub) end(t *testing.T, d time.Duration) error {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return s.es.Err()
			}
		case <-timer.C:
			t.Fatalf("stream still open %s after the fault", d)
			return nil
		}
	}
}

// The kinesistest emulator process of read mode efo, behind a consumer's
// proxy: Kinesis requests are routed to it and everything else to moto's
// address; it serves SubscribeToShard through the proxy (records pushed,
// resharding, child shards at a parent's end); and the proxy's faults
// reach a subscription: latency delays its events, errors end it with
// an InternalFailureException event, down cuts it, an error after apply
// answers at once, and an aged-out shard refuses it.
func TestKinesisEmulatorThroughProxy(t *testing.T) {
	bins := binaries(t)
	dir := t.TempDir()
	k, err := chaos.StartKinesis(dir, bins.Kinesis, chaos.KinesisOptions{SubscriptionLifetime: time.Minute, ResubscribeWindow: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	var motoHits atomic.Int64
	moto := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		motoHits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = io.WriteString(w, `{"TableNames":[]}`)
	}))
	t.Cleanup(moto.Close)
	p, err := chaos.NewProxy(moto.URL, 7, chaos.Route{Service: "kinesis", Target: k.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(p.URL())}
	kc := kinesis.NewFromConfig(cfg)
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil || motoHits.Load() != 1 {
		t.Fatalf("DynamoDB through the proxy: %v, %d requests reached moto's address, want 1", err, motoHits.Load())
	}

	const stream, shard0 = "payments", "shardId-000000000000"
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	consumer := reg.Consumer.ConsumerARN
	put := func(n int) []string {
		t.Helper()
		var seqs []string
		for range n {
			out, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("k"), Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, aws.ToString(out.SequenceNumber))
		}
		return seqs
	}
	after := func(seq string) ktypes.StartingPosition {
		return ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(seq)}
	}
	resubscribe := func(pos ktypes.StartingPosition) *efoSub {
		t.Helper()
		var s *efoSub
		var err error
		for range 50 { // past the emulator's resubscribe window
			if s, err = subscribeVia(ctx, kc, consumer, shard0, pos); err == nil {
				return s
			}
			_ = retry.Sleep(ctx, 20*time.Millisecond)
		}
		t.Fatalf("subscribe from %s: %v", pos.Type, err)
		return nil
	}

	// Pushed through the proxy as they arrive.
	sub := resubscribe(ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon})
	want := put(3)
	got, last := sub.records(t, 3, 10*time.Second)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pushed %v, want %v", got, want)
	}

	t.Run("latency delays events", func(t *testing.T) {
		p.Set(chaos.NetFault{Service: "kinesis", Latency: 300 * time.Millisecond})
		defer p.Set(chaos.NetFault{})
		start := time.Now()
		put(1)
		if _, last = sub.records(t, 1, 10*time.Second); time.Since(start) < 300*time.Millisecond {
			t.Errorf("event after %s, want the fault's 300ms at least", time.Since(start))
		}
	})

	t.Run("errors end the stream with InternalFailureException", func(t *testing.T) {
		p.Set(chaos.NetFault{Service: "kinesis", Ops: []string{"SubscribeToShard"}, ErrorRate: 1})
		err := sub.end(t, 10*time.Second)
		p.Set(chaos.NetFault{})
		var inf *ktypes.InternalFailureException
		if !errors.As(err, &inf) || !retry.Retryable(err) {
			t.Fatalf("stream ended with %v (%T), want a retryable InternalFailureException", err, err)
		}
	})

	t.Run("down cuts the stream", func(t *testing.T) {
		sub = resubscribe(after(aws.ToString(last.ContinuationSequenceNumber)))
		want := put(2)
		got, _ := sub.records(t, 2, 10*time.Second)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("after the continuation: %v, want %v", got, want)
		}
		p.Set(chaos.NetFault{Service: "kinesis", Down: true})
		// smithy-go (v1.28.9) takes a stream cut off between two
		// messages (io.ErrUnexpectedEOF) for its end: the reader sees
		// a clean end and resubscribes from the last continuation.
		err := sub.end(t, 10*time.Second)
		p.Set(chaos.NetFault{})
		if err != nil && !retry.Retryable(err) {
			t.Fatalf("stream ended with %v, want a clean end or a retryable error", err)
		}
	})

	t.Run("error after apply answers at once", func(t *testing.T) {
		p.Set(chaos.NetFault{Service: "kinesis", Ops: []string{"SubscribeToShard"}, ErrorRate: 1, After: true})
		defer p.Set(chaos.NetFault{})
		_ = retry.Sleep(ctx, 100*time.Millisecond) // past the resubscribe window
		start := time.Now()
		_, err := subscribeVia(ctx, kc, consumer, shard0, ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeLatest})
		if err == nil || !retry.Retryable(err) || time.Since(start) > 5*time.Second {
			t.Fatalf("SubscribeToShard: %v after %s, want a retryable error at once", err, time.Since(start))
		}
	})

	st := p.Stats()
	for k, want := range map[string]int64{
		"kinesis SubscribeToShard error-in-stream": 1, "kinesis SubscribeToShard reset-stream": 1,
		"kinesis SubscribeToShard error-after-apply": 3, // the SDK's attempts
	} {
		if st.Injected[k] != want {
			t.Errorf("injected %q %d times, want %d (%v)", k, st.Injected[k], want, st.Injected)
		}
	}

	// Resharding through the proxy: the parent's stream ends with its
	// children; once aged out, the parent refuses subscriptions and leaves
	// the shard list, as Kinesis past retention.
	sub = resubscribe(ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon})
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(shard0), NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatal(err)
	}
	var children []string
	for ev := range sub.events {
		if ev.ContinuationSequenceNumber == nil {
			for _, c := range ev.ChildShards {
				children = append(children, aws.ToString(c.ShardId))
			}
		}
	}
	if err := sub.es.Err(); err != nil || len(children) != 2 {
		t.Fatalf("parent's stream ended with %v and children %v, want none and 2", err, children)
	}
	p.Expire(shard0)
	_ = retry.Sleep(ctx, 100*time.Millisecond)
	var nf *ktypes.ResourceNotFoundException
	if _, err := subscribeVia(ctx, kc, consumer, shard0, ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}); !errors.As(err, &nf) {
		t.Fatalf("subscribe to the aged-out parent: %v, want ResourceNotFoundException", err)
	}
	ls, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range ls.Shards {
		ids = append(ids, aws.ToString(s.ShardId))
	}
	if strings.Join(ids, ",") != strings.Join(children, ",") {
		t.Errorf("ListShards after the parent aged out: %v, want its children %v", ids, children)
	}
}
