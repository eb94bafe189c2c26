// Package iceberg is paystream's Iceberg side: opening the catalog,
// bootstrapping the payment table, the exactly-once commit protocol, table
// maintenance and the dead-letter store. DESIGN.md beside this file walks
// through the commit protocol and why each step is there.
//
// # Catalogs
//
// CatalogConfig (flags --catalog, --warehouse, --table; env PAYSTREAM_*
// through internal/flagenv) names one of three catalogs, opened by
// OpenCatalog:
//
//   - sqlite:PATH — the embedded default (./data/catalog.db with a file://
//     warehouse in ./data/warehouse). Pure Go; several processes may share
//     the file (WAL, busy timeout).
//   - glue — AWS Glue Data Catalog with an s3:// warehouse. Region,
//     credentials and endpoints come from the standard AWS SDK chain, so
//     AWS_ENDPOINT_URL points it at moto.
//   - http(s)://… — an Iceberg REST catalog (no authentication options yet).
//
// # Table
//
// EnsureTable creates the namespace and table when absent (schema from
// pkg/schema, partitioned by day(event_ts), format v2, ZSTD Parquet,
// metadata-size properties) and, for an existing table, refuses it with
// ErrIncompatibleTable listing every difference, or adds the optional
// columns the event schema gained. Every writing binary calls it at start.
//
// # Commits
//
// A Sink appends batches. A commit.Batch is Arrow rows plus, for each shard it
// covers, the sequence number it starts after and the last one it holds.
// Sink.Commit appends the rows and sets table property
// "paystream.position.<shard>" (PositionPropertyPrefix) to the last
// sequence number in one Iceberg commit, so rows and positions can never
// disagree — through crashes, retries and other writers. Contract:
//
//   - nil error: the rows and the new positions are committed, once.
//   - commit.ErrPositionMoved: the table's position for a shard is not the
//     batch's After — another writer (a zombie, the new lease holder)
//     committed that shard. Nothing was appended. Drop the batch and
//     re-read the shard from Positions. Never retry the same batch.
//   - commit.ErrInvalidBatch: the batch can never commit (empty or NULL event_id,
//     malformed range, unknown column). A caller bug.
//   - other errors: the commit did not land after MaxRetries attempts
//     (conflicts and unknown outcomes are retried, and an unknown outcome
//     is resolved by looking for the commit's id in the snapshot summaries
//     before retrying). If ctx ended, the outcome may be unknown; a worker
//     that restarts reads Positions and is correct either way.
//
// Sequence numbers are decimal strings compared as big integers
// (commit.CompareSeq); "" means no position. A shard id is any non-empty string
// up to 200 bytes (Glue keeps table properties as parameters with keys of
// at most 255 bytes); file ingest uses a stable source id as the shard and
// line offsets as sequence numbers. Positions are never removed, so keep
// the number of distinct shard ids bounded.
//
// Commit reloads the table from the catalog every time (never the handle a
// commit returned, DESIGN §7) and is safe for concurrent use. Positions
// reads the positions back on start-up or lease take-over; RecentEventIDs
// streams the event ids of a shard and its ancestors ingested since a time
// (one scan, data files pruned by their shard_id and ingested_at bounds),
// to refill the dedup window. Maintain tags one snapshot per hour for time
// travel, compacts small data files (Compact), expires snapshots and
// optionally removes orphan files; the consumer's maintainer calls it
// periodically and "consumer maintain" once.
//
// # Dead letters
//
// DeadLetter stores rejected records as NDJSON objects, each line with the
// raw bytes (base64 with raw_base64 when not UTF-8), reasons, shard,
// sequence number and arrival time. A batch's rejects are staged under its
// commit id (WAREHOUSE/_dead_letter_pending/…) before its commit and
// published to WAREHOUSE/_dead_letter/NAMESPACE.TABLE/SHARD/FIRST-LAST.ndjson
// once the commit landed; Sink.SweepDeadLetters, run by the maintainer,
// resolves what a crashed writer left staged. Every record of a committed
// batch is readable exactly once (DESIGN.md, "Dead letters").
//
// # Clock skew
//
// iceberg-go stamps each snapshot with the committing process's clock and
// refuses one stamped more than a minute before the table's last snapshot
// or update; the sink reports that as ErrClockSkew, not retried.
// WithClockOffset wraps a catalog so that its commits stamp their
// snapshots as a process whose clock is that far off would: fault
// injection only (the consumer's PAYSTREAM_FAULT_CLOCK_OFFSET, the chaos
// harness's clock fault, tests).
//
// # Metrics
//
// On the injected Registerer: paystream_sink_commits_total,
// paystream_sink_commit_conflicts_total, paystream_sink_commit_retries_total,
// paystream_sink_position_moved_total, paystream_sink_commit_duration_seconds,
// paystream_sink_rows_committed_total, paystream_sink_data_files_total,
// paystream_sink_data_bytes_total, paystream_sink_snapshots_expired_total,
// paystream_sink_orphan_files_removed_total,
// paystream_sink_metadata_files_removed_total,
// paystream_sink_positions_dropped_total,
// paystream_compaction_{files,bytes}_{rewritten,written}_total,
// paystream_table_partition_data_files_max,
// paystream_table_hot_partition_data_files, paystream_table_metadata_bytes,
// paystream_deadletter_records_total
// and paystream_deadletter_objects_total. Several sinks may share one
// registry.
package iceberg
