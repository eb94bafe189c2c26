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
	"github.com/paystream/paystream/pkg/kpl"
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

// chunk is what a shard reader hands the pipeline: the decoded user records
// of one GetRecords call, or of part of it (at most maxRows user records;
// see shardReader.decode). Rows and rejects together cover the user records
// with positions up to last, in order.
type chunk struct {
	shard    string
	gen      uint64 // reader generation; stale chunks are ignored
	rows     []schema.Row
	arrivals []time.Time // Kinesis arrival time of each row, for freshness
	rejected []commit.Rejected
	last     string // last position in the chunk, "SEQ" or "SEQ:SUB" ("" when empty)
	// checkpoint is last as a KCL lease checkpoint: "SEQ:SUB" with SUB the
	// last user record in the chunk of aggregate SEQ, even when that is
	// the aggregate's last (where last is "SEQ"); "SEQ" for a plain record.
	checkpoint string
	bytes      int
	behindMS   int64
	end        bool // the shard has no more records: it was closed and read to its end
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
	after   string          // last committed position ("SEQ" or "SEQ:SUB"), "" for none
	initial InitialPosition // used when after == ""
	// maxRows is the most user records in one chunk
	// (PipelineConfig.FlushRows); 0 for no limit.
	maxRows int
	// skip names the user records of the next record read that are
	// already committed: set by iterator from after, consulted and
	// cleared by decode.
	skip skip
	// users is decode's de-aggregation buffer, reused; usersPerRecord
	// the user records per Kinesis record of its last answer (to size
	// chunks).
	users          []kpl.UserRecord
	usersPerRecord float64
	// ids holds decode's event ids in shared blocks: a chunk's rows live
	// until their batch is committed or dropped, and then go together.
	ids     schema.IDArena
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

// skip names the user records of one Kinesis record that a reader drops
// because they are committed: user records 0..through of record seq.
type skip struct {
	seq     string // "": drop nothing
	through int64
}

// startingPosition decides where a reader starts a shard: after the
// committed position after, or at initial when there is none. After "SEQ"
// it reads AFTER_SEQUENCE_NUMBER SEQ; after "SEQ:SUB" (part of an aggregate
// committed) AT_SEQUENCE_NUMBER SEQ, and the returned skip drops user
// records 0..SUB of that first record. Every reader of a shard (polling or
// fan-out) starts through this function and decodes through decode, which
// applies the skip. A malformed position is an error.
func startingPosition(after string, initial InitialPosition) (ktypes.StartingPosition, skip, error) {
	if after == "" {
		p := ktypes.StartingPosition{Type: initial.Type}
		if initial.Type == ktypes.ShardIteratorTypeAtTimestamp {
			p.Timestamp = aws.Time(initial.Timestamp)
		}
		return p, skip{}, nil
	}
	seq, sub, whole, err := commit.ParsePosition(after)
	if err != nil {
		return ktypes.StartingPosition{}, skip{}, err
	}
	if whole {
		return ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(seq)}, skip{}, nil
	}
	return ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(seq)},
		skip{seq: seq, through: sub}, nil
}

func (r *shardReader) iterator(ctx context.Context) (*string, error) {
	start, sk, err := startingPosition(r.after, r.initial)
	if err != nil {
		return nil, fmt.Errorf("shard %s: start after the committed position: %w", r.shard, err)
	}
	in := &kinesis.GetShardIteratorInput{
		StreamName: aws.String(r.stream), ShardId: aws.String(r.shard),
		ShardIteratorType: start.Type, StartingSequenceNumber: start.SequenceNumber, Timestamp: start.Timestamp,
	}
	for attempt := 0; ; attempt++ {
		out, err := call(ctx, r.callTimeout, func(ctx context.Context) (*kinesis.GetShardIteratorOutput, error) {
			return r.kin.GetShardIterator(ctx, in)
		})
		if err == nil {
			r.skip = sk
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
		chunks := r.decode(out)
		end := out.NextShardIterator == nil
		chunks[len(chunks)-1].end = end
		for _, c := range chunks {
			if len(out.Records) > 0 || c.end || c.behindMS >= 0 {
				if err := r.send(ctx, c); err != nil {
					return err
				}
			}
			if c.last != "" {
				r.after = c.last
			}
		}
		if end {
			r.log.Info("shard read to its end", "shard", r.shard)
			return nil
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

// decode turns the records of one GetRecords answer (or of a fan-out
// event, with its MillisBehindLatest) into chunks for the pipeline, at
// least one, the last ending with the last record (a whole position).
//
// A KPL aggregate is expanded (its user records' data alias out's) and each
// user record decoded and validated on its own: a valid one becomes a row, a
// rejected one a dead letter with its own bytes at "SEQ:SUB". An aggregate
// that does not de-aggregate is dead-lettered whole at "SEQ" with the kpl
// error as the reason. A plain record is its own user record. The user
// records that r.skip names (committed before) are dropped; the skip is
// cleared at the first record. A chunk holds at most r.maxRows user records,
// so its last position is "SEQ:SUB" when it ends inside an aggregate.
func (r *shardReader) decode(out *kinesis.GetRecordsOutput) []chunk {
	behind := int64(-1)
	if out.MillisBehindLatest != nil {
		behind = *out.MillisBehindLatest
	}
	if len(out.Records) == 0 {
		return []chunk{{shard: r.shard, gen: r.gen, behindMS: behind}}
	}
	now := r.now().UTC()
	var (
		chunks                          []chunk
		c                               chunk
		userRecs, aggs, fails, rejected int
		// The end of c, formatted only when c is closed: the position
		// (seq, sub; whole: "SEQ") and the lease checkpoint (seq, cpSub).
		seq          string
		sub, cpSub   int64
		whole, ended bool
	)
	// Room for the user records still to come, as many per Kinesis
	// record as in the last answer, at most maxRows.
	perRecord := max(r.usersPerRecord, 1)
	left := func(i int) int {
		n := int(float64(len(out.Records)-i)*perRecord) + 1
		if r.maxRows > 0 && r.maxRows < n {
			n = r.maxRows
		}
		return n
	}
	open := func(i int) {
		n := left(i)
		c = chunk{shard: r.shard, gen: r.gen, behindMS: behind,
			rows: make([]schema.Row, 0, n), arrivals: make([]time.Time, 0, n)}
		ended = false
	}
	end := func(s string, sb int64, w bool, cp int64) { seq, sub, whole, cpSub, ended = s, sb, w, cp, true }
	closeChunk := func() {
		if ended {
			c.last, c.checkpoint = commit.FormatPosition(seq, -1), commit.FormatPosition(seq, cpSub)
			if !whole {
				c.last = commit.FormatPosition(seq, sub)
			}
		}
		chunks = append(chunks, c)
	}
	full := func() bool { return r.maxRows > 0 && len(c.rows)+len(c.rejected) >= r.maxRows }
	// add decodes one user record at position (s, sb) into c.
	add := func(data []byte, s string, sb int64, arrived time.Time) {
		userRecs++
		c.bytes += len(data)
		if ev, err := schema.DecodeWith(data, now, &r.ids); err != nil {
			rejected++
			c.rejected = append(c.rejected, commit.Rejected{
				Raw: data, Reasons: schema.Reasons(err), Shard: r.shard, Sequence: s, SubSequence: sb, ArrivedAt: arrived,
			})
		} else {
			c.rows = append(c.rows, schema.Row{Event: ev, ShardID: r.shard, SequenceNumber: s, SubSequence: sb, IngestedAt: now})
			c.arrivals = append(c.arrivals, arrived)
		}
	}
	open(0)
	for i := range out.Records {
		rec := &out.Records[i]
		s := aws.ToString(rec.SequenceNumber)
		arrived := now
		if rec.ApproximateArrivalTimestamp != nil {
			arrived = *rec.ApproximateArrivalTimestamp
		}
		through := int64(-1) // user records 0..through are committed
		if r.skip.seq != "" {
			if commit.CompareSeq(r.skip.seq, s) == 0 {
				through = r.skip.through
			}
			r.skip = skip{}
		}
		if !kpl.IsAggregated(rec.Data) {
			if through < 0 { // else committed as user record 0
				add(rec.Data, s, -1, arrived)
			}
			end(s, -1, true, -1)
			if full() {
				closeChunk()
				open(i + 1)
			}
			continue
		}
		aggs++
		users, err := kpl.AppendDeaggregate(r.users[:0], rec.Data)
		r.users = users[:0]
		if err != nil {
			fails++
			r.log.Warn("KPL aggregate does not de-aggregate; dead-lettered whole", "shard", r.shard, "sequence", s, "err", err.Error())
			rejected++
			userRecs++
			c.bytes += len(rec.Data)
			c.rejected = append(c.rejected, commit.Rejected{
				Raw: rec.Data, Reasons: []string{err.Error()}, Shard: r.shard, Sequence: s, SubSequence: -1, ArrivedAt: arrived,
			})
			end(s, -1, true, -1)
			if full() {
				closeChunk()
				open(i + 1)
			}
			continue
		}
		lastSub := int64(len(users)) - 1
		if through >= lastSub {
			end(s, -1, true, lastSub) // every user record was committed before
		}
		for j := range users {
			sb := int64(users[j].SubSequence)
			if sb <= through {
				continue
			}
			add(users[j].Data, s, sb, arrived)
			end(s, sb, sb == lastSub, sb)
			if full() {
				closeChunk()
				open(i + 1)
			}
		}
		clear(users) // drop the references to out's data
	}
	if ended || len(chunks) == 0 {
		closeChunk()
	}
	r.usersPerRecord = float64(userRecs) / float64(len(out.Records))
	r.metrics.read(r.shard, len(out.Records), rejected)
	r.metrics.deaggregated(r.shard, userRecs, aggs, fails)
	return chunks
}
