// Package fileingest loads NDJSON files (producer --output, exports,
// replays) into the payment table through the same decode → validate →
// dedup → dead letters → commit step as the stream (package commit); it is
// what `consumer ingest-file` runs.
//
// A file is one "shard" of the table's position protocol. Its shard id is
// "file-b3-" + the first 128 bits of the BLAKE3 hash of its content
// (SourceID), so the same bytes get the same id whatever their name or
// whether they came on standard input (content committed by earlier
// versions, under "file-" + 128 bits of its SHA-256, keeps that id); its
// sequence numbers are line numbers (1-based). Every commit moves the
// file's position to the last line it covers, in the same Iceberg commit
// as the rows, so re-running on the same file adds nothing
// and an interrupted run resumes after the last committed line. Rows carry
// shard_id = the file's id and sequence_number = its line number.
//
// Lines already committed by an earlier run are not written again, but
// still pass through the dedup window, so a resumed run drops later copies
// of ids committed before the interruption. A progress bar (Config.Progress)
// is redrawn on a terminal.
package fileingest
