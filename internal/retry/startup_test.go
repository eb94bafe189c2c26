package retry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// glue500 is what an AWS client returns for a 500 answer.
func glue500(op string) error {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: 500}}
	return &smithy.OperationError{ServiceID: "Glue", OperationName: op, Err: &smithyhttp.ResponseError{
		Response: resp, Err: &smithy.GenericAPIError{Code: "InternalServiceException", Fault: smithy.FaultServer},
	}}
}

// A transient catalog, lease-table or stream error while the worker starts
// is retried; the worker starts once the call succeeds.
func TestStartupRetriesTransientErrors(t *testing.T) {
	calls := 0
	err := Startup(context.Background(), slog.New(slog.DiscardHandler), time.Minute, func(context.Context) error {
		calls++
		if calls < 3 {
			return glue500("GetTable")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

// An error retrying cannot fix (a missing table, access denied) ends the
// start at once with that error.
func TestStartupStopsOnRefusal(t *testing.T) {
	calls := 0
	refused := &smithy.GenericAPIError{Code: "EntityNotFoundException", Message: "table not found", Fault: smithy.FaultClient}
	err := Startup(context.Background(), slog.New(slog.DiscardHandler), time.Minute, func(context.Context) error {
		calls++
		return refused
	})
	if !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("err %v after %d calls, want the refusal after 1", err, calls)
	}
}

// A transient error that outlasts the budget ends the start with the last
// error and says how long it tried.
func TestStartupGivesUpAfterBudget(t *testing.T) {
	calls := 0
	err := Startup(context.Background(), slog.New(slog.DiscardHandler), 300*time.Millisecond, func(context.Context) error {
		calls++
		return glue500("GetTable")
	})
	if err == nil || calls < 2 || !strings.Contains(err.Error(), "still failing after") || !strings.Contains(err.Error(), "InternalServiceException") {
		t.Fatalf("err %v after %d calls, want the last error after retrying", err, calls)
	}
}
