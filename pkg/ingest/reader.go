package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// kinesisAPI lists the Kinesis calls the consumer makes.
type kinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ kinesisAPI = (*kinesis.Client)(nil)

// Kinesis read limits per shard: 5 GetRecords calls per second, at most
// 10,000 records per call.
const (
	minGetRecordsInterval = 200 * time.Millisecond
	maxRecordsPerCall     = 10_000
)

// backoff is the wait between retries of a failed Kinesis read, and of a
// failed flush (pipeline.go): 100 ms doubling to at most 5 s, equal jitter.
var backoff = retry.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}

// chunk is what a shard reader hands the pipeline: the decoded result of one
// GetRecords call. Rows and rejects together cover the records with
// sequence numbers up to Last, in order.
type chunk struct {
	shard    string
	gen      uint64 // reader generation; stale chunks are ignored
	rows     []schema.Row
	arrivals []time.Time // Kinesis arrival time of each row, for freshness
	rejected []commit.Rejected
	last     string // last sequence number in the chunk ("" when empty)
	bytes    int
	behindMS int64
	end      bool // the shard has no more records: it was closed and read to its end
}

// InitialPosition says where a shard with no committed position starts.
type InitialPosition struct {
	Type      ktypes.ShardIteratorType // TRIM_HORIZON, LATEST or AT_TIMESTAMP
	Timestamp time.Time                // for AT_TIMESTAMP
}

// ParseInitialPosition parses "trim-horizon", "latest" or
// "at-timestamp=RFC3339".
func ParseInitialPosition(s string) (InitialPosition, error) {
	switch {
	case s == "trim-horizon":
		return InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}, nil
	case s == "latest":
		return InitialPosition{Type: ktypes.ShardIteratorTypeLatest}, nil
	case len(s) > len("at-timestamp=") && s[:len("at-timestamp=")] == "at-timestamp=":
		t, err := time.Parse(time.RFC3339, s[len("at-timestamp="):])
		if err != nil {
			return InitialPosition{}, fmt.Errorf("at-timestamp wants an RFC 3339 time such as at-timestamp=2026-01-02T15:04:05Z: %w", err)
		}
		return InitialPosition{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: t}, nil
	}
	return InitialPosition{}, fmt.Errorf("%q is not trim-horizon, latest or at-timestamp=TIME", s)
}

// shardReader reads one shard from a position and sends chunks until the
// shard ends, ctx ends or an unrecoverable error occurs. It is owned by one
// goroutine started by the pipeline; it closes nothing (the pipeline waits
// for the goroutine through its done channel).
type shardReader struct {
	kin     kinesisAPI
	stream  string
	shard   string
	gen     uint64
	after   string          // last committed sequence number, "" for none
	initial InitialPosition // used when after == ""
	out     chan<- chunk
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	// idlePoll is the wait between calls that return no records.
	idlePoll time.Duration
	// callTimeout bounds each Kinesis call (PipelineConfig.ReadTimeout);
	// a call past it is retried like a transient failure.
	callTimeout time.Duration
}

// call runs one Kinesis call of the reader under callTimeout.
func call[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	if timeout <= 0 {
		return fn(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(cctx)
}

func (r *shardReader) iterator(ctx context.Context) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(r.stream), ShardId: aws.String(r.shard)}
	switch {
	case r.after != "":
		in.ShardIteratorType = ktypes.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(r.after)
	default:
		in.ShardIteratorType = r.initial.Type
		if r.initial.Type == ktypes.ShardIteratorTypeAtTimestamp {
			in.Timestamp = aws.Time(r.initial.Timestamp)
		}
	}
	for attempt := 0; ; attempt++ {
		out, err := call(ctx, r.callTimeout, func(ctx context.Context) (*kinesis.GetShardIteratorOutput, error) {
			return r.kin.GetShardIterator(ctx, in)
		})
		if err == nil {
			if r.after == "" && r.initial.Type == ktypes.ShardIteratorTypeLatest {
				// Once reading, a restart of this reader resumes after what it has
				// read, never at "latest" again.
				r.initial = InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}
			}
			return out.ShardIterator, nil
		}
		if r.aged(ctx, err) {
			return nil, errShardGone
		}
		if !retry.Retryable(err) {
			return nil, fmt.Errorf("get shard iterator for %s: %w", r.shard, err)
		}
		if err := backoff.Wait(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// errShardGone means Kinesis no longer has the shard: a closed shard whose
// records aged out of the stream's retention.
var errShardGone = errors.New("shard no longer in the stream")

// aged reports whether err, from GetShardIterator, says the shard is gone
// from a stream that still exists: ResourceNotFoundException while the
// stream lists without the shard. Kinesis drops a closed shard once its
// records are past retention; there is nothing more to read (KCL treats it
// as the shard's end). A missing stream is not that.
func (r *shardReader) aged(ctx context.Context, err error) bool {
	var nf *ktypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		return false
	}
	shards, lerr := KinesisShards{Client: r.kin, Stream: r.stream}.ListShards(ctx)
	if lerr != nil {
		return false
	}
	for _, s := range shards {
		if s.ID == r.shard {
			return false
		}
	}
	return true
}

// ended tells the pipeline that the shard has nothing more to read.
func (r *shardReader) ended(ctx context.Context) error {
	r.log.Warn("shard is gone from the stream (aged out of retention); treating it as read to its end",
		"shard", r.shard, "after", r.after)
	select {
	case r.out <- chunk{shard: r.shard, gen: r.gen, behindMS: -1, end: true}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the reader goroutine's body: GetRecords at most every 200 ms (every
// idlePoll while the shard is empty), one chunk per call to the pipeline,
// until the shard ends, ctx ends or an error it cannot retry.
func (r *shardReader) run(ctx context.Context) error {
	it, err := r.iterator(ctx)
	if errors.Is(err, errShardGone) {
		return r.ended(ctx)
	}
	if err != nil {
		return err
	}
	var (
		last     time.Time
		attempt  int
		emptyRun int
	)
	for {
		wait := minGetRecordsInterval
		if emptyRun > 0 {
			wait = r.idlePoll
		}
		if err := retry.Sleep(ctx, wait-r.now().Sub(last)); err != nil {
			return err
		}
		last = r.now()
		out, err := call(ctx, r.callTimeout, func(ctx context.Context) (*kinesis.GetRecordsOutput, error) {
			return r.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(maxRecordsPerCall)})
		})
		if err != nil {
			if it, err = r.recover(ctx, err, it, &attempt); errors.Is(err, errShardGone) {
				return r.ended(ctx)
			} else if err != nil {
				return err
			}
			continue
		}
		attempt = 0
		emptyRun++
		if len(out.Records) > 0 {
			emptyRun = 0
		}
		c := r.decode(out)
		c.end = out.NextShardIterator == nil
		if len(out.Records) > 0 || c.end || c.behindMS >= 0 {
			if err := r.send(ctx, c); err != nil {
				return err
			}
		}
		if c.end {
			r.log.Info("shard read to its end", "shard", r.shard)
			return nil
		}
		if c.last != "" {
			r.after = c.last
		}
		it = out.NextShardIterator
	}
}

// recover handles a failed GetRecords: it returns the iterator to go on
// with (a new one after an expired or single-use iterator, the same one
// after a throttle or a transient failure, once the backoff has passed) or
// the error that stops the reader (errShardGone: the shard aged out).
func (r *shardReader) recover(ctx context.Context, err error, it *string, attempt *int) (*string, error) {
	var expired *ktypes.ExpiredIteratorException
	var invalid *ktypes.InvalidArgumentException
	switch {
	case errors.As(err, &expired) || errors.As(err, &invalid):
		// Iterators expire after 5 minutes (and are single-use on some
		// emulators): get a new one from the last position read.
		r.log.Debug("shard iterator renewed", "shard", r.shard, "reason", err.Error())
		return r.iterator(ctx)
	case retry.Throttled(err):
		r.metrics.throttled(r.shard)
	case retry.Retryable(err):
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.log.Warn("get records failed; retrying", "shard", r.shard, "err", err.Error())
	default:
		return nil, fmt.Errorf("get records from %s: %w", r.shard, err)
	}
	if err := backoff.Wait(ctx, *attempt); err != nil {
		return nil, err
	}
	*attempt++
	return it, nil
}

// send hands c to the pipeline. When ctx ends first, c is still handed over
// if the channel has room: on shutdown the pipeline commits it (a removed
// shard's chunks are told apart by their generation and dropped).
func (r *shardReader) send(ctx context.Context, c chunk) error {
	select {
	case r.out <- c:
		return nil
	case <-ctx.Done():
		select {
		case r.out <- c:
		default:
		}
		return ctx.Err()
	}
}

func (r *shardReader) decode(out *kinesis.GetRecordsOutput) chunk {
	c := chunk{shard: r.shard, gen: r.gen, behindMS: -1}
	if out.MillisBehindLatest != nil {
		c.behindMS = *out.MillisBehindLatest
	}
	if len(out.Records) == 0 {
		return c
	}
	now := r.now().UTC()
	c.rows = make([]schema.Row, 0, len(out.Records))
	c.arrivals = make([]time.Time, 0, len(out.Records))
	for i := range out.Records {
		rec := &out.Records[i]
		seq := aws.ToString(rec.SequenceNumber)
		arrived := now
		if rec.ApproximateArrivalTimestamp != nil {
			arrived = *rec.ApproximateArrivalTimestamp
		}
		c.bytes += len(rec.Data)
		ev, err := schema.Decode(rec.Data, now)
		if err != nil {
			c.rejected = append(c.rejected, commit.Rejected{
				Raw: rec.Data, Reasons: schema.Reasons(err), Shard: r.shard, Sequence: seq, ArrivedAt: arrived,
			})
			continue
		}
		c.rows = append(c.rows, schema.Row{Event: ev, ShardID: r.shard, SequenceNumber: seq, IngestedAt: now})
		c.arrivals = append(c.arrivals, arrived)
	}
	c.last = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
	r.metrics.read(r.shard, len(out.Records), len(c.rejected))
	return c
}
