package commit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

var (
	// ErrPositionMoved means the table's position for one of the batch's
	// shards is no longer the batch's After: another writer (a zombie, or the
	// new owner of a lost lease) committed that shard first. Nothing was
	// appended. Drop the batch and re-read the shard from the table's
	// position.
	ErrPositionMoved = errors.New("shard position in the table moved: another writer committed this shard; batch dropped")

	// ErrInvalidBatch means the batch can never be committed (a NULL or empty
	// event_id, a malformed range, a column the table lacks). A bug in the
	// caller, not a transient condition: retrying will not help.
	ErrInvalidBatch = errors.New("invalid batch")
)

// MaxShardIDBytes bounds a shard id: Glue stores table properties as
// parameters whose keys are at most 255 bytes.
const MaxShardIDBytes = 200

// ShardRange is one shard's part of a batch: its rows have sequence numbers
// in (After, Last]. After is "" when the table has no position for the shard
// yet. Sequence numbers are decimal strings compared as big integers.
type ShardRange struct {
	Shard string
	After string
	Last  string
}

// Batch is what one table commit appends. Records holds rows from any of
// the ranges' shards, in schema.ArrowSchema's layout; it may be nil or
// empty, in which case only the positions move (for example, a shard whose
// records were all rejected or duplicates). Committing does not release
// Records.
type Batch struct {
	Records arrow.RecordBatch
	Ranges  []ShardRange
	// CommitID, when set, is the commit's id (a UUID), recorded in its
	// snapshot; the dead letters staged for the batch are named by it.
	// Empty: the table makes one up.
	CommitID string
	// Staged is when the batch's first dead letter was staged (zero: none).
	// The table refuses to commit a batch staged longer ago than it
	// commits data files (iceberg.SinkConfig.MaxFileAge), so the
	// maintainer can remove pending objects older than that as never
	// landed.
	Staged time.Time
}

// Result describes a table commit that landed.
type Result struct {
	SnapshotID int64
	Rows       int64
	DataFiles  int
	Bytes      int64 // data file bytes written
	Retries    int   // attempts after the first
}

// Rejected is one record that failed decoding or validation, on its way to
// the dead-letter store.
type Rejected struct {
	Raw       []byte   // the record exactly as read
	Reasons   []string // why it was rejected, for a person
	Shard     string
	Sequence  string
	ArrivedAt time.Time // when the consumer read it
}

// IDAt is one committed event id and when it was ingested (to rebuild a
// dedup window from the table).
type IDAt struct {
	ID string
	At time.Time
}

// CompareSeq compares two sequence numbers (unsigned decimal strings, any
// length — Kinesis uses 56 digits; file ingest uses line numbers) as big
// integers: -1 if a < b, 0 if equal, +1 if a > b. Leading zeros are
// ignored; "" (no position) sorts first. Strings that are not all digits
// compare after all numbers, bytewise.
func CompareSeq(a, b string) int {
	da, db := IsSeq(a), IsSeq(b)
	switch {
	case a == "" || b == "":
		return boolCmp(a != "", b != "")
	case da != db:
		return boolCmp(!da, !db)
	case !da:
		return strings.Compare(a, b)
	}
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	default:
		return 1
	}
}

// IsSeq reports whether s is a well-formed sequence number: one or more
// decimal digits.
func IsSeq(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ValidateRanges rejects malformed ranges (ErrInvalidBatch) before anything
// is written: none at all, a bad or repeated shard id, a sequence number
// that is not decimal, a Last not after After.
func ValidateRanges(ranges []ShardRange) error {
	if len(ranges) == 0 {
		return fmt.Errorf("%w: no shard ranges (every commit moves at least one position)", ErrInvalidBatch)
	}
	seen := make(map[string]bool, len(ranges))
	for _, r := range ranges {
		switch {
		case r.Shard == "" || len(r.Shard) > MaxShardIDBytes || strings.ContainsAny(r.Shard, "\x00\n"):
			return fmt.Errorf("%w: bad shard id %q (1 to %d bytes, no NUL or newline)", ErrInvalidBatch, r.Shard, MaxShardIDBytes)
		case seen[r.Shard]:
			return fmt.Errorf("%w: shard %s appears twice", ErrInvalidBatch, r.Shard)
		case !IsSeq(r.Last):
			return fmt.Errorf("%w: shard %s: last sequence %q is not a decimal number", ErrInvalidBatch, r.Shard, r.Last)
		case r.After != "" && !IsSeq(r.After):
			return fmt.Errorf("%w: shard %s: after sequence %q is not a decimal number", ErrInvalidBatch, r.Shard, r.After)
		case r.After != "" && CompareSeq(r.Last, r.After) <= 0:
			return fmt.Errorf("%w: shard %s: last %s is not after %s", ErrInvalidBatch, r.Shard, r.Last, r.After)
		}
		seen[r.Shard] = true
	}
	return nil
}
