package ingest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff returns a jittered exponential wait for the attempt-th retry:
// 100 ms doubling to at most 5 s, with full jitter over its upper half.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 6)
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// isThrottle reports whether err is Kinesis saying "slow down".
func isThrottle(err error) bool {
	var pt *ktypes.ProvisionedThroughputExceededException
	var le *ktypes.LimitExceededException
	if errors.As(err, &pt) || errors.As(err, &le) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException", "KMSThrottlingException":
			return true
		}
	}
	return false
}

// retryable reports whether a Kinesis call may succeed if repeated:
// throttling, server-side faults and network errors. Client faults
// (a missing stream, a bad argument) are not.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if isThrottle(err) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	// Errors Kinesis does not model (InternalFailure, ServiceUnavailable)
	// arrive as generic API errors with no fault set: judge them by the
	// HTTP status.
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	if ae != nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded)
}
