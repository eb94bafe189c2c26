// Package lease shares a Kinesis stream's shards among consumer workers
// through a lease table, KCL style.
//
// The lease table (Store: DynamoStore in AWS or on moto; leasetest.FakeStore
// in tests) has one lease per shard, with the Kinesis Client Library's
// attribute names. Every write is conditional on the lease's leaseCounter; a
// write that does not apply returns ErrLost, ErrHeld or ErrExists, and any
// other error means the outcome is unknown.
//
// A Coordinator (one per process) renews the leases its worker holds, takes
// free and expired ones up to a fair share, and steals a bounded number from
// the busiest worker. A lease is expired when its counter has not moved for
// FailoverTime as timed on the observer's own monotonic clock; wall clocks
// of other hosts are never compared. It reports changes through
// CoordinatorConfig.OnAcquire (start the shard's reader) and OnLost (stop
// it, drop unflushed rows, do not checkpoint). A shard's reader calls
// Coordinator.Checkpoint after its rows are committed and
// Coordinator.Release after it has exited. Children of a split or merge are
// taken only when CoordinatorConfig.Eligible says so (default
// ParentsFinished: every parent is SHARD_END or gone).
//
// Sync keeps the table in step with the stream: it creates a lease for
// every new shard (parents first) and deletes finished parents' leases once
// their children have theirs. It learns the shards through a ShardLister;
// ingest.KinesisShards lists a Kinesis stream.
//
// Besides one lease per shard the table holds role leases, keyed
// RoleKey(name) ("role#maintainer"): a Role elects one worker to hold a
// role (table maintenance) with the same writes and expiry rules, moves it
// on failover like a shard lease and releases it when its Run ends.
// Coordinator and Sync skip role leases (IsRoleKey): they are never counted,
// taken, stolen, created or deleted as shards.
//
// The lease table is not where readers resume from: the Iceberg table's
// per-shard positions are (see the project DESIGN.md, section 3). The lease
// checkpoint is for visibility and for parent/child ordering.
//
// DESIGN.md beside this file describes goroutine ownership, lock order and
// the lease state machine.
package lease
