// Package replay sends dead letters through the current decoder and
// validation again and commits those that now pass, exactly once, through
// the one commit step (pkg/commit). It is what "consumer
// replay-dead-letters" runs after a decoder fix.
//
// # Exactly once, resumable
//
// The unit of replay is one published dead-letter object. Its position key
// in the table is iceberg.ReplaySourcePrefix plus a hash of the object's
// bytes, and its "sequence numbers" are the object's line numbers, as file
// ingest keys a file by its content hash (pkg/fileingest). One commit moves
// the key to the object's last line together with the rows that now pass,
// so a second run, or a run resumed after a crash, never commits them
// again. Rows keep the lineage of the original record (its stream shard
// and sequence number).
//
// # What still fails
//
// After the commit the object is rewritten whole (atomic) with only the
// records that still fail, each with the reasons the current decoder
// gives; an object with none left is removed. The rewritten object has new
// bytes and so a new key: a later run with a newer decoder tries those
// records again, and a run that finds nothing new to pass commits nothing.
// An object whose key an earlier run committed but that was not rewritten
// (a crash in between) is only rewritten. That resume assumes the decoder
// did not change between the interrupted run and the next one.
//
// Replay does not de-duplicate against the stream: an event that was
// rejected and later sent again in a valid form is stored twice. Copies
// within one object are de-duplicated.
package replay
