// Package status answers "is the consumer keeping up?" from the outside: it
// reads the lease table twice a sample apart, the stream's shards, the
// Iceberg table's positions and, for each open shard, the first record after
// the table's position, and reports per shard who owns it, whether the
// owner is alive (its lease counter moved during the sample), its state
// (reading, finished, waiting for parents, unowned, stalled) and how far
// the table is behind the stream; per worker the shards it holds; and the
// maintainer role's holder. `consumer status` prints the Report.
//
// It writes nothing: every call is a read (DynamoDB Scan, Kinesis
// ListShards, GetShardIterator and GetRecords with Limit 1, catalog
// LoadTable). Its GetRecords calls count against the shard's 5 reads per
// second, shared with the consumer, once per shard per run.
package status
