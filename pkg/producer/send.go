package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// sender delivers one batch, retrying as it sees fit, and accounts for
// every record of it in stats exactly once: acknowledged or failed. A
// non-nil error is fatal for the run (the stream is gone, access denied).
type sender interface {
	send(ctx context.Context, b *batch) error
}

// Retry timing for failed PutRecords entries: exponential from
// backoffBase, capped at backoffCap, with "equal jitter" (half fixed, half
// random) so that retries of concurrent callers spread out.
const (
	backoffBase = 100 * time.Millisecond
	backoffCap  = 5 * time.Second
	callTimeout = 30 * time.Second // one PutRecords call; past it the outcome is unknown
)

func backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 16 {
		d = min(backoffCap, backoffBase<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// kinesisSender sends batches with PutRecords.
type kinesisSender struct {
	kc         Kinesis
	stream     string
	maxRetries int
	st         *stats
	log        *slog.Logger
}

// send puts b's records and retries only the entries that failed, until
// all are acknowledged or maxRetries retries are spent. Per-entry errors
// (ProvisionedThroughputExceededException, InternalFailure) and throttling
// of the whole call wrote nothing for those entries, so a retry cannot
// duplicate them. A call that fails without an answer (timeout, connection
// reset, 5xx) may or may not have written its records: they are retried
// and counted as unknown outcome.
func (k *kinesisSender) send(ctx context.Context, b *batch) error {
	pending := b.recs
	entries := make([]types.PutRecordsRequestEntry, 0, len(pending))
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil { // shutdown grace over, or another sender failed
			k.st.fail(len(pending))
			return nil
		}
		entries = entries[:0]
		for _, r := range pending {
			entries = append(entries, types.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)})
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		t0 := time.Now()
		out, err := k.kc.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String(k.stream), Records: entries}, noRetry)
		cancel()
		k.st.call(time.Since(t0))

		var retry []*record
		throttled := 0
		lastErr := err
		switch {
		case err == nil && len(out.Records) != len(pending):
			lastErr = fmt.Errorf("PutRecords answered %d entries for %d records", len(out.Records), len(pending))
			k.st.unknownOutcome(len(pending))
			retry = pending
		case err == nil:
			for i, res := range out.Records {
				code := aws.ToString(res.ErrorCode)
				if code == "" {
					k.st.ack(pending[i], aws.ToString(res.ShardId), aws.ToString(res.SequenceNumber))
					continue
				}
				if code == "ProvisionedThroughputExceededException" {
					throttled++
				}
				lastErr = fmt.Errorf("%s: %s", code, aws.ToString(res.ErrorMessage))
				retry = append(retry, pending[i])
			}
		case ctx.Err() != nil:
			// Shutdown grace is over (or another worker failed): give up.
			k.st.unknownOutcome(len(pending))
			k.st.fail(len(pending))
			return nil
		case isThrottle(err):
			throttled = len(pending)
			retry = pending
		case isTransient(err):
			k.st.unknownOutcome(len(pending))
			retry = pending
		default:
			k.st.fail(len(pending))
			return fmt.Errorf("PutRecords to stream %q: %w", k.stream, err)
		}
		k.st.throttle(throttled)
		if len(retry) == 0 {
			return nil
		}
		if attempt >= k.maxRetries {
			k.st.fail(len(retry))
			k.log.Warn("records failed after retries", "count", len(retry), "retries", k.maxRetries, "last_error", lastErr)
			return nil
		}
		k.st.retry(len(retry))
		if !sleep(ctx, backoff(attempt)) {
			k.st.fail(len(retry))
			return nil
		}
		pending = retry
	}
}

// isThrottle reports errors for which Kinesis rejected the whole call
// without writing anything.
func isThrottle(err error) bool {
	var pt *types.ProvisionedThroughputExceededException
	var le *types.LimitExceededException
	var kt *types.KMSThrottlingException
	return errors.As(err, &pt) || errors.As(err, &le) || errors.As(err, &kt)
}

// isTransient reports errors worth retrying whose outcome is unknown: no
// answer at all, or a server-side fault.
func isTransient(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return true // network error, timeout: no answer
	}
	var inf *types.InternalFailureException
	return errors.As(err, &inf) || apiErr.ErrorFault() == smithy.FaultServer
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
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
		f.st.ack(r, "", "")
	}
	return nil
}
