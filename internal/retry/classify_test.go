package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/paystream/paystream/internal/retry"
)

// Every AWS service the consumer calls, as the SDK returns its errors:
// modelled types, unmodelled codes, HTTP status, and transport failures.
func TestClassify(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name      string
		err       error
		class     retry.Class
		retryable bool
	}{
		{"nil", nil, retry.None, false},
		// Kinesis
		{"kinesis throughput", responseError(400, &ktypes.ProvisionedThroughputExceededException{}), retry.RateLimited, true},
		{"kinesis expired iterator", responseError(400, &ktypes.ExpiredIteratorException{}), retry.Refused, false},
		{"kinesis internal failure", responseError(500, &ktypes.InternalFailureException{}), retry.Unknown, true},
		{"kinesis unmodelled 503", responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), retry.Unknown, true},
		// DynamoDB
		{"dynamodb condition failed", responseError(400, &ddbtypes.ConditionalCheckFailedException{}), retry.Refused, false},
		{"dynamodb throughput", responseError(400, &ddbtypes.ProvisionedThroughputExceededException{}), retry.RateLimited, true},
		{"dynamodb request limit", responseError(400, &ddbtypes.RequestLimitExceeded{}), retry.RateLimited, true},
		{"dynamodb internal error", responseError(500, &ddbtypes.InternalServerError{}), retry.Unknown, true},
		{"dynamodb table missing", responseError(400, &ddbtypes.ResourceNotFoundException{}), retry.Refused, false},
		{"dynamodb generic throttle", responseError(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), retry.RateLimited, true},
		// Glue
		{"glue concurrent modification", responseError(400, &gluetypes.ConcurrentModificationException{}), retry.Refused, false},
		{"glue entity not found", responseError(400, &gluetypes.EntityNotFoundException{}), retry.Refused, false},
		{"glue internal service", responseError(500, &gluetypes.InternalServiceException{}), retry.Unknown, true},
		{"glue throttle", responseError(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), retry.RateLimited, true},
		{"glue access denied", responseError(400, &smithy.GenericAPIError{Code: "AccessDeniedException"}), retry.Refused, false},
		// S3
		{"s3 no such key", responseError(404, &s3types.NoSuchKey{}), retry.Refused, false},
		{"s3 slow down", responseError(503, &smithy.GenericAPIError{Code: "SlowDown"}), retry.RateLimited, true},
		{"s3 internal error", responseError(500, &smithy.GenericAPIError{Code: "InternalError"}), retry.Unknown, true},
		// No answer: the call may have landed.
		{"connection reset", sendError(reset), retry.Unknown, true},
		{"deadline", sendError(context.DeadlineExceeded), retry.Unknown, true},
		{"answer cut off", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), retry.Unknown, true},
		{"canceled while sending", sendError(context.Canceled), retry.Unknown, false},
		{"canceled after a throttle", errors.Join(responseError(400, &ddbtypes.RequestLimitExceeded{}), context.Canceled), retry.RateLimited, false},
		// Not AWS's: the outcome is unknown, and nothing says a retry helps.
		{"other", errors.New("boom"), retry.Unknown, false},
		{"wrapped by the caller", fmt.Errorf("checkpoint shard s: %w", responseError(400, &ddbtypes.ConditionalCheckFailedException{})), retry.Refused, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retry.Classify(tc.err); got != tc.class {
				t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.class)
			}
			if got := retry.Retryable(tc.err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.retryable)
			}
		})
	}
}
