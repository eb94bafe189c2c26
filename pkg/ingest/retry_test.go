package ingest

import (
	"errors"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// responseError builds what the SDK returns for an error answer: the API
// error wrapped in the HTTP response error, then in the operation error.
func responseError(status int, api error) error {
	re := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: api,
	}}
	return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "GetRecords", Err: re}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		// Kinesis' InternalFailure is not a modelled error: no fault is set,
		// only the 500 says it is the server's. The chaos harness found a
		// reader that stopped for good on it, its lease still held.
		{"unmodelled 500", responseError(500, &smithy.GenericAPIError{Code: "InternalFailure"}), true},
		{"unmodelled 503", responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), true},
		{"server fault", responseError(400, &smithy.GenericAPIError{Code: "X", Fault: smithy.FaultServer}), true},
		{"throttle", responseError(400, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException"}), true},
		{"client fault", responseError(400, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Fault: smithy.FaultClient}), false},
		{"unmodelled 400", responseError(400, &smithy.GenericAPIError{Code: "AccessDeniedException"}), false},
		{"other", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
