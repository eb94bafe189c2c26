// Package kpl reads and writes the Kinesis Producer Library (KPL)
// aggregation format, in which a producer packs many user records into one
// Kinesis record to get past the per-record overhead and the 1,000
// records/s shard write limit.
//
// # The format
//
// An aggregated Kinesis record's data is
//
//	F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//
// with the proto2 messages
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//	message Tag { required string key = 1; optional string value = 2; }
//
// A user record's position in the stream is the Kinesis record's sequence
// number plus its index in records, the sub-sequence number (as the KCL
// numbers them). The package encodes and decodes the wire format with
// google.golang.org/protobuf/encoding/protowire; there is no generated code.
//
// # API
//
// IsAggregated tells an aggregate from a plain record by its magic number.
// Deaggregate (and AppendDeaggregate, which reuses a slice) returns the
// user records or an error wrapping one of ErrNotAggregated, ErrTruncated,
// ErrChecksum, ErrMalformed, ErrKeyIndex or ErrEmpty that says what is
// wrong and where. The user records' Data alias the input.
//
// An Aggregator packs user records into aggregates no larger than a limit
// (at most MaxAggregateBytes, which leaves a margin under Kinesis' 1 MiB
// record limit), with the partition key and explicit hash key tables
// de-duplicated. It is not safe for concurrent use.
//
// # The consumer does not de-aggregate yet
//
// Today the consumer (pkg/ingest) hands every Kinesis record to
// schema.Decode, which rejects an aggregate ("is not valid UTF-8"): the
// whole aggregate goes to the dead-letter store at its sequence number, and
// its user records reach the table only by replaying the dead letters
// through a de-aggregating tool. The producer can already write aggregates
// (producer --aggregate). The plan below is the next step; it changes the
// reader, the positions and the commit path, and ships only with its own
// fault-injection trials.
//
// # Plan: a user record's position through the consumer
//
// A user record's position is the pair (sequence number, sub-sequence
// number). A plain record is its own user record 0. The aim is that a
// batch may end inside an aggregate and that the next batch, on this
// worker or another after a crash, fencing or lease move, starts with the
// next user record: none lost, none committed twice.
//
// Position strings. A position stays one string everywhere it travels
// today (table property, ShardRange, lease checkpoint, staged batches):
//
//	"SEQ"      every user record of Kinesis record SEQ is committed (as today)
//	"SEQ:SUB"  user records 0..SUB of aggregate SEQ are committed, later ones not
//
// Every position written so far is of the first form and keeps its
// meaning, so existing tables need no migration. The reverse does not
// hold: a consumer of today cannot resume from "SEQ:SUB" (Kinesis refuses
// it as a sequence number), so once a new consumer may write one, no old
// one may run on the table (a rolling deployment must not mix them). Order: by SEQ as a big
// integer, then "SEQ:0" < "SEQ:1" < … < "SEQ" (the whole record last).
// pkg/commit gains FormatPosition(seq, sub) and ParsePosition(pos) (seq,
// sub, whole, err); CompareSeq compares positions in that order (today a
// non-digit string sorts after all numbers, which would break fencing);
// IsSeq becomes IsPosition in ValidateRanges, in pkg/iceberg's dead-letter
// Stage check and in pkg/status.
//
// Reader (pkg/ingest reader.go). shardReader.decode tests each Kinesis
// record with IsAggregated; an aggregate is expanded with AppendDeaggregate
// (the Data slices alias the GetRecords buffer, no copy) and each user
// record is decoded and validated on its own; a rejected user record is
// dead-lettered with its own bytes and position. An aggregate that does
// not de-aggregate (bad MD5, malformed protobuf, key index out of range,
// no records) is dead-lettered whole at "SEQ" with the error as the reason
// (the KCL instead passes such a record through as a plain record; it would
// fail decoding anyway). A GetRecords answer can carry 10 MiB of aggregates,
// hundreds of thousands of user records, so the reader cuts its chunks at
// PipelineConfig.FlushRows user records: chunk.last becomes "SEQ:SUB" when
// a chunk ends inside an aggregate and "SEQ" when it ends with one. The
// pipeline still commits whole chunks, so a batch boundary is a chunk
// boundary and its position is exact. Resuming (shardReader.iterator,
// start-up, take-over, recoverMoved): after "SEQ" use AFTER_SEQUENCE_NUMBER
// as today; after "SEQ:SUB" use AT_SEQUENCE_NUMBER SEQ and drop the user
// records 0..SUB of that first record before anything else sees them. A
// shard is finished only at a whole position (a parent's last aggregate
// committed in part is not finished; its children wait).
//
// Rows and lineage (pkg/schema, pkg/iceberg). schema.Row gains
// SubSequence (-1 for a plain record). The table gains an optional long
// column sub_sequence_number, NULL for plain records, so that
// sequence_number stays the Kinesis sequence number Athena users join on
// and (shard_id, sequence_number, sub_sequence_number) names every row once.
// The table bootstrap adds the column to existing tables (Iceberg schema
// evolution; Athena reads it as NULL in older files). commit.Rejected gains
// SubSequence, and dead-letter lines carry it.
//
// Table positions and fencing (pkg/commit, pkg/iceberg). Part.After/Last
// and ShardRange.After/Last carry position strings; the sink writes
// "paystream.position.<shard>" = Last as today. The fencing checks
// (iceberg checkPositions, commit.Step's re-check, multiCommit.refuse in
// prepared.go) already compare with CompareSeq, so they fence composite
// positions once CompareSeq orders them: a zombie whose batch starts after
// "SEQ:SUB" is refused when another writer has moved the shard to any
// other position, inside or after that aggregate.
//
// Dedup window (pkg/dedup). Unchanged: it is keyed by event_id, and
// because a re-read starts after the committed user record, the records of
// a partly committed aggregate are not offered again. Copies of a user
// record (a producer that retried a whole aggregate, or put the same event
// twice in one) are dropped by event_id as today; the window rebuilt from
// the table after a fence (iceberg RecentEventIDs) reads rows, not
// positions.
//
// Lease checkpoint (pkg/lease, pkg/ingest checkpoint.go). The checkpoint
// stays informational. Store.UpdateCheckpoint and Coordinator.Checkpoint
// take the position; DynamoStore writes checkpoint = SEQ and
// checkpointSubSequenceNumber = SUB (today always 0), and for a whole
// aggregate the index of its last user record, as the KCL does, so that a
// KCL application reading the lease table resumes correctly. Lease gains
// CheckpointSubSequence; pkg/status shows it.
//
// Elsewhere. internal/chaos keys rows and sent-log lines by (shard,
// sequence, sub-sequence) (producer --sent-log already writes
// sub_sequence_number) and runs trials with producer --aggregate: kill -9
// between two batches that split one aggregate, a lease moved and a zombie
// fenced mid-aggregate, and resharding with aggregates in the parents.
// pkg/replay resumes from composite positions like the reader. Metrics:
// user records and aggregates read per shard, and de-aggregation failures.
package kpl
