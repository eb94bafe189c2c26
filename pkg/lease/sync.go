package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Sync makes the lease table match the stream: it creates a lease for every
// shard that has none (parents before children, so a child is never
// eligible before its parent's lease exists) and deletes the leases of
// finished parents once every child has a lease. A closed shard whose
// children already have leases gets no new lease: it was finished and
// cleaned up. Safe to run on every worker at once (creates and deletes are
// conditional). A worker calls it at start-up and then every shard sync
// interval; an error leaves the table partly synced, and the next call
// carries on. log may be nil.
func Sync(ctx context.Context, lister ShardLister, store Store, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	shards, err := lister.ListShards(ctx)
	if err != nil {
		return err
	}
	leases, err := store.List(ctx)
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	have := make(map[string]Lease, len(leases))
	for _, l := range leases {
		have[l.Key] = l
	}
	children := map[string][]string{}
	for _, s := range shards {
		for _, p := range s.Parents {
			children[p] = append(children[p], s.ID)
		}
	}
	created := 0
	for _, s := range orderParentsFirst(shards) {
		id := s.ID
		if _, ok := have[id]; ok {
			continue
		}
		if s.Closed && descendantHasLease(id, children, have) {
			continue // finished earlier and cleaned up
		}
		l := Lease{Key: id, Checkpoint: CheckpointTrimHorizon, ParentShardIDs: s.Parents, ChildShardIDs: children[id]}
		if err := store.Create(ctx, l); err != nil && !errors.Is(err, ErrExists) {
			return fmt.Errorf("create lease for %s: %w", id, err)
		}
		have[id] = l
		created++
	}
	if created > 0 {
		log.Info("leases created for new shards", "count", created)
	}
	for _, l := range leases {
		if IsRoleKey(l.Key) {
			continue // not a shard: Sync never creates or deletes role leases
		}
		kids := children[l.Key]
		if !l.Finished() || len(kids) == 0 || !allHaveLease(kids, have) {
			continue
		}
		if err := store.Delete(ctx, l); err != nil && !errors.Is(err, ErrLost) {
			return fmt.Errorf("delete finished lease %s: %w", l.Key, err)
		}
		log.Debug("finished parent lease deleted", "shard", l.Key)
	}
	return nil
}

// orderParentsFirst returns shards so that every parent listed comes before
// its children.
func orderParentsFirst(shards []Shard) []Shard {
	byID := map[string]Shard{}
	for _, s := range shards {
		byID[s.ID] = s
	}
	done := map[string]bool{}
	out := make([]Shard, 0, len(shards))
	var visit func(s Shard)
	visit = func(s Shard) {
		if done[s.ID] {
			return
		}
		done[s.ID] = true
		for _, p := range s.Parents {
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
func descendantHasLease(id string, children map[string][]string, have map[string]Lease) bool {
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

func allHaveLease(ids []string, have map[string]Lease) bool {
	for _, id := range ids {
		if _, ok := have[id]; !ok {
			return false
		}
	}
	return true
}
