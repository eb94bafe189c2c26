package ingest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
	"github.com/paystream/paystream/pkg/schema"
)

// A shard read to its end whose SHARD_END cannot be recorded must not stay
// held and renewed with nobody reading it: the lease is abandoned, so it
// moves after the failover time. (finish used to return after one failed
// checkpoint, leaving the lease held for good and the children unread.)
func TestFinishedShardWhoseEndCannotBeRecordedIsNotKept(t *testing.T) {
	gen := schema.NewGenerator(9, time.Now())
	kin := &stopKinesis{
		recs:   map[string][][]byte{"p": events(gen, 3)},
		shards: []ktypes.Shard{{ShardId: aws.String("p")}},
		closed: map[string]bool{"p": true},
	}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	store := leasetest.NewFakeStore()
	for range 100 {
		store.FailNext("UpdateCheckpoint", errors.New("dynamodb: request timed out"))
	}
	cfg := DefaultWorkerConfig()
	cfg.Pipeline.Stream, cfg.Pipeline.FlushInterval, cfg.Pipeline.IdlePoll = "s", 20*time.Millisecond, 200*time.Millisecond
	cfg.Coordinator.WorkerID, cfg.Coordinator.FailoverTime = "w", 3*time.Second
	cfg.ShardSyncInterval, cfg.ShutdownTimeout, cfg.MaintenanceInterval = time.Second, 5*time.Second, 0
	w, err := NewWorker(cfg, WorkerDeps{Kinesis: kin, Leases: store, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "the worker takes p", func() bool { return slices.Contains(w.Held(), "p") })
	waitFor(t, "p is committed to its end", func() bool { return sink.position("p") == "3" })
	waitFor(t, "p's lease is no longer held", func() bool { return !slices.Contains(w.Held(), "p") })
	l, err := store.Get(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if l.Checkpoint == lease.CheckpointShardEnd {
		t.Errorf("p's lease says SHARD_END although every such write failed")
	}
	if store.Calls("UpdateCheckpoint") < leaseWriteAttempts {
		t.Errorf("%d checkpoint writes, want at least %d attempts at SHARD_END", store.Calls("UpdateCheckpoint"), leaseWriteAttempts)
	}
}
