// Package scalebench measures several workers committing to one Iceberg
// table (make bench-scale). An Iceberg table has one compare-and-swap, so
// W workers that each commit every flush conflict more as W grows; this
// benchmark puts numbers on it.
//
// For each worker count W the run (TestScale, gated by BENCH_SCALE=1)
// starts a fresh stream of BENCH_SCALE_SHARDS shards in kinesistest
// (in-process Kinesis), a fresh SQLite catalog and local warehouse, and a
// lease table in moto's DynamoDB; it starts W ingest.Workers in this
// process, each with its own catalog connection wrapped in a DelayCatalog
// that waits BENCH_SCALE_COMMIT_DELAY before every CommitTable (a stand-in
// for Glue's GetTable, the metadata PutObject and UpdateTable). Workers run
// with their defaults (1 s flush) and maintenance off, so every snapshot of
// a run is a data commit. Once the
// leases are spread evenly, the producer sends BENCH_SCALE_RATE events/s
// across the shards for BENCH_SCALE_SECONDS; then the workers drain, stop,
// and the table must hold every produced event_id exactly once.
//
// Per W it reports table commits/s (snapshots made while the producer
// ran), commit attempts/s (CommitTable calls), conflicts/s (the sinks'
// paystream_sink_commit_conflicts_total), events/s committed, freshness
// p50/p99 (the workers' paystream_ingest_freshness_seconds: Kinesis
// arrival to commit, interpolated within the histogram's buckets) and the
// time the backlog took to drain after the producer stopped. With
// BENCH_SCALE_SKIP=S it reports freshness a second time ("steady") over
// the events committed after the producer's first S seconds, so a tail
// from the start of a run (a lease still moving, the committer role being
// taken) is told apart from the steady state; the first pair still covers
// every event. BENCH_SCALE_LOG=FILE writes the workers' debug logs as JSON
// lines: per batch, when it was prepared, staged, settled by the
// committer and seen settled ("staged batch settled"), each committer
// round's steps ("committer round") and each flush's oldest record
// ("batch committed").
//
// The commit mode is applied in one place, configureMode; everything else
// is the same for every mode.
package scalebench
