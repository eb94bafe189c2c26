package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Kinesis and aggregation size limits, in bytes.
const (
	// MaxRecordBytes is Kinesis' limit on one record: its data plus its
	// partition key.
	MaxRecordBytes = 1 << 20
	// MaxPartitionKeyBytes bounds a partition key: Kinesis allows 256
	// Unicode characters; this is their UTF-8 worst case.
	MaxPartitionKeyBytes = 256 * 4
	// MaxAggregateBytes is the largest limit an Aggregator takes: 1 MiB
	// less 4 KiB, a margin for the aggregate's own partition key and for
	// Kinesis counting differently from this package.
	MaxAggregateBytes = MaxRecordBytes - 4<<10
	// DefaultAggregateBytes is the KPL's default aggregate size (its
	// AggregationMaxSize, 51,200 bytes): big enough to pack a few hundred
	// small events, small enough that a full aggregate does not wait long.
	DefaultAggregateBytes = 50 << 10
	// MinAggregateBytes is the smallest limit an Aggregator takes.
	MinAggregateBytes = 256
)

// ErrTooLarge is returned by Aggregator.Add for a user record that alone
// makes an aggregate larger than the limit.
var ErrTooLarge = errors.New("user record too large for one aggregate")

// Aggregate is one packed Kinesis record.
type Aggregate struct {
	// PartitionKey and ExplicitHashKey are those of the aggregate's first
	// user record, as the KPL does; ExplicitHashKey may be "". Put the
	// aggregate with them so that it lands on the shard of its first
	// user record.
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte // magic, protobuf, MD5
	Records         int    // user records in it
}

// Aggregator packs user records into aggregates of at most a limit of
// bytes. Add records until Add reports that one does not fit (or Fits says
// so), then Flush and Add again. Not safe for concurrent use.
type Aggregator struct {
	limit int

	pkIdx, ehkIdx map[string]uint64
	pks, ehks     []string
	tables        []byte // encoded key tables (fields 1 and 2, in arrival order)
	recs          []byte // encoded records (field 3)
	n             int
	firstPK       string
	firstEHK      string
}

// NewAggregator returns an Aggregator whose aggregates, data plus the
// first user record's partition key, stay within limit bytes, between
// MinAggregateBytes and MaxAggregateBytes.
func NewAggregator(limit int) (*Aggregator, error) {
	if limit < MinAggregateBytes || limit > MaxAggregateBytes {
		return nil, fmt.Errorf("aggregate size limit %d bytes: must be between %d and %d (Kinesis' 1 MiB record limit less a margin)",
			limit, MinAggregateBytes, MaxAggregateBytes)
	}
	return &Aggregator{limit: limit, pkIdx: map[string]uint64{}, ehkIdx: map[string]uint64{}}, nil
}

// Limit returns the size limit the Aggregator was made with.
func (a *Aggregator) Limit() int { return a.limit }

// Len returns the number of user records waiting in the open aggregate.
func (a *Aggregator) Len() int { return a.n }

// Size returns the bytes the open aggregate would count against the
// limit if flushed now: data plus the first partition key; 0 when empty.
func (a *Aggregator) Size() int {
	if a.n == 0 {
		return 0
	}
	return Overhead + len(a.tables) + len(a.recs) + len(a.firstPK)
}

// grow is how many bytes adding r would add to Size.
func (a *Aggregator) grow(r UserRecord) int {
	g := 0
	if a.n == 0 {
		g += Overhead + len(r.PartitionKey)
	}
	pk, ok := a.pkIdx[r.PartitionKey]
	if !ok {
		pk = uint64(len(a.pks))
		g += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
	}
	inner := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(pk) +
		protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.Data))
	if r.ExplicitHashKey != "" {
		ehk, ok := a.ehkIdx[r.ExplicitHashKey]
		if !ok {
			ehk = uint64(len(a.ehks))
			g += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
		}
		inner += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(ehk)
	}
	return g + protowire.SizeTag(fieldRecords) + protowire.SizeBytes(inner)
}

// Fits reports whether r can join the open aggregate within the limit.
// An empty Aggregator takes any record that fits an aggregate on its own.
func (a *Aggregator) Fits(r UserRecord) bool { return a.Size()+a.grow(r) <= a.limit }

// Add appends r to the open aggregate, copying its data. It returns an
// error, adding nothing, when r's partition key is empty or too long, when
// r alone would exceed the limit (ErrTooLarge), or when r does not fit the
// open aggregate (Flush first; Fits tells beforehand). r.SubSequence is
// ignored: a record's index is its place in the aggregate.
func (a *Aggregator) Add(r UserRecord) error {
	switch {
	case r.PartitionKey == "":
		return errors.New("user record without a partition key")
	case len(r.PartitionKey) > MaxPartitionKeyBytes:
		return fmt.Errorf("partition key of %d bytes: Kinesis allows 256 characters", len(r.PartitionKey))
	}
	if !a.Fits(r) {
		if a.n == 0 {
			return fmt.Errorf("%w: %d bytes of data, the limit is %d bytes", ErrTooLarge, len(r.Data), a.limit)
		}
		return fmt.Errorf("user record of %d bytes does not fit the open aggregate (%d of %d bytes used): flush first", len(r.Data), a.Size(), a.limit)
	}
	if a.n == 0 {
		a.firstPK, a.firstEHK = r.PartitionKey, r.ExplicitHashKey
	}
	pk, ok := a.pkIdx[r.PartitionKey]
	if !ok {
		pk = uint64(len(a.pks))
		a.pkIdx[r.PartitionKey] = pk
		a.pks = append(a.pks, r.PartitionKey)
		a.tables = protowire.AppendTag(a.tables, fieldPartitionKeyTable, protowire.BytesType)
		a.tables = protowire.AppendString(a.tables, r.PartitionKey)
	}
	inner := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(pk) +
		protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.Data))
	var ehk uint64
	if r.ExplicitHashKey != "" {
		ehk, ok = a.ehkIdx[r.ExplicitHashKey]
		if !ok {
			ehk = uint64(len(a.ehks))
			a.ehkIdx[r.ExplicitHashKey] = ehk
			a.ehks = append(a.ehks, r.ExplicitHashKey)
			a.tables = protowire.AppendTag(a.tables, fieldExplicitHashKeyTable, protowire.BytesType)
			a.tables = protowire.AppendString(a.tables, r.ExplicitHashKey)
		}
		inner += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(ehk)
	}
	a.recs = protowire.AppendTag(a.recs, fieldRecords, protowire.BytesType)
	a.recs = protowire.AppendVarint(a.recs, uint64(inner))
	a.recs = protowire.AppendTag(a.recs, fieldPartitionKeyIndex, protowire.VarintType)
	a.recs = protowire.AppendVarint(a.recs, pk)
	if r.ExplicitHashKey != "" {
		a.recs = protowire.AppendTag(a.recs, fieldExplicitHashKeyIndex, protowire.VarintType)
		a.recs = protowire.AppendVarint(a.recs, ehk)
	}
	a.recs = protowire.AppendTag(a.recs, fieldData, protowire.BytesType)
	a.recs = protowire.AppendBytes(a.recs, r.Data)
	a.n++
	return nil
}

// Flush returns the open aggregate and starts a new one; ok is false when
// no record was added since the last Flush.
func (a *Aggregator) Flush() (agg Aggregate, ok bool) {
	if a.n == 0 {
		return Aggregate{}, false
	}
	data := make([]byte, 0, Overhead+len(a.tables)+len(a.recs))
	data = append(data, magic[:]...)
	data = append(data, a.tables...)
	data = append(data, a.recs...)
	sum := md5.Sum(data[magicLen:])
	data = append(data, sum[:]...)
	agg = Aggregate{PartitionKey: a.firstPK, ExplicitHashKey: a.firstEHK, Data: data, Records: a.n}

	clear(a.pkIdx)
	clear(a.ehkIdx)
	a.pks, a.ehks = a.pks[:0], a.ehks[:0]
	a.tables, a.recs = a.tables[:0], a.recs[:0]
	a.n = 0
	a.firstPK, a.firstEHK = "", ""
	return agg, true
}
