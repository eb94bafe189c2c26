package ingest_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
	"github.com/paystream/paystream/pkg/schema"
)

// testFailover is the --failover-time startWorker gives its workers.
const testFailover = 3 * time.Second

// stalls returns paystream_ingest_shard_stalled_total for reason, summed
// over shards.
func stalls(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "paystream_ingest_shard_stalled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// waitUntilWithin polls cond every 10 ms and fails the test if it is not
// true within d; it returns how long it took.
func waitUntilWithin(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// A shard whose lease is held and renewed but which nobody reads (its
// reader gone) is found within a failover time, counted, and its lease
// given back; the shard is then read again and every record is committed
// exactly once.
func TestWatchdogGivesBackAShardNobodyReads(t *testing.T) {
	s := newStack(t, 1)
	ctx := context.Background()
	w := s.startWorker("w1", nil)
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate = 200, 1000
	_, sent := s.produce(ctx, cfg)
	s.expectExactlyOnce(ctx, sent, 60*time.Second)

	shard := w.w.Held()[0]
	if err := w.w.DropShardForTest(ctx, shard); err != nil {
		t.Fatal(err)
	}
	dropped := time.Now()
	if !slices.Contains(w.w.Held(), shard) {
		t.Fatal("the lease went with the reader; the test needs it held")
	}
	_, sent2 := s.produce(ctx, cfg) // nobody reads these until the watchdog acts
	waitUntilWithin(t, 4*testFailover, "the watchdog counts the shard stalled",
		func() bool { return stalls(t, w.reg, "no_reader") >= 1 })
	took := time.Since(dropped)
	t.Logf("stall found %s after the reader went (failover time %s)", took.Round(time.Millisecond), testFailover)
	if took > testFailover+time.Second {
		t.Errorf("stall found after %s, want within the failover time %s (+1s of scheduling)", took, testFailover)
	}
	s.expectExactlyOnce(ctx, append(sent, sent2...), 60*time.Second)
	if n := stalls(t, w.reg, "no_reader"); n != 1 {
		t.Errorf("no_reader stalls = %v, want 1", n)
	}
	if n := counterSum(t, w.reg, "paystream_lease_taken_total"); n < 2 {
		t.Errorf("lease taken %v times, want the first take and a take after the release", n)
	}
}

// refusingSink fails every commit while refuse is set, as a catalog that
// denies writes would.
type refusingSink struct {
	ingest.Sink
	refuse *atomic.Bool
}

func (r *refusingSink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	if r.refuse.Load() {
		return commit.Result{}, errors.New("catalog refuses the commit: AccessDeniedException")
	}
	return r.Sink.Commit(ctx, b)
}

// A shard whose records wait while every commit fails is found within a
// failover time of the first failed flush; once commits succeed again,
// every record is committed exactly once.
func TestWatchdogFindsAShardWhoseCommitsFail(t *testing.T) {
	s := newStack(t, 1)
	var refuse atomic.Bool
	s.wrapSink = func(in ingest.Sink) ingest.Sink { return &refusingSink{Sink: in, refuse: &refuse} }
	ctx := context.Background()
	w := s.startWorker("w1", nil)
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate = 200, 1000
	_, sent := s.produce(ctx, cfg)
	s.expectExactlyOnce(ctx, sent, 60*time.Second)

	refuse.Store(true)
	_, sent2 := s.produce(ctx, cfg)
	waitUntilWithin(t, 20*time.Second, "a flush fails",
		func() bool { return counterSum(t, w.reg, "paystream_ingest_flush_failures_total") > 0 })
	took := waitUntilWithin(t, 4*testFailover, "the watchdog counts the shard stalled",
		func() bool { return stalls(t, w.reg, "no_commit") >= 1 })
	t.Logf("stall found %s after the first failed flush was seen (failover time %s)", took.Round(time.Millisecond), testFailover)
	if took > testFailover+time.Second {
		t.Errorf("stall found after %s, want within the failover time %s (+1s of scheduling)", took, testFailover)
	}
	refuse.Store(false)
	s.expectExactlyOnce(ctx, append(sent, sent2...), 60*time.Second)
}

// Neither an idle shard, nor a shard whose records commit one flush after
// another, nor a shard waiting for its parent is a stall: over three
// failover times of watchdog rounds, with the busy shard's records
// committed, nothing is counted and the leases stay where they are.
func TestWatchdogLeavesIdleAndFlowingShardsAlone(t *testing.T) {
	s := newStack(t, 2)
	ctx := context.Background()
	first := s.openShards(ctx)[0]
	// A child of the busy shard, which never ends: its lease waits.
	store := s.leaseStore()
	if err := store.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	child := lease.Lease{Key: "shardId-000000000009", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{aws.ToString(first.ShardId)}}
	if err := store.Create(ctx, child); err != nil {
		t.Fatal(err)
	}
	w := s.startWorker("w1", nil)
	waitUntilWithin(t, 20*time.Second, "the worker holds both shards", func() bool { return len(w.w.Held()) == 2 })
	from := w.w.WatchdogChecks()
	gen := schema.NewGenerator(5, time.Now())
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for w.w.WatchdogChecks()-from < 12 {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 12 watchdog rounds in 60s")
		}
		ev := gen.Next(time.Now())
		out, err := s.kin.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(s.stream), Data: ev.AppendJSON(nil),
			PartitionKey: aws.String(ev.EventID), ExplicitHashKey: aws.String("0"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ShardId) != aws.ToString(first.ShardId) {
			t.Fatalf("record went to %s, want %s", aws.ToString(out.ShardId), aws.ToString(first.ShardId))
		}
		last = aws.ToString(out.SequenceNumber)
		time.Sleep(50 * time.Millisecond)
	}
	waitUntilWithin(t, 30*time.Second, "the busy shard's records are committed", func() bool {
		return len(s.behind(ctx, map[string]string{aws.ToString(first.ShardId): last})) == 0
	})
	if n := w.w.WatchdogChecks() - from; n < 12 {
		t.Fatalf("%d watchdog rounds, want at least 12", n)
	}
	if slices.Contains(w.w.Held(), child.Key) {
		t.Errorf("the child %s was taken while its parent is open", child.Key)
	}
	if n := stalls(t, w.reg, "no_reader") + stalls(t, w.reg, "no_commit"); n != 0 {
		t.Errorf("%v stalls counted on healthy shards", n)
	}
	// A lease lost to a late renewal (a loaded machine) is retaken; that is
	// the coordinator's business. Otherwise nothing may have moved.
	taken, lost := counterSum(t, w.reg, "paystream_lease_taken_total"), counterSum(t, w.reg, "paystream_lease_lost_total")
	t.Logf("leases taken %v, lost %v", taken, lost)
	if taken != 2+lost {
		t.Errorf("leases taken %v times with %v lost, want 2 plus the lost (no hand-over)", taken, lost)
	}
}
