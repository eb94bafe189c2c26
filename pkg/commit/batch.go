package commit

import (
	"errors"
	"fmt"
	"strconv"
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

	// ErrOutcomeUnknown means a commit attempt may have landed (a timeout,
	// a lost connection) and the table cannot tell yet. With
	// ErrPositionMoved: a position moved, but the attempt's snapshot may
	// have been expired before the outcome was checked, so it is not
	// known whether this commit or another writer moved it. The rows are
	// safe either way (the shard is re-read from the table's position);
	// the attempt's staged dead letters must be left to the maintainer's
	// sweep, not discarded.
	ErrOutcomeUnknown = errors.New("commit outcome unknown")
)

// MaxShardIDBytes bounds a shard id: Glue stores table properties as
// parameters whose keys are at most 255 bytes.
const MaxShardIDBytes = 200

// ShardRange is one shard's part of a batch: its rows have positions in
// (After, Last]. After is "" when the table has no position for the shard
// yet. Positions ("SEQ" or "SEQ:SUB") are ordered by CompareSeq.
type ShardRange struct {
	Shard string
	After string
	Last  string
}

// Batch is what one table commit appends. Records holds rows from any of
// the ranges' shards, in schema.ArrowSchema's layout or (what Step makes)
// schema.DictionaryArrowSchema's; it may be nil or
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
	Raw      []byte   // the record exactly as read
	Reasons  []string // why it was rejected, for a person
	Shard    string
	Sequence string
	// SubSequence is the user record's index in the KPL aggregate
	// Sequence, -1 for a plain record or an aggregate rejected whole.
	SubSequence int64
	ArrivedAt   time.Time // when the consumer read it
}

// Position is the rejected record's position: "SEQ" or "SEQ:SUB".
func (r *Rejected) Position() string { return FormatPosition(r.Sequence, r.SubSequence) }

// IDAt is one committed event id and when it was ingested (to rebuild a
// dedup window from the table).
type IDAt struct {
	ID string
	At time.Time
}

// A position names how far a shard's records are committed. It is one
// string wherever it travels (table property, ShardRange, lease checkpoint,
// staged batches):
//
//	"SEQ"      every user record of Kinesis record SEQ (as today)
//	"SEQ:SUB"  user records 0..SUB of KPL aggregate SEQ, later ones not
//
// SEQ is an unsigned decimal sequence number (Kinesis uses 56 digits; file
// ingest uses line numbers) and SUB a user record's index in the aggregate
// (its sub-sequence number), also decimal.

// FormatPosition returns the position of user record sub of the Kinesis
// record seq: "SEQ:SUB", or "SEQ" (the whole record) when sub is negative.
func FormatPosition(seq string, sub int64) string {
	if sub < 0 {
		return seq
	}
	return seq + ":" + strconv.FormatInt(sub, 10)
}

// ParsePosition splits a position into its sequence number and
// sub-sequence number. whole is true for "SEQ" (sub is then -1). A
// malformed position (empty, a non-decimal part, a second colon, a
// sub-sequence number too large) returns an error that says what is wrong.
func ParsePosition(pos string) (seq string, sub int64, whole bool, err error) {
	seq, subs, composite := strings.Cut(pos, ":")
	switch {
	case pos == "":
		return "", 0, false, errors.New("empty position (want SEQ or SEQ:SUB, decimal)")
	case !isDigits(seq):
		return "", 0, false, fmt.Errorf("position %q: sequence number %q is not a decimal number (want SEQ or SEQ:SUB)", pos, seq)
	case !composite:
		return seq, -1, true, nil
	case !isDigits(subs):
		return "", 0, false, fmt.Errorf("position %q: sub-sequence number %q is not a decimal number (want SEQ or SEQ:SUB)", pos, subs)
	}
	sub, err = strconv.ParseInt(subs, 10, 64)
	if err != nil {
		return "", 0, false, fmt.Errorf("position %q: sub-sequence number %q is out of range", pos, subs)
	}
	return seq, sub, false, nil
}

// CompareSeq compares two positions: -1 if a < b, 0 if equal, +1 if a > b.
// The order is by sequence number as a big integer (leading zeros
// ignored), then, within one Kinesis record, "SEQ:0" < "SEQ:1" < … < "SEQ"
// (the whole record last). "" (no position) sorts first. Strings that are
// not positions compare after all positions, bytewise.
func CompareSeq(a, b string) int {
	if a == "" || b == "" {
		return boolCmp(a != "", b != "")
	}
	sa, suba, wa, ea := ParsePosition(a)
	sb, subb, wb, eb := ParsePosition(b)
	switch {
	case (ea == nil) != (eb == nil):
		return boolCmp(ea != nil, eb != nil)
	case ea != nil:
		return strings.Compare(a, b)
	}
	if c := compareDigits(sa, sb); c != 0 {
		return c
	}
	switch {
	case wa || wb:
		return boolCmp(wa, wb)
	case suba < subb:
		return -1
	case suba > subb:
		return 1
	}
	return 0
}

// compareDigits compares two decimal strings as big integers.
func compareDigits(a, b string) int {
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

// IsPosition reports whether s is a well-formed position: "SEQ" or
// "SEQ:SUB", both decimal.
func IsPosition(s string) bool {
	_, _, _, err := ParsePosition(s)
	return err == nil
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ValidateRanges rejects malformed ranges (ErrInvalidBatch) before anything
// is written: none at all, a bad or repeated shard id, a malformed position
// (see ParsePosition), a Last not after After.
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
		case !IsPosition(r.Last):
			_, _, _, err := ParsePosition(r.Last)
			return fmt.Errorf("%w: shard %s: last: %w", ErrInvalidBatch, r.Shard, err)
		case r.After != "" && !IsPosition(r.After):
			_, _, _, err := ParsePosition(r.After)
			return fmt.Errorf("%w: shard %s: after: %w", ErrInvalidBatch, r.Shard, err)
		case r.After != "" && CompareSeq(r.Last, r.After) <= 0:
			return fmt.Errorf("%w: shard %s: last %s is not after %s", ErrInvalidBatch, r.Shard, r.Last, r.After)
		}
		seen[r.Shard] = true
	}
	return nil
}
