package ingest_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/producer"
)

// Three workers on a six-shard stream share the shards 2/2/2 and commit
// every event exactly once.
func TestWorkerThreeWorkersSixShards(t *testing.T) {
	s := newStack(t, 6)
	ctx := context.Background()
	ws := []*runningWorker{s.startWorker("w1", nil), s.startWorker("w2", nil), s.startWorker("w3", nil)}
	deadline := time.Now().Add(30 * time.Second)
	var counts []int
	for {
		counts = counts[:0]
		total := 0
		for _, w := range ws {
			n := len(w.w.Held())
			counts = append(counts, n)
			total += n
		}
		sort.Ints(counts)
		if total == 6 && counts[0] == 2 && counts[2] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases not spread 2/2/2 within 30s: %v", counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate, cfg.DuplicateRate, cfg.DuplicateDelay = 3000, 1500, 0.1, time.Second
	_, sent := s.produce(ctx, cfg)
	s.expectExactlyOnce(ctx, sent, 60*time.Second)
}

func (s *stack) openShards(ctx context.Context) []ktypes.Shard {
	var open []ktypes.Shard
	for _, sh := range s.allShards(ctx) {
		if sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, sh)
		}
	}
	return open
}

func (s *stack) allShards(ctx context.Context) []ktypes.Shard {
	s.t.Helper()
	out, err := s.kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(s.stream)})
	if err != nil {
		s.t.Fatal(err)
	}
	return out.Shards
}

func (s *stack) waitActive(ctx context.Context) {
	s.t.Helper()
	for i := 0; i < 100; i++ {
		out, err := s.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(s.stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatal("stream not ACTIVE after resharding")
}

func (s *stack) leases(ctx context.Context) map[string]lease.Lease {
	s.t.Helper()
	store := s.leaseStore()
	ls, err := store.List(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]lease.Lease{}
	for _, l := range ls {
		out[l.Key] = l
	}
	return out
}
