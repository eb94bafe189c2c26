package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/paystream/paystream/internal/retry"
)

// responseError builds what the SDK returns for an error answer: the API
// error wrapped in the HTTP response error, then in the operation error.
func responseError(status int, api error) error {
	re := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: api,
	}}
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "GetRecords", Err: re}
}

// sendError builds what the SDK returns when no answer came: the transport
// error wrapped in the request-send error, then in the operation error.
func sendError(err error) error {
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords",
		Err: &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "http://kinesis", Err: err}}}
}

func TestRetryableAndThrottled(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name                 string
		err                  error
		throttled, retryable bool
	}{
		// Kinesis' modelled throttles.
		{"provisioned throughput exceeded", responseError(400, &ktypes.ProvisionedThroughputExceededException{Message: new("slow down")}), true, true},
		{"limit exceeded", responseError(400, &ktypes.LimitExceededException{}), true, true},
		{"KMS throttling", responseError(400, &ktypes.KMSThrottlingException{}), true, true},
		{"wrapped by the caller", fmt.Errorf("get records from shard-0: %w", responseError(400, &ktypes.ProvisionedThroughputExceededException{})), true, true},
		// Throttles the client does not model arrive as generic API errors.
		{"generic throttling", responseError(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), true, true},
		{"generic throughput", responseError(400, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException"}), true, true},
		// Server faults.
		{"modelled internal failure", responseError(500, &ktypes.InternalFailureException{}), false, true},
		{"server fault", responseError(400, &smithy.GenericAPIError{Code: "X", Fault: smithy.FaultServer}), false, true},
		// Kinesis' InternalFailure is not a modelled error on GetRecords: no
		// fault is set, only the 500 says it is the server's. The chaos
		// harness found a reader that stopped for good on it, its lease
		// still held.
		{"unmodelled 500", responseError(500, &smithy.GenericAPIError{Code: "InternalFailure"}), false, true},
		{"unmodelled 503", responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), false, true},
		// Client faults.
		{"resource not found", responseError(400, &ktypes.ResourceNotFoundException{}), false, false},
		{"expired iterator", responseError(400, &ktypes.ExpiredIteratorException{}), false, false},
		{"generic client fault", responseError(400, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Fault: smithy.FaultClient}), false, false},
		{"unmodelled 400", responseError(400, &smithy.GenericAPIError{Code: "AccessDeniedException"}), false, false},
		// No answer, or a cut-off one.
		{"connection reset", sendError(reset), false, true},
		{"connection refused", sendError(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false, true},
		{"dns", sendError(&net.DNSError{Err: "server misbehaving", Name: "kinesis", IsTemporary: true}), false, true},
		{"bare net error", reset, false, true},
		{"answer cut off", &smithy.OperationError{ServiceID: "Kinesis", OperationName: "GetRecords",
			Err: &smithy.DeserializationError{Err: fmt.Errorf("failed to decode response body, %w", io.ErrUnexpectedEOF)}}, false, true},
		{"deadline", sendError(context.DeadlineExceeded), false, true},
		{"bare deadline", context.DeadlineExceeded, false, true},
		// Never.
		{"canceled", context.Canceled, false, false},
		{"canceled while sending", sendError(context.Canceled), false, false},
		{"canceled after a throttle", errors.Join(responseError(400, &ktypes.ProvisionedThroughputExceededException{}), context.Canceled), true, false},
		{"other", errors.New("boom"), false, false},
		{"nil", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retry.Throttled(tc.err); got != tc.throttled {
				t.Errorf("Throttled(%v) = %v, want %v", tc.err, got, tc.throttled)
			}
			if got := retry.Retryable(tc.err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.retryable)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	const ms = time.Millisecond
	kinesis := retry.Backoff{Base: 100 * ms, Cap: 5 * time.Second}
	for _, tc := range []struct {
		name     string
		b        retry.Backoff
		attempt  int
		min, max time.Duration
	}{
		{"first retry", kinesis, 0, 50 * ms, 100 * ms},
		{"doubles", kinesis, 3, 400 * ms, 800 * ms},
		{"last below the cap", kinesis, 5, 1600 * ms, 3200 * ms},
		{"capped", kinesis, 6, 2500 * ms, 5 * time.Second},
		{"no overflow", kinesis, 1000, 2500 * ms, 5 * time.Second},
		{"negative attempt", kinesis, -3, 50 * ms, 100 * ms},
		{"full jitter", retry.Backoff{Base: 100 * ms, Cap: 5 * time.Second, Jitter: retry.FullJitter}, 2, 0, 400 * ms},
		{"cap below base", retry.Backoff{Base: time.Second, Cap: 100 * ms}, 0, 50 * ms, 100 * ms},
		{"zero", retry.Backoff{}, 4, 0, 0},
		{"negative cap", retry.Backoff{Base: ms, Cap: -ms}, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := time.Duration(1<<62), time.Duration(-1)
			for range 2000 {
				d := tc.b.Delay(tc.attempt)
				lo, hi = min(lo, d), max(hi, d)
			}
			if lo < tc.min || hi > tc.max {
				t.Fatalf("Delay(%d) ranged over [%s, %s], want within [%s, %s]", tc.attempt, lo, hi, tc.min, tc.max)
			}
			// The jitter is real: 2,000 draws span most of the range.
			if span := tc.max - tc.min; span > 0 && hi-lo < span*9/10 {
				t.Errorf("Delay(%d) ranged over [%s, %s] only, want most of [%s, %s]", tc.attempt, lo, hi, tc.min, tc.max)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := retry.Sleep(t.Context(), time.Minute); err != nil || time.Since(start) != time.Minute {
			t.Fatalf("Sleep(1m) = %v after %s, want nil after 1m", err, time.Since(start))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) != time.Second {
			t.Fatalf("Sleep(1h) cancelled after 1s = %v after %s, want context.Canceled after 1s", err, time.Since(start))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("lease lost")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(time.Second, func() { cancel(cause) })
		if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, cause) {
			t.Fatalf("Sleep = %v, want the cancel cause %v", err, cause)
		}
		if err := retry.Sleep(ctx, 0); !errors.Is(err, cause) {
			t.Fatalf("Sleep(0) on an ended context = %v, want %v", err, cause)
		}
	})
	if err := retry.Sleep(context.Background(), -time.Second); err != nil {
		t.Fatalf("Sleep(-1s) = %v, want nil at once", err)
	}
}

func TestBackoffWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := retry.Backoff{Base: time.Second, Cap: time.Minute}
		start := time.Now()
		if err := b.Wait(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("Wait(2) took %s, want within [2s, 4s]", d)
		}
	})
}
