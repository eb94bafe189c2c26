package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/paystream/paystream/pkg/commit"
)

// Sentinel errors of the lease store. Implementations return them (possibly
// wrapped) only when the store answered "no, nothing was written": the
// conditional write did not apply and is safe to retry after re-reading.
// Any other error means the outcome is unknown: the write may or may not have
// been applied (a timeout, a throttle after a retried request, a dropped
// connection). Callers re-read before deciding (Coordinator does this).
var (
	// ErrLost: a write by the (supposed) holder of a lease — Renew,
	// Release, UpdateCheckpoint — or a Delete found the lease changed since
	// the caller read it: its leaseCounter moved, its owner is someone else,
	// or it no longer exists. The caller's copy is stale; it no longer owns
	// the lease.
	ErrLost = errors.New("lease lost")
	// ErrHeld: Take found the lease changed since the caller read it
	// (renewed or taken by someone else in between). Re-list before trying
	// again.
	ErrHeld = errors.New("lease held by another worker")
	// ErrExists: Create found a lease with that key already.
	ErrExists = errors.New("lease already exists")
	// ErrNotFound: Get found no lease with that key.
	ErrNotFound = errors.New("lease not found")
)

// Special checkpoint values, as KCL writes them. Any other checkpoint is a
// Kinesis sequence number (an opaque decimal string).
const (
	CheckpointTrimHorizon = "TRIM_HORIZON"
	CheckpointLatest      = "LATEST"
	CheckpointAtTimestamp = "AT_TIMESTAMP"
	// CheckpointShardEnd marks a shard read to its end with every record
	// committed. A finished lease is never taken again; its children become
	// eligible (see ParentsFinished).
	CheckpointShardEnd = "SHARD_END"
)

// Lease is one row of the lease table: the right to read one shard. Field
// comments give the DynamoDB attribute names, which are those of the Kinesis
// Client Library (KCL), so KCL tooling can read the table.
type Lease struct {
	// Key is the shard id (leaseKey, the table's hash key).
	Key string
	// Owner is the worker id holding the lease (leaseOwner); "" means
	// unowned, takeable at once.
	Owner string
	// Counter is bumped by every write (leaseCounter). Every write is
	// conditional on it, and an observer judges a lease expired when its
	// counter has not moved for the failover time.
	Counter int64
	// Checkpoint is the last sequence number recorded for the shard, or one
	// of the Checkpoint* constants (checkpoint). It is informational: the
	// Iceberg table holds the position readers resume from.
	Checkpoint string
	// CheckpointSubSequence is the index of the last user record recorded
	// of the KPL aggregate Checkpoint (checkpointSubSequenceNumber), as the
	// KCL writes it: the aggregate's last user record once it is all
	// committed, 0 for a plain record or a Checkpoint* constant.
	CheckpointSubSequence int64
	// OwnerSwitchesSinceCheckpoint counts owner changes since the last
	// checkpoint update (ownerSwitchesSinceCheckpoint).
	OwnerSwitchesSinceCheckpoint int64
	// ParentShardIDs are the shards this one was split or merged from
	// (parentShardId, a string set).
	ParentShardIDs []string
	// ChildShardIDs are the shards this one was split or merged into
	// (childShardIds, a string set), known once the shard has ended.
	ChildShardIDs []string
}

// SplitCheckpoint splits a checkpoint given to Store.UpdateCheckpoint into
// the lease's Checkpoint and CheckpointSubSequence: a position "SEQ:SUB"
// into SEQ and SUB, a position "SEQ" or a Checkpoint* constant into itself
// and 0. Anything else is an error.
func SplitCheckpoint(checkpoint string) (string, int64, error) {
	switch checkpoint {
	case CheckpointTrimHorizon, CheckpointLatest, CheckpointAtTimestamp, CheckpointShardEnd:
		return checkpoint, 0, nil
	}
	seq, sub, whole, err := commit.ParsePosition(checkpoint)
	if err != nil {
		return "", 0, fmt.Errorf("checkpoint: %w", err)
	}
	if whole {
		sub = 0
	}
	return seq, sub, nil
}

// Finished reports whether the shard was read to its end (checkpoint
// SHARD_END).
func (l Lease) Finished() bool { return l.Checkpoint == CheckpointShardEnd }

// Clone returns l with its own copies of the slices.
func (l Lease) Clone() Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	l.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	return l
}

// Normalized returns l as a store keeps it: it stores empty sets as nil and sorts and de-duplicates the
// rest, as DynamoDB does (it has no empty string sets and no order within a
// set).
func (l Lease) Normalized() Lease {
	l = l.Clone()
	if len(l.ParentShardIDs) == 0 {
		l.ParentShardIDs = nil
	} else {
		slices.Sort(l.ParentShardIDs)
		l.ParentShardIDs = slices.Compact(l.ParentShardIDs)
	}
	if len(l.ChildShardIDs) == 0 {
		l.ChildShardIDs = nil
	} else {
		slices.Sort(l.ChildShardIDs)
		l.ChildShardIDs = slices.Compact(l.ChildShardIDs)
	}
	return l
}

// Store is the lease table. Implementations: DynamoStore (AWS or moto) and
// leasetest.FakeStore (in memory, with error injection, for tests). Both
// pass the conformance suite leasetest.Run.
//
// Every write is conditional on the lease's Counter as the caller last read
// it and, for the holder's writes (Renew, Release, UpdateCheckpoint), on its
// Owner; every write except Delete bumps Counter by one. A write that does
// not apply returns one of the sentinels (ErrLost, ErrHeld,
// ErrExists); any other error leaves the outcome unknown. Methods are
// safe for concurrent use.
type Store interface {
	// EnsureTable checks that the lease table exists and is usable, creating
	// it first when the store was configured to (on-demand billing). Called
	// once at start-up, before anything else.
	EnsureTable(ctx context.Context) error
	// Create writes a new lease as given (normally Owner "", Counter 0) if
	// no lease with its key exists; otherwise ErrExists.
	Create(ctx context.Context, l Lease) error
	// Get reads one lease (strongly consistent); ErrNotFound if absent.
	Get(ctx context.Context, key string) (Lease, error)
	// List reads every lease (strongly consistent, all pages), sorted by Key.
	List(ctx context.Context) ([]Lease, error)
	// Renew bumps the counter of a lease the caller holds and returns the
	// new lease. ErrLost if the counter or owner moved.
	Renew(ctx context.Context, l Lease) (Lease, error)
	// Take makes newOwner the owner of l (unowned, expired, or stolen),
	// bumping the counter and, when the owner changes,
	// OwnerSwitchesSinceCheckpoint. Conditional on Counter only.
	// ErrHeld if the counter moved.
	Take(ctx context.Context, l Lease, newOwner string) (Lease, error)
	// Release clears the owner (the attribute is removed) and bumps the
	// counter, so any worker may take the lease at once. ErrLost if the
	// counter or owner moved.
	Release(ctx context.Context, l Lease) error
	// UpdateCheckpoint sets the checkpoint of a lease the caller holds
	// (a position "SEQ" or "SEQ:SUB", or a Checkpoint* constant; see
	// SplitCheckpoint), resets OwnerSwitchesSinceCheckpoint and bumps the
	// counter.
	// ErrLost if the counter or owner moved.
	UpdateCheckpoint(ctx context.Context, l Lease, checkpoint string) (Lease, error)
	// Delete removes the lease if its counter is still l.Counter (used to
	// clean up finished parents). Deleting an absent lease succeeds.
	// ErrLost if the counter moved.
	Delete(ctx context.Context, l Lease) error
}

// Shard is what Sync needs to know of one shard of the stream.
type Shard struct {
	// ID is the shard id, the lease key.
	ID string
	// Parents are the shards this one was split or merged from: none, one
	// (a split) or two (a merge).
	Parents []string
	// Closed means the shard has an ending sequence number: it was split or
	// merged and takes no new records.
	Closed bool
}

// ShardLister lists the shards of the stream the leases are for.
// ingest.KinesisShards lists a Kinesis stream.
type ShardLister interface {
	// ListShards returns every shard of the stream (all pages), closed ones
	// still within retention included, in any order. Sync returns its error
	// as is.
	ListShards(ctx context.Context) ([]Shard, error)
}

// CheckHolderWrite rejects a holder's write on a lease that has no owner: a
// programming error, not a conflict.
func CheckHolderWrite(op string, l Lease) error {
	if l.Key == "" {
		return fmt.Errorf("%s lease: empty key", op)
	}
	if l.Owner == "" {
		return fmt.Errorf("%s lease %s: lease has no owner", op, l.Key)
	}
	return nil
}
