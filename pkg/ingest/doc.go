// Package ingest is the stream path of the consumer: it reads the Kinesis
// shards this worker holds leases for, batches their records and commits
// them to the Iceberg table exactly once.
//
//   - Worker (worker.go) is one consumer process. It runs a
//     lease.Coordinator (package lease: which worker reads which shard, and
//     when the children of a split or merge may be read), keeps the lease
//     table in step with the stream (lease.Sync over KinesisShards), and
//     turns lease changes into Pipeline.AddShard / RemoveShard. When it
//     holds the maintainer role (a lease.Role, one worker at a time) it
//     also runs table maintenance (snapshot expiry) every
//     MaintenanceInterval.
//   - Pipeline (pipeline.go) owns the shards being read: one reader
//     goroutine per shard (reader.go) decodes GetRecords results into
//     chunks; Run batches them across shards and commits each batch through
//     the commit step of package commit — the same step file ingest
//     (package fileingest) uses. A batch refused because another writer
//     moved a shard's position is dropped for that shard, which re-reads
//     from the table's position after its dedup window is rebuilt in the
//     background.
//   - In read mode efo (efo.go) the readers subscribe to their shards with
//     SubscribeToShard through a stream consumer named after the
//     application, instead of polling GetRecords; they hand the pipeline
//     the same chunks.
//   - Metrics (metrics.go) are the stream path's Prometheus series and the
//     once-a-minute summary log line.
//
// Configuration starts from DefaultWorkerConfig / DefaultPipelineConfig
// (the consumer's flags fill it); NewWorker and NewPipeline reject invalid
// settings with a message naming the flag. DESIGN.md beside this file draws
// the goroutines, channels and the shard state machine.
package ingest
