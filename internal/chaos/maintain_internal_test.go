package chaos

import (
	"errors"
	"testing"
)

// The post-run maintain step retries only iceberg-go's refusal of a commit
// stamped before the table's newest entry (a consumer that ran ahead),
// with the message maintain printed in a trial that failed for it.
func TestIsClockRefusal(t *testing.T) {
	refused := errors.New("consumer maintain (publishing staged dead letters): exit status 1\nconsumer: maintain netflix_revenue_raw.subscription_payments: expire snapshots: invalid metadata: invalid update timestamp 1796653320176: before last snapshot log entry at 1796653402729")
	if !isClockRefusal(refused) {
		t.Errorf("isClockRefusal(%q) = false, want true", refused)
	}
	other := errors.New("consumer maintain (publishing staged dead letters): exit status 2\n--table x.y: no such table")
	if isClockRefusal(other) {
		t.Errorf("isClockRefusal(%q) = true, want false", other)
	}
}
