// Package commit is the one place where a batch of records becomes a table
// commit. The stream pipeline (pkg/ingest) and file ingest (pkg/fileingest)
// both hand it per-shard parts and get back either a committed batch or the
// shards whose position another writer moved; neither has its own copy of
// the ordering below.
//
// # The commit step
//
// Step.Commit, for a set of Parts (one per shard, each the records read
// after the table's position for that shard):
//
//  1. de-duplicates each part's rows against the shard's event_id window
//     (a dedup batch per shard, not yet committed to the window);
//  2. stages each part's rejected records in the dead-letter store under
//     the commit's id — before the commit, so a record never ends up
//     nowhere — and after the commit publishes them if it landed or
//     discards them if it certainly did not (pkg/iceberg DESIGN.md, "Dead
//     letters": readable exactly once);
//  3. builds one Arrow record batch of the kept rows (ingested_at set) —
//     or, for a part whose events file ingest decoded straight into the
//     columns of a batch (Part.Columns, committed alone), drops the
//     duplicates from those columns and takes that batch;
//  4. commits it with every part's ShardRange through Table.Commit — rows and
//     positions in one Iceberg commit;
//  5. on success commits each dedup batch to its window; on any failure
//     aborts them, so the window never holds an id the table does not.
//
// A *MovedError (errors.Is ErrPositionMoved) names the shards whose table
// position is no longer the part's After, with the position found: the
// caller drops those parts and re-reads them from there. Nothing was
// appended. Any other error leaves nothing committed that a later attempt
// could duplicate.
//
// # Types shared with the table
//
// ShardRange, Batch, Result, Rejected, IDAt and the sequence-number rules
// (CompareSeq, ValidateRanges) live here rather than in pkg/iceberg so that
// the stream and file paths, and their fakes, are typed without importing
// iceberg-go. pkg/iceberg implements Table and DeadLetters.
package commit
