package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/paystream/paystream/internal/retry"
)

// Read modes (--read-mode).
const (
	// ReadPolling reads each shard with GetRecords, at most every 200 ms;
	// every application reading the stream shares the shard's 2 MB/s.
	ReadPolling = "polling"
	// ReadEFO reads each shard with enhanced fan-out: a stream consumer
	// named after the application subscribes to the shard
	// (SubscribeToShard) and Kinesis pushes records as they arrive, with
	// 2 MB/s per shard of its own.
	ReadEFO = "efo"
)

// efoAPI lists the Kinesis calls of the consumer in read mode efo: the
// polling reader's (the shard list, and the check for a shard gone from
// the stream) plus the stream consumer's and SubscribeToShard.
type efoAPI interface {
	kinesisAPI
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error)
	DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, opts ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error)
	SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, opts ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error)
}

var _ efoAPI = (*kinesis.Client)(nil)

// ErrConsumerLimit means Kinesis refused to register the application's
// stream consumer: the stream has as many enhanced fan-out consumers as it
// may. Retrying does not help; the consumer exits.
var ErrConsumerLimit = errors.New("the stream's enhanced fan-out consumer limit is reached")

// consumerNameRE is what Kinesis accepts as a consumer name.
var consumerNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

const (
	// consumerLimitAttempts is how often RegisterStreamConsumer is tried
	// while it answers LimitExceededException. Kinesis uses that exception
	// both for the consumer limit and for its 5 calls per second per
	// stream, which passes within a second; the limit does not.
	consumerLimitAttempts = 5
	// consumerWaitFor bounds the wait for a new consumer to become ACTIVE
	// (AWS takes seconds) or an old one to finish DELETING.
	consumerWaitFor = 2 * time.Minute
	// consumerPoll is the wait between DescribeStreamConsumer calls while
	// waiting (Kinesis allows 20 per second per stream).
	consumerPoll = time.Second
	// subscriptionSilence is how long a subscription may go without any
	// event before it is taken for a dead connection and renewed. Kinesis
	// sends events with no records while a shard is idle (kinesistest
	// every 5 seconds, as it models AWS).
	subscriptionSilence = 30 * time.Second
)

// prepareReads makes what the read mode needs before shards are read: in
// mode efo, the stream consumer (ensureConsumer). Worker.prepare calls it
// under the start-up retries; Run calls it when nobody has. Not safe for
// concurrent use; call it before Run or from Run.
func (p *Pipeline) prepareReads(ctx context.Context) error {
	if p.efo == nil || p.consumerARN != "" {
		return nil
	}
	arn, err := ensureConsumer(ctx, p.efo, p.cfg.Stream, p.cfg.ConsumerName, consumerPoll, p.log)
	if err != nil {
		return err
	}
	p.consumerARN = arn
	return nil
}

// currentConsumer is the stream consumer's ARN readers subscribe with.
func (p *Pipeline) currentConsumer() string {
	p.consumerMu.Lock()
	defer p.consumerMu.Unlock()
	return p.consumerARN
}

// renewConsumer registers the stream consumer again after a reader found
// the one it subscribed with (stale) gone: deregistered by an operator or
// by the teardown of another deployment under the same --app-name. The
// first reader to find it gone registers it (ensureConsumer waits out
// DELETING, then registers); the others get the new ARN. Readers resume
// from their own positions, so nothing is skipped or read twice.
func (p *Pipeline) renewConsumer(ctx context.Context, stale string) (string, error) {
	p.consumerMu.Lock()
	defer p.consumerMu.Unlock()
	if p.consumerARN != stale {
		return p.consumerARN, nil
	}
	p.log.Warn("stream consumer gone; registering it again", "consumer", p.cfg.ConsumerName, "arn", stale)
	arn, err := ensureConsumer(ctx, p.efo, p.cfg.Stream, p.cfg.ConsumerName, consumerPoll, p.log)
	if err != nil {
		return "", fmt.Errorf("register stream consumer %q again after it was deregistered: %w", p.cfg.ConsumerName, err)
	}
	p.consumerARN = arn
	return arn, nil
}

// ensureConsumer returns the ARN of the stream's consumer called name once
// it is ACTIVE, registering it when it does not exist. Every worker of an
// application calls it at start and they share the consumer (one
// subscription per shard, held by the shard's lease owner). It fails with
// ErrConsumerLimit when Kinesis keeps refusing the registration with
// LimitExceededException; other errors are Kinesis's, wrapped.
func ensureConsumer(ctx context.Context, kin efoAPI, stream, name string, poll time.Duration, log *slog.Logger) (string, error) {
	sum, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		return "", fmt.Errorf("describe stream %s: %w", stream, err)
	}
	streamARN := sum.StreamDescriptionSummary.StreamARN
	deadline := time.Now().Add(consumerWaitFor)
	limited := 0
	for {
		status, arn, err := describeConsumer(ctx, kin, streamARN, name)
		var nf *ktypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			status, arn, err = registerConsumer(ctx, kin, streamARN, name)
			var le *ktypes.LimitExceededException
			if errors.As(err, &le) {
				if limited++; limited >= consumerLimitAttempts {
					return "", fmt.Errorf("register stream consumer %q on stream %s: %w (LimitExceededException %d times: %s). "+
						"A stream takes at most 20 registered enhanced fan-out consumers; "+
						"deregister one the stream no longer needs (aws kinesis list-stream-consumers --stream-arn %s, then deregister-stream-consumer), "+
						"or read this application with --read-mode polling",
						name, stream, ErrConsumerLimit, limited, le.ErrorMessage(), aws.ToString(streamARN))
				}
				if err := backoff.Wait(ctx, limited); err != nil {
					return "", err
				}
				continue
			}
			var inUse *ktypes.ResourceInUseException
			if errors.As(err, &inUse) {
				continue // another worker registered it meanwhile
			}
			if err != nil {
				return "", fmt.Errorf("register stream consumer %q on stream %s: %w", name, stream, err)
			}
			log.Info("stream consumer registered", "consumer", name, "arn", arn)
		case err != nil:
			return "", fmt.Errorf("describe stream consumer %q on stream %s: %w", name, stream, err)
		}
		if status == ktypes.ConsumerStatusActive {
			return arn, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("stream consumer %q on stream %s is still %s after %s; check it with aws kinesis describe-stream-consumer", name, stream, status, consumerWaitFor)
		}
		if err := retry.Sleep(ctx, poll); err != nil {
			return "", err
		}
	}
}

func describeConsumer(ctx context.Context, kin efoAPI, streamARN *string, name string) (ktypes.ConsumerStatus, string, error) {
	out, err := kin.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
	if err != nil {
		return "", "", err
	}
	d := out.ConsumerDescription
	return d.ConsumerStatus, aws.ToString(d.ConsumerARN), nil
}

func registerConsumer(ctx context.Context, kin efoAPI, streamARN *string, name string) (ktypes.ConsumerStatus, string, error) {
	out, err := kin.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: streamARN, ConsumerName: aws.String(name)})
	if err != nil {
		return "", "", err
	}
	return out.Consumer.ConsumerStatus, aws.ToString(out.Consumer.ConsumerARN), nil
}

// read runs a shard's reader in the pipeline's read mode until the shard
// ends, ctx ends or an error it cannot retry.
func (p *Pipeline) read(ctx context.Context, r *shardReader) error {
	if p.efo == nil {
		return r.run(ctx)
	}
	e := &efoReader{shardReader: r, kin: p.efo, consumer: p.currentConsumer(), silence: subscriptionSilence, renew: p.renewConsumer}
	return e.run(ctx)
}

// efoReader reads one shard with SubscribeToShard: the shardReader's
// contract (one chunk per event to the pipeline, decoded by
// shardReader.decode; a chunk with end set when the shard is read to its
// end) over pushed events instead of polled calls. It subscribes after
// the reader's position, and again after each subscription ends (AWS ends
// them every 5 minutes) from the last event's continuation sequence
// number, so nothing is skipped or read twice. Owned by one goroutine.
type efoReader struct {
	*shardReader
	kin      efoAPI
	consumer string // the stream consumer's ARN
	// silence is how long a subscription may send nothing before it is
	// renewed (subscriptionSilence).
	silence time.Duration
	// renew registers the stream consumer again once it is gone and
	// returns its new ARN (Pipeline.renewConsumer); nil: a gone consumer
	// stops the reader.
	renew func(ctx context.Context, stale string) (string, error)
}

// ownProtocol gives one SubscribeToShard call a protocol of its own: the
// SDK client's shared one decodes every event stream with one decoder and
// payload buffer (smithy-go v1.28.9), so two subscriptions open on one
// client would race.
func ownProtocol(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

// run subscribes until the shard ends (its last event sent with end set),
// ctx ends or an error it cannot retry. A subscription that ends cleanly is
// renewed at once; a failed one after the backoff, which restarts after a
// subscription that delivered events.
func (r *efoReader) run(ctx context.Context) error {
	attempt := 0
	for {
		events, end, err := r.subscribe(ctx)
		if end {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if events > 0 {
			attempt = 0
		}
		if err == nil && events > 0 {
			r.log.Debug("subscription ended; subscribing again", "shard", r.shard, "after", r.after)
			continue
		}
		if err != nil {
			if gone, ferr := r.classify(ctx, err); gone {
				return r.ended(ctx)
			} else if ferr != nil {
				return ferr
			}
		}
		if err := backoff.Wait(ctx, attempt); err != nil {
			return err
		}
		attempt++
	}
}

// classify says what a failed subscription means: the shard is gone from
// the stream (aged out of retention), an error that stops the reader, or
// (both zero) a transient failure to retry.
func (r *efoReader) classify(ctx context.Context, err error) (gone bool, fatal error) {
	var inUse *ktypes.ResourceInUseException
	var nf *ktypes.ResourceNotFoundException
	switch {
	case errors.As(err, &inUse):
		// Another subscription of the consumer to the shard took over, or
		// this one came within 5 s of the last (a restarted reader): both
		// pass. Also a consumer that is not ACTIVE yet.
		r.log.Debug("subscription refused or taken over; retrying", "shard", r.shard, "err", err.Error())
	case errors.As(err, &nf):
		if r.aged(ctx, err) {
			return true, nil
		}
		if r.renew == nil {
			return false, fmt.Errorf("subscribe to %s as %s: %w (was the stream consumer deregistered? restart the consumer to register it again)", r.shard, r.consumer, err)
		}
		arn, rerr := r.renew(ctx, r.consumer)
		if rerr != nil {
			return false, fmt.Errorf("subscribe to %s as %s: %w", r.shard, r.consumer, rerr)
		}
		r.consumer = arn
	case retry.Throttled(err):
		r.metrics.throttled(r.shard)
	case retry.Retryable(err):
		r.log.Warn("subscription failed; retrying", "shard", r.shard, "err", err.Error())
	default:
		return false, fmt.Errorf("subscribe to %s: %w", r.shard, err)
	}
	return false, nil
}

// subscribe runs one subscription: it calls SubscribeToShard from the
// reader's position and hands the pipeline a chunk per event until the
// stream ends (err nil: renew it), fails, goes silent, the shard ends
// (end: its last chunk was sent) or ctx ends. events counts the events
// received.
func (r *efoReader) subscribe(ctx context.Context) (events int, end bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pos, sk, err := startingPosition(r.after, r.initial)
	if err != nil {
		return 0, false, fmt.Errorf("shard %s: start after the committed position: %w", r.shard, err)
	}
	in := &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(r.consumer), ShardId: aws.String(r.shard), StartingPosition: &pos}
	// The call returns with the response headers; the stream then lives on
	// sctx. Bound the call alone by callTimeout.
	var timer *time.Timer
	if r.callTimeout > 0 {
		timer = time.AfterFunc(r.callTimeout, cancel)
	}
	out, err := r.kin.SubscribeToShard(sctx, in, ownProtocol)
	if timer != nil && !timer.Stop() && ctx.Err() == nil {
		if err == nil {
			_ = out.GetStream().Close()
		}
		return 0, false, fmt.Errorf("subscribe to %s: no answer within %s: %w", r.shard, r.callTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		return 0, false, err
	}
	// As after GetShardIterator: the first record read may be an
	// aggregate committed in part, whose committed user records decode drops.
	r.skip = sk
	es := out.GetStream()
	defer func() { _ = es.Close() }()
	silence := time.NewTimer(r.silence)
	defer silence.Stop()
	for {
		select {
		case <-ctx.Done():
			return events, false, ctx.Err()
		case <-silence.C:
			return events, false, fmt.Errorf("subscription to %s sent nothing for %s: %w", r.shard, r.silence, context.DeadlineExceeded)
		case ev, ok := <-es.Events():
			if !ok {
				return events, false, es.Err()
			}
			silence.Reset(r.silence)
			e, ok := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue // a union member this SDK version does not know
			}
			events++
			if end, err := r.event(ctx, &e.Value); end || err != nil {
				return events, end, err
			}
		}
	}
}

// event hands the pipeline one event's records and moves the reader's
// position to the event's continuation. It reports the shard's end: the
// last event of a closed shard has no continuation (it lists the child
// shards instead).
func (r *efoReader) event(ctx context.Context, ev *ktypes.SubscribeToShardEvent) (end bool, err error) {
	chunks := r.decode(&kinesis.GetRecordsOutput{Records: ev.Records, MillisBehindLatest: ev.MillisBehindLatest})
	end = ev.ContinuationSequenceNumber == nil
	chunks[len(chunks)-1].end = end
	for _, c := range chunks {
		if len(ev.Records) > 0 || c.end || c.behindMS >= 0 {
			if err := r.send(ctx, c); err != nil {
				return false, err
			}
		}
	}
	if end {
		children := make([]string, 0, len(ev.ChildShards))
		for _, ch := range ev.ChildShards {
			children = append(children, aws.ToString(ch.ShardId))
		}
		r.log.Info("shard read to its end", "shard", r.shard, "children", children)
		return true, nil
	}
	r.after = aws.ToString(ev.ContinuationSequenceNumber)
	return false, nil
}
