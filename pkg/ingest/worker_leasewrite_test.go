package ingest

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

// A hand-over write is retried when its outcome is unknown or it was
// throttled, not when DynamoDB refused it (a retry would be refused too,
// and would only delay abandoning the lease) nor when the lease is lost.
func TestLeaseWriteRetriesByClass(t *testing.T) {
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Coordinator.WorkerID, cfg.MaintenanceInterval = "s", "w", 0
	w, err := NewWorker(cfg, WorkerDeps{Kinesis: &stopKinesis{}, Leases: leasetest.NewFakeStore(), Sink: &stopSink{}})
	if err != nil {
		t.Fatal(err)
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name  string
		err   error
		calls int
	}{
		{"access denied", &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "UpdateItem", Err: &smithy.GenericAPIError{Code: "AccessDeniedException", Fault: smithy.FaultClient}}, 1},
		{"lost", lease.ErrLost, 1},
		{"throttled", &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Fault: smithy.FaultClient}, leaseWriteAttempts},
		{"connection reset", reset, leaseWriteAttempts},
		{"deadline", context.DeadlineExceeded, leaseWriteAttempts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			start := time.Now()
			err := w.leaseWrite(context.Background(), leaseWriteRelease, "s", func(context.Context) error {
				calls++
				return tc.err
			})
			if !errors.Is(err, tc.err) {
				t.Errorf("leaseWrite = %v, want %v", err, tc.err)
			}
			if calls != tc.calls {
				t.Errorf("%d calls, want %d (took %s)", calls, tc.calls, time.Since(start))
			}
		})
	}
}
