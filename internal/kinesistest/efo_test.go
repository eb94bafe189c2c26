package kinesistest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/kinesistest"
)

// streamARN returns the ARN of a stream.
func streamARN(t *testing.T, kc *kinesis.Client, name string) *string {
	t.Helper()
	out, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe stream %s: %v", name, err)
	}
	return out.StreamDescriptionSummary.StreamARN
}

// register registers a consumer and returns its ARN.
func register(t *testing.T, kc *kinesis.Client, stream *string, name string) *string {
	t.Helper()
	out, err := kc.RegisterStreamConsumer(context.Background(), &kinesis.RegisterStreamConsumerInput{StreamARN: stream, ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatalf("register consumer %s: %v", name, err)
	}
	return out.Consumer.ConsumerARN
}

// subscription is an open SubscribeToShard event stream whose events a
// goroutine moves to a buffered channel, so a test can wait for one with a
// deadline.
type subscription struct {
	es     *kinesis.SubscribeToShardEventStream
	events chan ktypes.SubscribeToShardEvent
	done   chan struct{} // closed when the stream ended
}

func subscribe(t *testing.T, kc *kinesis.Client, consumer *string, shard string, pos ktypes.StartingPosition) *subscription {
	t.Helper()
	sub, err := trySubscribe(kc, consumer, shard, pos)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", shard, err)
	}
	t.Cleanup(func() { _ = sub.es.Close(); <-sub.done })
	return sub
}

func trySubscribe(kc *kinesis.Client, consumer *string, shard string, pos ktypes.StartingPosition) (*subscription, error) {
	out, err := kc.SubscribeToShard(context.Background(), &kinesis.SubscribeToShardInput{ConsumerARN: consumer, ShardId: aws.String(shard), StartingPosition: &pos})
	if err != nil {
		return nil, err
	}
	sub := &subscription{es: out.GetStream(), events: make(chan ktypes.SubscribeToShardEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(sub.done)
		defer close(sub.events)
		for ev := range sub.es.Events() {
			if e, ok := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
				sub.events <- e.Value
			}
		}
	}()
	return sub, nil
}

// next waits up to d for the next event; ok is false when the stream ended.
func (s *subscription) next(t *testing.T, d time.Duration) (ktypes.SubscribeToShardEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
		return ktypes.SubscribeToShardEvent{}, false
	}
}

func TestSubscribeSmoke(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	createStream(t, kc, "s", 1)
	arn := register(t, kc, streamARN(t, kc, "s"), "c")
	put(t, kc, "s", keys("k", 3)...)
	sub := subscribe(t, kc, arn, "shardId-000000000000", ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon})
	ev, ok := sub.next(t, 2*time.Second)
	fmt.Println(ok, len(ev.Records), aws.ToString(ev.ContinuationSequenceNumber), errors.New("x"))
}
