// Package ingest is the consumer side of the stream: it reads the Kinesis
// shards this worker holds leases for and feeds the Iceberg sink.
//
// Leases — which worker reads which shard, and when the children of a split
// or merge may be read — are package lease: a Worker runs a
// lease.Coordinator, starts a shard's reader when its lease is acquired and
// stops it when the lease is lost.
package ingest
