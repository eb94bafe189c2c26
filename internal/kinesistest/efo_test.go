package kinesistest_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/paystream/paystream/internal/kinesistest"
)

const shard0 = "shardId-000000000000"

// streamARN returns the ARN of a stream.
func streamARN(t testing.TB, kc *kinesis.Client, name string) *string {
	t.Helper()
	out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe stream %s: %v", name, err)
	}
	return out.StreamDescriptionSummary.StreamARN
}

// register registers a consumer and returns its ARN.
func register(t testing.TB, kc *kinesis.Client, stream *string, name string) *string {
	t.Helper()
	out, err := kc.RegisterStreamConsumer(context.Background(), &kinesis.RegisterStreamConsumerInput{StreamARN: stream, ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatalf("register consumer %s: %v", name, err)
	}
	return out.Consumer.ConsumerARN
}

// subscription is an open SubscribeToShard event stream whose events a
// goroutine moves to a channel, so a test can wait for one with a deadline.
type subscription struct {
	es     *kinesis.SubscribeToShardEventStream
	events chan ktypes.SubscribeToShardEvent
	done   chan struct{} // closed when the stream has ended
	ended  time.Time     // when; valid after done
}

func subscribe(t testing.TB, kc *kinesis.Client, consumer *string, shard string, pos ktypes.StartingPosition) *subscription {
	t.Helper()
	sub, err := trySubscribe(t, kc, consumer, shard, pos)
	if err != nil {
		t.Fatalf("subscribe to %s from %s: %v", shard, pos.Type, err)
	}
	return sub
}

// ownCodec gives one SubscribeToShard call its own protocol. The client's
// shared awsjson protocol decodes every event stream with one decoder and
// one payload buffer (smithy-go v1.28.9), so two subscriptions open on one
// client race (go test -race reports it) and may corrupt each other's
// events.
func ownCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

// trySubscribe calls SubscribeToShard; the stream is closed in t.Cleanup.
func trySubscribe(t testing.TB, kc *kinesis.Client, consumer *string, shard string, pos ktypes.StartingPosition) (*subscription, error) {
	out, err := kc.SubscribeToShard(context.Background(), &kinesis.SubscribeToShardInput{ConsumerARN: consumer, ShardId: aws.String(shard), StartingPosition: &pos}, ownCodec)
	if err != nil {
		return nil, err
	}
	sub := &subscription{es: out.GetStream(), events: make(chan ktypes.SubscribeToShardEvent, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		defer close(sub.events)
		for ev := range sub.es.Events() {
			if e, ok := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				sub.events <- e.Value
			}
		}
		sub.ended = time.Now()
	}()
	t.Cleanup(func() {
		_ = sub.es.Close()
		for range sub.events {
		}
	})
	return sub, nil
}

// next waits up to d for the next event; ok is false when the stream ended.
func (s *subscription) next(t testing.TB, d time.Duration) (ktypes.SubscribeToShardEvent, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-timer.C:
		t.Fatalf("no event within %s", d)
		return ktypes.SubscribeToShardEvent{}, false
	}
}

// end waits up to d for the stream to end and returns its error.
func (s *subscription) end(t testing.TB, d time.Duration) error {
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
			t.Fatalf("stream still open after %s", d)
			return nil
		}
	}
}

func trimHorizon() ktypes.StartingPosition {
	return ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}
}

func seqs(recs []ktypes.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = aws.ToString(r.SequenceNumber)
	}
	return out
}

func putSeqs(res []ktypes.PutRecordsResultEntry) []string {
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = aws.ToString(r.SequenceNumber)
	}
	return out
}

func equalSeqs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d is %s, want %s", what, i, got[i], want[i])
		}
	}
}

func TestConsumerLifecycle(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithConsumerDelay(3*time.Second))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	sarn := streamARN(t, kc, "s")

	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	c := reg.Consumer
	if c.ConsumerStatus != ktypes.ConsumerStatusCreating {
		t.Errorf("new consumer is %s, want CREATING", c.ConsumerStatus)
	}
	wantARN := regexp.MustCompile(`^` + regexp.QuoteMeta(aws.ToString(sarn)) + `/consumer/app:(\d+)$`)
	m := wantARN.FindStringSubmatch(aws.ToString(c.ConsumerARN))
	if m == nil || m[1] != strconv.FormatInt(clk.Now().Unix(), 10) {
		t.Fatalf("consumer ARN %s, want <stream ARN>/consumer/app:%d", aws.ToString(c.ConsumerARN), clk.Now().Unix())
	}
	if !aws.ToTime(c.ConsumerCreationTimestamp).Equal(clk.Now()) {
		t.Errorf("created %v, want %v", c.ConsumerCreationTimestamp, clk.Now())
	}

	var inUse *ktypes.ResourceInUseException
	if _, err := trySubscribe(t, kc, c.ConsumerARN, shard0, trimHorizon()); !errors.As(err, &inUse) {
		t.Errorf("subscribe while CREATING: %v, want ResourceInUseException", err)
	}
	if _, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("app")}); !errors.As(err, &inUse) {
		t.Errorf("register twice: %v, want ResourceInUseException", err)
	}

	clk.Advance(3 * time.Second)
	byARN, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: c.ConsumerARN})
	if err != nil {
		t.Fatal(err)
	}
	byName, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*ktypes.ConsumerDescription{byARN.ConsumerDescription, byName.ConsumerDescription} {
		if d.ConsumerStatus != ktypes.ConsumerStatusActive || aws.ToString(d.ConsumerARN) != aws.ToString(c.ConsumerARN) ||
			aws.ToString(d.StreamARN) != aws.ToString(sarn) || aws.ToString(d.ConsumerName) != "app" {
			t.Errorf("described %+v, want app ACTIVE on %s", d, aws.ToString(sarn))
		}
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil || aws.ToInt32(sum.StreamDescriptionSummary.ConsumerCount) != 1 {
		t.Errorf("stream summary: consumer count %v, err %v, want 1", sum.StreamDescriptionSummary.ConsumerCount, err)
	}
	sub := subscribe(t, kc, c.ConsumerARN, shard0, trimHorizon())
	if _, ok := sub.next(t, 2*time.Second); !ok {
		t.Fatal("ACTIVE consumer's stream ended at once")
	}

	// Deregistering ends the subscription with ResourceNotFoundException;
	// the consumer is DELETING, then gone.
	if _, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: c.ConsumerARN}); err != nil {
		t.Fatal(err)
	}
	var nf *ktypes.ResourceNotFoundException
	if err := sub.end(t, 2*time.Second); !errors.As(err, &nf) {
		t.Errorf("subscription of a deregistered consumer ended with %v, want ResourceNotFoundException", err)
	}
	d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: c.ConsumerARN})
	if err != nil || d.ConsumerDescription.ConsumerStatus != ktypes.ConsumerStatusDeleting {
		t.Fatalf("after deregister: %v %v, want DELETING", d, err)
	}
	if _, err := trySubscribe(t, kc, c.ConsumerARN, shard0, trimHorizon()); !errors.As(err, &inUse) {
		t.Errorf("subscribe while DELETING: %v, want ResourceInUseException", err)
	}
	if _, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("app")}); !errors.As(err, &inUse) {
		t.Errorf("register a DELETING name: %v, want ResourceInUseException", err)
	}
	clk.Advance(3 * time.Second)
	if _, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: c.ConsumerARN}); !errors.As(err, &nf) {
		t.Errorf("describe a deleted consumer: %v, want ResourceNotFoundException", err)
	}
	if _, err := trySubscribe(t, kc, c.ConsumerARN, shard0, trimHorizon()); !errors.As(err, &nf) {
		t.Errorf("subscribe with a deleted consumer: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("app")}); !errors.As(err, &nf) {
		t.Errorf("deregister a deleted consumer: %v, want ResourceNotFoundException", err)
	}
	// The name is free again; the new consumer has a new ARN.
	clk.Advance(time.Second)
	if again := register(t, kc, sarn, "app"); aws.ToString(again) == aws.ToString(c.ConsumerARN) {
		t.Errorf("re-registered consumer has the old ARN %s", aws.ToString(again))
	}
}

func TestConsumerErrors(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	sarn := streamARN(t, kc, "s")
	var (
		nf *ktypes.ResourceNotFoundException
		ia *ktypes.InvalidArgumentException
	)
	missing := aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/nope")
	if _, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: missing, ConsumerName: aws.String("c")}); !errors.As(err, &nf) {
		t.Errorf("register on a missing stream: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("bad name")}); !errors.As(err, &ia) {
		t.Errorf("register a bad name: %v, want InvalidArgumentException", err)
	}
	if _, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("nope")}); !errors.As(err, &nf) {
		t.Errorf("describe an unknown consumer: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(aws.ToString(sarn) + "/consumer/nope:1")}); !errors.As(err, &nf) {
		t.Errorf("describe an unknown consumer ARN: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("nope")}); !errors.As(err, &nf) {
		t.Errorf("deregister an unknown consumer: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: missing}); !errors.As(err, &nf) {
		t.Errorf("list consumers of a missing stream: %v, want ResourceNotFoundException", err)
	}

	// Deleting the stream deletes its consumers and ends their subscriptions.
	arn := register(t, kc, sarn, "c")
	sub := subscribe(t, kc, arn, shard0, trimHorizon())
	if _, ok := sub.next(t, 2*time.Second); !ok {
		t.Fatal("stream ended at once")
	}
	if _, err := kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if err := sub.end(t, 2*time.Second); !errors.As(err, &nf) {
		t.Errorf("subscription on a deleted stream ended with %v, want ResourceNotFoundException", err)
	}
	createStream(t, kc, "s", 1)
	if _, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: arn}); !errors.As(err, &nf) {
		t.Errorf("consumer of a deleted stream: %v, want ResourceNotFoundException", err)
	}
}

func TestConsumerLimitAndList(t *testing.T) {
	srv := kinesistest.Start(t, kinesistest.WithConsumerLimit(3))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	sarn := streamARN(t, kc, "s")
	arns := map[string]string{}
	for i := range 3 {
		name := fmt.Sprint("c", i)
		arns[name] = aws.ToString(register(t, kc, sarn, name))
	}
	var le *ktypes.LimitExceededException
	if _, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("c3")}); !errors.As(err, &le) {
		t.Fatalf("register past the limit: %v, want LimitExceededException", err)
	}

	got := map[string]string{}
	in := &kinesis.ListStreamConsumersInput{StreamARN: sarn, MaxResults: aws.Int32(2)}
	pages := 0
	for {
		out, err := kc.ListStreamConsumers(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range out.Consumers {
			if c.ConsumerStatus != ktypes.ConsumerStatusActive {
				t.Errorf("listed %s as %s, want ACTIVE", aws.ToString(c.ConsumerName), c.ConsumerStatus)
			}
			got[aws.ToString(c.ConsumerName)] = aws.ToString(c.ConsumerARN)
		}
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	if pages != 2 || len(got) != 3 {
		t.Fatalf("listed %v in %d pages, want 3 consumers in 2", got, pages)
	}
	for name, arn := range arns {
		if got[name] != arn {
			t.Errorf("listed %s as %s, registered as %s", name, got[name], arn)
		}
	}

	if _, err := kc.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{StreamARN: sarn, ConsumerName: aws.String("c0")}); err != nil {
		t.Fatal(err)
	}
	register(t, kc, sarn, "c3")
}

func TestSubscribeTrimHorizon(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")
	want := putSeqs(put(t, kc, "s", keys("a", 300)...))

	sub := subscribe(t, kc, arn, shard0, trimHorizon())
	var got []string
	for len(got) < len(want) {
		ev, ok := sub.next(t, 5*time.Second)
		if !ok {
			t.Fatalf("stream ended after %d records", len(got))
		}
		got = append(got, seqs(ev.Records)...)
		if len(ev.Records) > 0 {
			if c, last := aws.ToString(ev.ContinuationSequenceNumber), got[len(got)-1]; c != last {
				t.Errorf("continuation %s, want the event's last record %s", c, last)
			}
		}
		for _, r := range ev.Records {
			if r.ApproximateArrivalTimestamp == nil || len(r.Data) == 0 || aws.ToString(r.PartitionKey) == "" {
				t.Fatalf("record %+v is missing fields", r)
			}
		}
	}
	equalSeqs(t, "from TRIM_HORIZON", got, want)

	// Records put while subscribed are pushed, each in turn.
	more := putSeqs(put(t, kc, "s", keys("b", 5)...))
	var pushed []string
	for len(pushed) < len(more) {
		ev, ok := sub.next(t, 2*time.Second)
		if !ok {
			t.Fatal("stream ended")
		}
		pushed = append(pushed, seqs(ev.Records)...)
		if ev.MillisBehindLatest == nil || *ev.MillisBehindLatest != 0 {
			t.Errorf("MillisBehindLatest %v at the tip, want 0", ev.MillisBehindLatest)
		}
	}
	equalSeqs(t, "pushed", pushed, more)
	if n := srv.Stats().RecordsPushed; n != len(want)+len(more) {
		t.Errorf("Stats.RecordsPushed %d, want %d", n, len(want)+len(more))
	}
}

// TestSubscribePushLatency checks that records reach a subscriber when
// they are put, not when some poll comes round: each of 20 records must
// arrive within 200 ms (AWS: about 70 ms).
func TestSubscribePushLatency(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")
	sub := subscribe(t, kc, arn, shard0, ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeLatest})
	if ev, ok := sub.next(t, 2*time.Second); !ok || len(ev.Records) != 0 {
		t.Fatalf("first event %+v (open %v), want an empty one", ev, ok)
	}
	var worst time.Duration
	for i := range 20 {
		start := time.Now()
		seq := putSeqs(put(t, kc, "s", fmt.Sprint("k", i)))[0]
		ev, ok := sub.next(t, 2*time.Second)
		took := time.Since(start)
		if !ok || len(ev.Records) != 1 || aws.ToString(ev.Records[0].SequenceNumber) != seq {
			t.Fatalf("record %d: event %+v (open %v), want just %s", i, ev, ok, seq)
		}
		worst = max(worst, took)
		time.Sleep(10 * time.Millisecond) // the subscriber is idle when the next record comes
	}
	if worst > 200*time.Millisecond {
		t.Errorf("slowest put-to-push %s, want within 200 ms", worst)
	}
	t.Logf("slowest put-to-push of 20: %s", worst)
}

// TestResubscribeAfterLifetime reads a shard while a writer keeps writing,
// across several subscriptions each ended by the lifetime, resuming with
// AFTER_SEQUENCE_NUMBER of the last continuation: no gap, no duplicate.
func TestResubscribeAfterLifetime(t *testing.T) {
	const lifetime = 300 * time.Millisecond
	srv := kinesistest.Start(t, kinesistest.WithSubscriptionLifetime(lifetime), kinesistest.WithResubscribeWindow(50*time.Millisecond))
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")

	var (
		mu      sync.Mutex
		written []string
	)
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []ktypes.PutRecordsRequestEntry{
				{PartitionKey: aws.String(fmt.Sprint("w", i)), Data: []byte("x")},
				{PartitionKey: aws.String(fmt.Sprint("v", i)), Data: []byte("y")},
			}})
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			mu.Lock()
			written = append(written, putSeqs(out.Records)...)
			mu.Unlock()
		}
	}()

	var got []string
	pos := trimHorizon()
	for round := range 4 {
		if round == 3 {
			close(stop)
			<-writerDone
		}
		start := time.Now()
		sub := subscribe(t, kc, arn, shard0, pos)
		var cont string
		for {
			ev, ok := sub.next(t, 5*time.Second)
			if !ok {
				break
			}
			got = append(got, seqs(ev.Records)...)
			cont = aws.ToString(ev.ContinuationSequenceNumber)
		}
		if err := sub.es.Err(); err != nil {
			t.Fatalf("round %d ended with %v, want a clean end", round, err)
		}
		if lived := sub.ended.Sub(start); lived < lifetime || lived > lifetime+time.Second {
			t.Errorf("round %d: subscription lived %s, want the %s lifetime", round, lived, lifetime)
		}
		if cont == "" {
			t.Fatalf("round %d: no continuation sequence number", round)
		}
		pos = ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(written) < 20 {
		t.Fatalf("the writer wrote only %d records", len(written))
	}
	equalSeqs(t, "across resubscriptions", got, written)
}

// TestSubscribeChildShards splits a shard under a subscription: the last
// event carries the children and no continuation, and the stream ends.
func TestSubscribeChildShards(t *testing.T) {
	srv := kinesistest.Start(t, kinesistest.WithResubscribeWindow(0))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")
	before := putSeqs(put(t, kc, "s", keys("a", 10)...))
	sub := subscribe(t, kc, arn, shard0, trimHorizon())

	var got []string
	for len(got) < len(before) {
		ev, ok := sub.next(t, 2*time.Second)
		if !ok {
			t.Fatal("stream ended before the split")
		}
		if len(ev.ChildShards) > 0 {
			t.Fatal("child shards before the split")
		}
		got = append(got, seqs(ev.Records)...)
	}
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(shard0), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	checkLast := func(ev ktypes.SubscribeToShardEvent) {
		t.Helper()
		if ev.ContinuationSequenceNumber != nil {
			t.Errorf("last event has continuation %s, want none", aws.ToString(ev.ContinuationSequenceNumber))
		}
		if len(ev.ChildShards) != 2 {
			t.Fatalf("last event has %d child shards, want 2", len(ev.ChildShards))
		}
		for i, c := range ev.ChildShards {
			if id := aws.ToString(c.ShardId); id != fmt.Sprintf("shardId-%012d", i+1) || len(c.ParentShards) != 1 || c.ParentShards[0] != shard0 {
				t.Errorf("child %s with parents %v, want shardId-%012d of %s", id, c.ParentShards, i+1, shard0)
			}
		}
	}
	ev, ok := sub.next(t, 2*time.Second)
	if !ok {
		t.Fatalf("stream ended without the child shards: %v", sub.es.Err())
	}
	if len(ev.Records) != 0 {
		t.Errorf("%d records after the split", len(ev.Records))
	}
	checkLast(ev)
	if err := sub.end(t, 2*time.Second); err != nil {
		t.Errorf("stream of a closed shard ended with %v", err)
	}

	// A new subscription to the closed parent reads its records, then
	// ends with the children; a child's subscription gets new records.
	after := putSeqs(put(t, kc, "s", keys("b", 20)...))
	again := subscribe(t, kc, arn, shard0, ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(before[0])})
	var reread []string
	for {
		ev, ok := again.next(t, 2*time.Second)
		if !ok {
			t.Fatal("stream ended without the child shards")
		}
		reread = append(reread, seqs(ev.Records)...)
		if len(ev.ChildShards) > 0 {
			checkLast(ev)
			break
		}
	}
	equalSeqs(t, "closed parent", reread, before)
	var children []string
	for _, id := range []string{"shardId-000000000001", "shardId-000000000002"} {
		child := subscribe(t, kc, arn, id, trimHorizon())
		ev, ok := child.next(t, 2*time.Second)
		if !ok {
			t.Fatalf("child %s: stream ended", id)
		}
		children = append(children, seqs(ev.Records)...)
	}
	if len(children) != len(after) {
		t.Errorf("children pushed %d records, %d were put after the split", len(children), len(after))
	}
}

func TestSubscribeStartingPositions(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithResubscribeWindow(0))
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")
	first := putSeqs(put(t, kc, "s", keys("a", 5)...))
	clk.Advance(time.Minute)
	second := putSeqs(put(t, kc, "s", keys("b", 5)...))
	all := append(append([]string{}, first...), second...)
	cases := []struct {
		name string
		pos  ktypes.StartingPosition
		want []string
	}{
		{"TRIM_HORIZON", trimHorizon(), all},
		{"LATEST", ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeLatest}, nil},
		{"AT_SEQUENCE_NUMBER", ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(first[3])}, all[3:]},
		{"AFTER_SEQUENCE_NUMBER", ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(first[3])}, all[4:]},
		{"AT_TIMESTAMP", ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(clk.Now().Add(-time.Second))}, second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sub := subscribe(t, kc, arn, shard0, tc.pos)
			ev, ok := sub.next(t, 2*time.Second)
			if !ok {
				t.Fatal("stream ended")
			}
			equalSeqs(t, tc.name, seqs(ev.Records), tc.want)
			if len(tc.want) == 0 && aws.ToString(ev.ContinuationSequenceNumber) != all[len(all)-1] {
				t.Errorf("continuation %s at LATEST, want the last record %s", aws.ToString(ev.ContinuationSequenceNumber), all[len(all)-1])
			}
		})
	}
}

func TestSubscribeErrors(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now))
	kc := client(t, srv, false)
	createStream(t, kc, "s", 2)
	sarn := streamARN(t, kc, "s")
	arn := register(t, kc, sarn, "c")
	other := put(t, kc, "s", keys("k", 20)...)
	var foreign string // a sequence number of shard 1
	for _, r := range other {
		if aws.ToString(r.ShardId) != shard0 {
			foreign = aws.ToString(r.SequenceNumber)
		}
	}
	var (
		nf    *ktypes.ResourceNotFoundException
		ia    *ktypes.InvalidArgumentException
		inUse *ktypes.ResourceInUseException
	)
	if _, err := trySubscribe(t, kc, aws.String(aws.ToString(sarn)+"/consumer/nope:1"), shard0, trimHorizon()); !errors.As(err, &nf) {
		t.Errorf("unknown consumer: %v, want ResourceNotFoundException", err)
	}
	if _, err := trySubscribe(t, kc, arn, "shardId-000000000099", trimHorizon()); !errors.As(err, &nf) {
		t.Errorf("unknown shard: %v, want ResourceNotFoundException", err)
	}
	if _, err := trySubscribe(t, kc, arn, shard0, ktypes.StartingPosition{Type: "SOMEWHERE"}); !errors.As(err, &ia) {
		t.Errorf("bad starting position: %v, want InvalidArgumentException", err)
	}
	if _, err := trySubscribe(t, kc, arn, shard0, ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(foreign)}); !errors.As(err, &ia) {
		t.Errorf("sequence number of another shard: %v, want InvalidArgumentException", err)
	}

	// Within the 5 s window a second subscription is refused; after it, the
	// second takes over and the first fails with ResourceInUseException.
	first := subscribe(t, kc, arn, shard0, trimHorizon())
	if _, ok := first.next(t, 2*time.Second); !ok {
		t.Fatal("stream ended at once")
	}
	clk.Advance(4 * time.Second)
	if _, err := trySubscribe(t, kc, arn, shard0, trimHorizon()); !errors.As(err, &inUse) {
		t.Errorf("resubscribe after 4 s: %v, want ResourceInUseException", err)
	}
	// Another shard or another consumer is not affected.
	subscribe(t, kc, arn, "shardId-000000000001", trimHorizon())
	subscribe(t, kc, register(t, kc, sarn, "d"), shard0, trimHorizon())
	clk.Advance(time.Second)
	second := subscribe(t, kc, arn, shard0, trimHorizon())
	if err := first.end(t, 2*time.Second); !errors.As(err, &inUse) {
		t.Errorf("taken-over subscription ended with %v, want ResourceInUseException", err)
	}
	if _, ok := second.next(t, 2*time.Second); !ok {
		t.Fatal("the new subscription ended")
	}

	// The window counts from the last successful call even when its
	// stream has been closed since.
	if err := second.es.Close(); err != nil {
		t.Fatal(err)
	}
	<-second.done
	if _, err := trySubscribe(t, kc, arn, shard0, trimHorizon()); !errors.As(err, &inUse) {
		t.Errorf("resubscribe at once after closing the stream: %v, want ResourceInUseException", err)
	}
	clk.Advance(5 * time.Second)
	subscribe(t, kc, arn, shard0, trimHorizon())
}

// TestCloseEndsSubscriptions checks Close with a subscription open: the
// stream ends and Close returns (goleak in TestMain checks the rest).
func TestCloseEndsSubscriptions(t *testing.T) {
	srv, err := kinesistest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	sub := subscribe(t, kc, register(t, kc, streamARN(t, kc, "s"), "c"), shard0, trimHorizon())
	if _, ok := sub.next(t, 2*time.Second); !ok {
		t.Fatal("stream ended at once")
	}
	srv.Close()
	_ = sub.end(t, 2*time.Second)
}
