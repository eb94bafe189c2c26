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
// # A user record's position through the consumer
//
// The consumer (pkg/ingest) de-aggregates. A user record's position is the
// pair (sequence number, sub-sequence number); a plain record is its own
// user record. A batch may end inside an aggregate, and the next batch, on
// this worker or another after a crash, fencing or lease move, starts with
// the next user record: none lost, none committed twice.
//
// Position strings. A position stays one string everywhere it travels
// (table property, ShardRange, lease checkpoint, staged batches):
//
//	"SEQ"      every user record of Kinesis record SEQ is committed
//	"SEQ:SUB"  user records 0..SUB of aggregate SEQ are committed, later ones not
//
// Positions written before aggregates were read are of the first form and
// keep their meaning, so existing tables need no migration. The reverse
// does not hold: a consumer that predates de-aggregation cannot resume
// from "SEQ:SUB" (Kinesis refuses it as a sequence number), so once a
// de-aggregating consumer may have written one, no older one may run on
// the table (a rolling deployment must not mix them). Order: by SEQ as a
// big integer, then "SEQ:0" < "SEQ:1" < … < "SEQ" (the whole record last).
// pkg/commit has FormatPosition(seq, sub), ParsePosition(pos) (seq, sub,
// whole, err), IsPosition (used by ValidateRanges, pkg/iceberg's
// dead-letter Stage check and pkg/status) and CompareSeq, which compares
// positions in that order.
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
// hundreds of thousands of user records, so decode cuts its chunks at
// PipelineConfig.FlushRows user records: chunk.last is "SEQ:SUB" when a
// chunk ends inside an aggregate and "SEQ" when it ends with one. The
// pipeline commits whole chunks, so a batch boundary is a chunk boundary
// and its position is exact. Where a reader starts is decided by one
// function, startingPosition: after "SEQ" it reads AFTER_SEQUENCE_NUMBER;
// after "SEQ:SUB" AT_SEQUENCE_NUMBER SEQ, and decode drops user records
// 0..SUB of that first record (a reader field it consults and clears), so
// any reader that decodes through it (polling, or fan-out events turned
// into a GetRecordsOutput) resumes the same way: at start-up, take-over,
// after recoverMoved and on a renewed iterator. A shard is finished only
// at a whole position: decode's last chunk of an answer always ends with
// its last record, and the pipeline refuses to retire a shard otherwise.
// Metrics: user records, aggregates and de-aggregation failures read, per
// shard.
//
// Rows and lineage (pkg/schema, pkg/iceberg). schema.Row has SubSequence
// (-1 for a plain record). The table has an optional long column
// sub_sequence_number, NULL for plain records, so that sequence_number
// stays the Kinesis sequence number Athena users join on and (shard_id,
// sequence_number, sub_sequence_number) names every row once. EnsureTable
// adds the column to existing tables (Iceberg schema evolution; older
// files read it as NULL). commit.Rejected has SubSequence, dead-letter
// lines carry sub_sequence_number (absent for a plain record or an
// aggregate rejected whole) and staged objects are named by positions.
//
// Table positions and fencing (pkg/commit, pkg/iceberg). Part.After/Last
// and ShardRange.After/Last carry position strings; the sink writes
// "paystream.position.<shard>" = Last. The fencing checks (iceberg
// checkPositions, commit.Step's re-check, multiCommit.refuse in
// prepared.go) compare with CompareSeq, so they fence composite positions:
// a zombie whose batch starts after "SEQ:SUB" is refused when another
// writer has moved the shard to any other position, inside or after that
// aggregate.
//
// Dedup window (pkg/dedup). Unchanged: it is keyed by event_id, and
// because a re-read starts after the committed user record, the records of
// a partly committed aggregate are not offered again. Copies of a user
// record (a producer that retried a whole aggregate, or put the same event
// twice in one) are dropped by event_id; the window rebuilt from the table
// after a fence (iceberg RecentEventIDs) reads rows, not positions.
//
// Lease checkpoint (pkg/lease, pkg/ingest checkpoint.go). The checkpoint
// stays informational. Store.UpdateCheckpoint and Coordinator.Checkpoint
// take a position; DynamoStore writes checkpoint = SEQ and
// checkpointSubSequenceNumber = SUB, and the pipeline checkpoints a whole
// aggregate at the index of its last user record, as the KCL does, so that
// a KCL application reading the lease table resumes correctly.
// Lease.CheckpointSubSequence holds it; pkg/status shows it.
//
// Not yet done. internal/chaos keys rows by (shard, sequence) and does not
// run its trials with producer --aggregate (kill -9 between two batches
// that split one aggregate, a lease moved and a zombie fenced
// mid-aggregate, resharding with aggregates in the parents); the
// end-to-end test in cmd/consumer covers a SIGKILL with the table position
// inside an aggregate. pkg/replay replays dead-letter objects, not streams:
// it has no stream position to resume from, and keeps a user record's
// sub_sequence_number on the row it commits.
package kpl
