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
package kpl
