package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/iceberg"
)

// The maintainer sweeps the dead letters before each maintenance and keeps
// every snapshot after the head the sweep resolved; a failed sweep skips
// the round.
func TestMaintainRoundSweepsDeadLettersFirst(t *testing.T) {
	m := &countingMaintainer{id: "w", mu: &sync.Mutex{}, runs: map[string]int{}}
	sweepErr := error(nil)
	const head = int64(4242)
	w := &Worker{maint: m, sweepDL: func(context.Context) (iceberg.DeadLetterSweep, error) {
		if sweepErr != nil {
			return iceberg.DeadLetterSweep{}, sweepErr
		}
		return iceberg.DeadLetterSweep{Head: head}, nil
	}}
	ctx := context.Background()
	if _, err := w.maintainRound(ctx, iceberg.MaintainOptions{KeepSnapshots: 5, SnapshotAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if len(m.opts) != 1 || m.opts[0].KeepAfter == nil || *m.opts[0].KeepAfter != head || m.opts[0].KeepSnapshots != 5 || m.opts[0].SnapshotAge != time.Minute {
		t.Fatalf("maintain options %+v, want the sweep's head kept after, the configured 5 and 1m unchanged", m.opts)
	}
	sweepErr = errors.New("s3 unavailable")
	if _, err := w.maintainRound(ctx, iceberg.MaintainOptions{}); !errors.Is(err, sweepErr) {
		t.Fatalf("err = %v, want the sweep's error", err)
	}
	if m.runs["w"] != 1 {
		t.Errorf("Maintain ran %d times, want 1 (not after a failed sweep)", m.runs["w"])
	}
}
