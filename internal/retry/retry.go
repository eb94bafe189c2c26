package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/aws/smithy-go"
)

// Sleep waits for d or until ctx ends, whichever comes first. It returns nil
// after a full wait, otherwise context.Cause(ctx) (ctx.Err() unless ctx was
// cancelled with a cause). A d of zero or less does not wait: it returns
// nil, or the cause if ctx has already ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Jitter is how much of a Backoff delay is drawn at random.
type Jitter int

const (
	// EqualJitter (the zero value) waits between half the delay and the
	// whole of it: half fixed, half random, so a retry never comes much
	// earlier than the schedule says.
	EqualJitter Jitter = iota
	// FullJitter waits anywhere between zero and the delay, which spreads
	// many clients' retries most widely.
	FullJitter
)

// Backoff is an exponential retry schedule: the delay before retry attempt
// n (counted from 0) is Base·2ⁿ, at most Cap, then jittered. The zero Jitter
// is EqualJitter. A Backoff is a value: declare it once per caller.
type Backoff struct {
	Base   time.Duration // delay before attempt 0, before jitter
	Cap    time.Duration // largest delay, before jitter
	Jitter Jitter
}

// Delay returns the jittered wait before retry attempt (0 for the first
// retry; a negative attempt counts as 0). It never overflows: a large
// attempt gives Cap. A Base or Cap of zero or less gives 0.
func (b Backoff) Delay(attempt int) time.Duration {
	attempt = max(attempt, 0)
	d := b.Cap
	if attempt < 63 && b.Base <= b.Cap>>attempt {
		d = b.Base << attempt
	}
	if d <= 0 {
		return 0
	}
	if b.Jitter == FullJitter {
		return rand.N(d + 1)
	}
	return d/2 + rand.N(d/2+1)
}

// Wait sleeps for Delay(attempt), ending early with ctx as Sleep does.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	return Sleep(ctx, b.Delay(attempt))
}

// throttleCodes are the error codes with which AWS says "slow down": the
// Kinesis ones (modelled as ktypes.ProvisionedThroughputExceededException,
// LimitExceededException and KMSThrottlingException, whose ErrorCode is
// their name), DynamoDB's, S3's SlowDown and the generic throttle every AWS
// JSON service may send.
var throttleCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true, // Kinesis, DynamoDB
	"LimitExceededException":                 true,
	"KMSThrottlingException":                 true,
	"ThrottlingException":                    true, // every JSON service, Glue
	"RequestLimitExceeded":                   true, // DynamoDB, account-wide
	"SlowDown":                               true, // S3 (a 503)
}

// Throttled reports whether err is AWS refusing a call because of its rate:
// nothing was done, and the call may succeed after a wait.
func Throttled(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && throttleCodes[ae.ErrorCode()]
}

// Retryable reports whether a call that failed with err may succeed if
// repeated: throttling, a server-side fault (modelled with FaultServer, or
// an unmodelled error such as Kinesis' InternalFailure answered with a 5xx
// status), a network error, a cut-off answer, or a deadline. Client faults
// (a missing stream, a bad argument, access denied) are not, and neither is
// context.Canceled, however it is wrapped: the caller is stopping.
//
// A retryable error other than throttling may have left the call's outcome
// unknown; callers whose calls are not idempotent must allow for that.
func Retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	switch Classify(err) {
	case RateLimited:
		return true
	case Unknown:
		// Not an error we cannot read: a plain error from our own code is
		// no reason to repeat a call.
		return serverFault(err) || transport(err)
	}
	return false
}

// Class is what a failed AWS call (Kinesis, DynamoDB, Glue, S3) says about
// its own outcome. Classify is the one place that decides it from the
// SDK's error types, codes and HTTP status; callers branch on the class
// (or on Retryable), not on error codes. Vendor errors that mean a
// specific thing to a caller (DynamoDB's ConditionalCheckFailedException,
// Kinesis' ExpiredIteratorException) are still translated at the call site:
// they are Refused here.
type Class int

const (
	// None is no error.
	None Class = iota
	// Refused means the service answered and blamed the caller (a client fault:
	// a bad argument, a missing resource, access denied, a failed
	// condition). Nothing was done, and repeating the call unchanged will
	// not help.
	Refused
	// RateLimited means the service refused the call because of its rate.
	// Nothing was done; the call may succeed after a wait.
	RateLimited
	// Unknown means the call may or may not have taken effect: a server fault,
	// a lost connection, a cut-off answer, a deadline or a cancellation
	// while the request was out, or an error that is not AWS's at all.
	// Repeat it only if it is idempotent, or after looking for its effect.
	Unknown
)

// String returns the class as logs and metric labels spell it.
func (c Class) String() string {
	switch c {
	case None:
		return "none"
	case Refused:
		return "refused"
	case RateLimited:
		return "rate_limited"
	default:
		return "unknown"
	}
}

// Classify returns the class of err (None for nil). A throttle wins over
// anything it is joined or wrapped with.
func Classify(err error) Class {
	if err == nil {
		return None
	}
	if Throttled(err) {
		return RateLimited
	}
	if serverFault(err) {
		return Unknown
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return Refused // the service answered, and blamed the caller
	}
	return Unknown
}

// serverFault reports whether the service answered with a fault of its
// own: modelled with FaultServer, or an unmodelled error (Kinesis'
// InternalFailure, ServiceUnavailable) judged by its 5xx status.
func serverFault(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

// transport reports whether err is the request not getting an answer: a
// network error, a cut-off answer, or a deadline.
func transport(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded)
}

// Startup runs fn until it succeeds, retrying the errors Retryable calls
// transient (a 5xx, a throttle, a lost connection) with backoff for at
// most budget, logging each retry; any other error ends it at once. It is
// for a process's start-up checks, which are idempotent: a transient error
// while starting is not a reason to exit.
func Startup(ctx context.Context, log *slog.Logger, budget time.Duration, fn func(context.Context) error) error {
	backoff := Backoff{Base: 100 * time.Millisecond, Cap: 5 * time.Second}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil || !Retryable(err) {
			return err
		}
		if time.Since(start) >= budget {
			return fmt.Errorf("still failing after %s: %w", time.Since(start).Round(time.Second), err)
		}
		log.Warn("start-up failed; retrying", "attempt", attempt+1, "err", err.Error())
		if werr := backoff.Wait(ctx, attempt); werr != nil {
			return errors.Join(err, werr)
		}
	}
}
