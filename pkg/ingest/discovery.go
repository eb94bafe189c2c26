package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/lease"
)

// ErrStreamNotFound means the configured stream does not exist.
var ErrStreamNotFound = errors.New("stream not found")

// listShards returns every shard of the stream (all pages), parents before
// children as Kinesis lists them.
func listShards(ctx context.Context, kin kinesisAPI, stream string) ([]ktypes.Shard, error) {
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kin.ListShards(ctx, in)
		if err != nil {
			var nf *ktypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("list shards of %s: %w: %s", stream, ErrStreamNotFound, aws.ToString(nf.Message))
			}
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func parentsOf(s ktypes.Shard) []string {
	var p []string
	if s.ParentShardId != nil && *s.ParentShardId != "" {
		p = append(p, *s.ParentShardId)
	}
	if s.AdjacentParentShardId != nil && *s.AdjacentParentShardId != "" {
		p = append(p, *s.AdjacentParentShardId)
	}
	return p
}

// syncLeases makes the lease table match the stream: it creates a lease for
// every shard that has none (parents before children, so a child is never
// eligible before its parent's lease exists) and deletes the leases of
// finished parents once every child has a lease. A closed shard whose
// children already have leases gets no new lease: it was finished and
// cleaned up. Safe to run on every worker at once (creates and deletes are
// conditional).
func syncLeases(ctx context.Context, kin kinesisAPI, store lease.Store, stream string, log *slog.Logger) error {
	shards, err := listShards(ctx, kin, stream)
	if err != nil {
		return err
	}
	leases, err := store.List(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	have := make(map[string]lease.Lease, len(leases))
	for _, l := range leases {
		have[l.Key] = l
	}
	children := map[string][]string{}
	for _, s := range shards {
		for _, p := range parentsOf(s) {
			children[p] = append(children[p], aws.ToString(s.ShardId))
		}
	}
	created := 0
	for _, s := range orderParentsFirst(shards) {
		id := aws.ToString(s.ShardId)
		if _, ok := have[id]; ok {
			continue
		}
		closed := s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
		if closed && descendantHasLease(id, children, have) {
			continue // finished earlier and cleaned up
		}
		l := lease.Lease{Key: id, Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: parentsOf(s), ChildShardIDs: children[id]}
		if err := store.Create(ctx, l); err != nil && !errors.Is(err, lease.ErrExists) {
			return fmt.Errorf("create lease for %s: %w", id, err)
		}
		have[id] = l
		created++
	}
	if created > 0 {
		log.Info("leases created for new shards", "count", created)
	}
	for _, l := range leases {
		kids := children[l.Key]
		if !l.Finished() || len(kids) == 0 || !allHaveLease(kids, have) {
			continue
		}
		if err := store.Delete(ctx, l); err != nil && !errors.Is(err, lease.ErrLost) {
			return fmt.Errorf("delete finished lease %s: %w", l.Key, err)
		}
		log.Debug("finished parent lease deleted", "shard", l.Key)
	}
	return nil
}

// orderParentsFirst returns shards so that every parent listed comes before
// its children.
func orderParentsFirst(shards []ktypes.Shard) []ktypes.Shard {
	byID := map[string]ktypes.Shard{}
	for _, s := range shards {
		byID[aws.ToString(s.ShardId)] = s
	}
	done := map[string]bool{}
	out := make([]ktypes.Shard, 0, len(shards))
	var visit func(s ktypes.Shard)
	visit = func(s ktypes.Shard) {
		id := aws.ToString(s.ShardId)
		if done[id] {
			return
		}
		done[id] = true
		for _, p := range parentsOf(s) {
			if ps, ok := byID[p]; ok {
				visit(ps)
			}
		}
		out = append(out, s)
	}
	for _, s := range shards {
		visit(s)
	}
	return out
}

// descendantHasLease reports whether a child, grandchild, … of id has a
// lease. A closed shard with such a descendant was read to its end before
// (a child is only taken after its parents finish) and its lease cleaned
// up; after a split and a merge its children may be gone too.
func descendantHasLease(id string, children map[string][]string, have map[string]lease.Lease) bool {
	seen := map[string]bool{}
	stack := append([]string(nil), children[id]...)
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		if _, ok := have[c]; ok {
			return true
		}
		stack = append(stack, children[c]...)
	}
	return false
}

func allHaveLease(ids []string, have map[string]lease.Lease) bool {
	for _, id := range ids {
		if _, ok := have[id]; !ok {
			return false
		}
	}
	return true
}
