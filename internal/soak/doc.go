// Package soak runs the pipeline in compressed time: two real consumers on
// a four-shard stream with a 250 ms flush interval and a short maintenance
// interval, fed by the real producer at a steady rate, until the table has
// taken SOAK_COMMITS commits (default 20,000). Each tenth of the run prints
// one line: commit latency p50/p99 (from the consumers' commit-duration
// histogram deltas), commits/s, the newest metadata.json size and the
// number of metadata.json files in the warehouse, live data files, the time of an analyst query through the query binary and each
// worker's RSS. At the end the producer stops, StreamIDs reads every shard
// of the stream back from TRIM_HORIZON, the consumers drain and the table
// must hold exactly the distinct valid event ids the stream holds (Exact;
// the producer's sent log is only reported, since a call that lands as the
// producer is stopped can be missing from it); Evaluate then turns the
// slices into PASS/FAIL verdicts (see Limits).
//
// The run is TestSoak, gated by SOAK=1 (make soak). SOAK_CATALOG=glue runs it
// on the Glue catalog with an S3 warehouse in moto instead of SQLite and
// local files; SOAK_COMMIT_MODE=single runs the consumers with
// --commit-mode single (one committer per table).
package soak
