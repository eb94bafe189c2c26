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
// every snapshot after the sweep's horizon; a failed sweep skips the round.
func TestMaintainRoundSweepsDeadLettersFirst(t *testing.T) {
	m := &countingMaintainer{id: "w", mu: &sync.Mutex{}, runs: map[string]int{}}
	sweepErr := error(nil)
	horizon := time.Now().Add(-10 * time.Minute)
	w := &Worker{maint: m, sweepDL: func(context.Context) (iceberg.DeadLetterSweep, error) {
		if sweepErr != nil {
			return iceberg.DeadLetterSweep{}, sweepErr
		}
		return iceberg.DeadLetterSweep{Horizon: horizon}, nil
	}}
	ctx := context.Background()
	if _, err := w.maintainRound(ctx, iceberg.MaintainOptions{KeepSnapshots: 5, SnapshotAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if len(m.opts) != 1 || m.opts[0].SnapshotAge < 10*time.Minute || m.opts[0].KeepSnapshots != 5 {
		t.Fatalf("maintain options %+v, want snapshot age raised to the sweep's horizon (10m)", m.opts)
	}
	// A longer configured age is kept.
	if _, err := w.maintainRound(ctx, iceberg.MaintainOptions{SnapshotAge: time.Hour}); err != nil || m.opts[1].SnapshotAge != time.Hour {
		t.Fatalf("snapshot age %s, %v; want the configured 1h", m.opts[1].SnapshotAge, err)
	}
	sweepErr = errors.New("s3 unavailable")
	if _, err := w.maintainRound(ctx, iceberg.MaintainOptions{}); !errors.Is(err, sweepErr) {
		t.Fatalf("err = %v, want the sweep's error", err)
	}
	if m.runs["w"] != 2 {
		t.Errorf("Maintain ran %d times, want 2 (not after a failed sweep)", m.runs["w"])
	}
}
