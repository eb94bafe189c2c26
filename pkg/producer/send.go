package producer

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/retry"
)

// sender delivers one batch, retrying as it sees fit, and accounts for
// every record of it in stats exactly once: acknowledged or failed. A
// non-nil error is fatal for the run (the stream is gone, access denied).
type sender interface {
	send(ctx context.Context, b *batch) error
}

// callTimeout bounds one PutRecords call; past it the outcome is unknown.
const callTimeout = 30 * time.Second

// backoff times the retries of failed PutRecords entries: 100 ms doubling
// to at most 5 s, with equal jitter (half fixed, half random) so that the
// retries of concurrent senders spread out.
var backoff = retry.Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}

// kinesisSender sends batches with PutRecords.
type kinesisSender struct {
	kc         Kinesis
	stream     string
	maxRetries int
	st         *stats
	log        *slog.Logger
	rt         *router // nil: one record per entry; else --aggregate
}

// send puts b's records, packed into KPL aggregates with --aggregate, in
// as many PutRecords calls as the entry and byte limits need, in order.
// With --aggregate, the records not yet handed to PutRecords are grouped
// again when the routing changed (a call landed an aggregate off its
// predicted shard). A fatal error stops it; the records of the calls not
// made count as failed.
func (k *kinesisSender) send(ctx context.Context, b *batch) error {
	entries := plainEntries(b.recs)
	var gen uint64
	if k.rt != nil {
		var err error
		if entries, gen, err = k.rt.entries(b.recs); err != nil {
			k.st.fail(len(b.recs))
			return fmt.Errorf("--aggregate: %w", err)
		}
	}
	for len(entries) > 0 {
		n, bytes := 0, 0
		for n < len(entries) && n < MaxBatchRecords && (n == 0 || bytes+entries[n].size() <= MaxBatchBytes) {
			bytes += entries[n].size()
			n++
		}
		if k.rt != nil && !k.rt.claim(entries[:n], gen) {
			recs := make([]*record, 0, userRecords(entries))
			for _, e := range entries {
				recs = append(recs, e.recs...)
			}
			var err error
			if entries, gen, err = k.rt.entries(recs); err != nil {
				k.st.fail(len(recs))
				return fmt.Errorf("--aggregate: %w", err)
			}
			continue
		}
		err := k.put(ctx, entries[:n])
		if k.rt != nil {
			k.rt.settle(entries[:n])
		}
		if err != nil {
			k.st.fail(userRecords(entries[n:]))
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// put puts entries in one PutRecords call and retries only the entries
// that failed, until all are acknowledged or maxRetries retries are spent.
// Per-entry errors (ProvisionedThroughputExceededException,
// InternalFailure) and throttling of the whole call wrote nothing for
// those entries, so a retry cannot duplicate them. A call that fails
// without an answer (timeout, connection reset, 5xx) may or may not have
// written its records: they are retried and counted as unknown outcome.
// Every count is of user records: an aggregate counts its user records.
// A retried entry is put again as it was (same explicit hash key or
// partition key), so all its attempts land in one shard lineage whatever
// the shard map says meanwhile.
func (k *kinesisSender) put(ctx context.Context, pending []*entry) error {
	reqs := make([]types.PutRecordsRequestEntry, 0, len(pending))
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil { // shutdown grace over, or another sender failed
			k.st.fail(userRecords(pending))
			return nil
		}
		reqs = reqs[:0]
		for _, e := range pending {
			req := types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.key)}
			if e.ehk != "" {
				req.ExplicitHashKey = aws.String(e.ehk)
			}
			reqs = append(reqs, req)
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		t0 := time.Now()
		out, err := k.kc.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String(k.stream), Records: reqs}, noRetry)
		cancel()
		k.st.call(time.Since(t0))

		var again []*entry
		throttled := 0
		lastErr := err
		switch {
		case err == nil && len(out.Records) != len(pending):
			lastErr = fmt.Errorf("PutRecords answered %d entries for %d records", len(out.Records), len(pending))
			k.st.unknownOutcome(userRecords(pending))
			again = pending
		case err == nil:
			for i, res := range out.Records {
				code := aws.ToString(res.ErrorCode)
				if code == "" {
					if k.rt != nil {
						k.rt.landed(ctx, pending[i], aws.ToString(res.ShardId), t0)
					}
					k.st.ackEntry(pending[i], aws.ToString(res.ShardId), aws.ToString(res.SequenceNumber))
					continue
				}
				if code == "ProvisionedThroughputExceededException" {
					throttled += len(pending[i].recs)
				}
				lastErr = fmt.Errorf("%s: %s", code, aws.ToString(res.ErrorMessage))
				again = append(again, pending[i])
			}
		case ctx.Err() != nil:
			// Shutdown grace is over (or another worker failed): give up.
			k.st.unknownOutcome(userRecords(pending))
			k.st.fail(userRecords(pending))
			return nil
		case retry.Throttled(err):
			throttled = userRecords(pending)
			again = pending
		case retry.Retryable(err):
			k.st.unknownOutcome(userRecords(pending))
			again = pending
		default:
			k.st.fail(userRecords(pending))
			return fmt.Errorf("PutRecords to stream %q: %w", k.stream, err)
		}
		k.st.throttle(throttled)
		if len(again) == 0 {
			return nil
		}
		if attempt >= k.maxRetries {
			k.st.fail(userRecords(again))
			k.log.Warn("records failed after retries", "count", userRecords(again), "retries", k.maxRetries, "last_error", lastErr)
			return nil
		}
		k.st.retry(userRecords(again))
		if backoff.Wait(ctx, attempt) != nil {
			k.st.fail(userRecords(again))
			return nil
		}
		pending = again
	}
}

// fileSender writes batches as NDJSON (--output).
type fileSender struct {
	w  *bufio.Writer
	st *stats
}

func (f *fileSender) send(_ context.Context, b *batch) error {
	for _, r := range b.recs {
		f.w.Write(r.data) //nolint:errcheck // bufio keeps the first error; checked below
		if err := f.w.WriteByte('\n'); err != nil {
			f.st.fail(len(b.recs))
			return fmt.Errorf("write --output: %w", err)
		}
	}
	for _, r := range b.recs {
		f.st.ack(r, "", "", -1)
	}
	return nil
}
