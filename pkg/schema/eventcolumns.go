package schema

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// EventColumns builds the record batch of one source's events straight
// from their JSON: Decode validates a record and appends its values to
// the columns of a NewDictionaryRecordBuilder's batch, with no Row and no
// string per event in between. event_id goes from the record into the
// column's buffer; customer_id is looked up in its dictionary by its
// bytes and copied only when it is new to the batch. Every row has the
// same shard_id, a sequence_number given as a number, a NULL
// sub_sequence_number and the ingested_at NewRecordBatch is given.
//
// It is file ingest's batch (pkg/fileingest); the stream path, whose
// batches mix shards and hold KPL sub-sequences, builds Rows. One
// goroutine uses it at a time.
type EventColumns struct {
	rb    *RecordBuilder
	shard string
	// customers holds the batch's distinct customer_ids (the dictionary's
	// keys); a new arena for each batch.
	customers IDArena
}

// NewEventColumns returns an empty EventColumns whose arrays use mem
// (memory.DefaultAllocator when nil).
func NewEventColumns(mem memory.Allocator) *EventColumns {
	rb := NewDictionaryRecordBuilder(mem)
	pool := &slicePool{}
	rb.dense.pool = pool
	for _, d := range rb.dict {
		d.pool = pool
	}
	return &EventColumns{rb: rb}
}

// Begin starts a batch of shard's events, with room for about rows of
// them. It discards rows of a batch not yet taken by NewRecordBatch.
func (b *EventColumns) Begin(shard string, rows int) {
	if b.rb.rows > 0 {
		b.NewRecordBatch(time.Time{}).Release()
	}
	b.shard = shard
	rb := b.rb
	rb.growRows = rows
	// Room for the strings too, guessed for the first batch (later ones
	// take the last batch's sizes): a UUID-long event_id, a ten-digit
	// sequence number. Growing them by doubling instead copies each
	// about log2(rows) times.
	if rb.lastRows == 0 {
		rb.growData[colEventID] = rows * guessIDBytes
		rb.growData[colSequenceNumber] = rows * guessSeqBytes
	}
}

// The string bytes per row Begin reserves for a first batch.
const (
	guessIDBytes  = 36
	guessSeqBytes = 10
)

// Shard is the shard_id of the batch's rows.
func (b *EventColumns) Shard() string { return b.shard }

// Len is the number of rows in the batch; 0 for a nil EventColumns.
func (b *EventColumns) Len() int {
	if b == nil {
		return 0
	}
	return b.rb.rows
}

// Decode validates raw as Decode does. A valid event is appended to the
// batch with sequence_number seq (in decimal) and nil returned; otherwise
// Decode's error is returned and nothing appended.
func (b *EventColumns) Decode(raw []byte, now time.Time, seq int64) error {
	var c checker
	e, id, customer, ok := c.fields(raw, now)
	if !ok {
		// Not valid JSON: decodeReference has encoding/json's message, as
		// Decode returns it (and its event, should it ever accept one).
		ref, err := decodeReference(raw, now)
		if err != nil {
			return err
		}
		e, id, customer = ref, []byte(ref.EventID), []byte(ref.CustomerID)
	} else if len(c.problems) > 0 {
		return &InvalidError{c.problems}
	}
	b.rb.appendDecoded(&e, id, customer, b.shard, seq, &b.customers)
	return nil
}

// EventID returns row i's event_id. The string shares the batch's
// memory: it is valid until the next Decode, Drop or NewRecordBatch.
func (b *EventColumns) EventID(i int) string {
	c := b.rb.dense
	start, end := c.idOff[i], c.idOff[i+1]
	if start == end {
		return ""
	}
	return unsafe.String(&c.idData[start], int(end-start))
}

// Drop removes the rows i for which drop[i] is true (drop has Len
// entries), keeping the others in order, and returns how many it
// removed. A dictionary keeps only the values of the rows left, so the
// Parquet statistics taken from it stay exact.
func (b *EventColumns) Drop(drop []bool) int {
	if len(drop) != b.rb.rows {
		panic(fmt.Sprintf("schema: Drop of %d rows from a batch of %d", len(drop), b.rb.rows))
	}
	n := 0
	for _, d := range drop {
		if d {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	c := b.rb.dense
	c.idData, c.idOff = keepStrings(c.idData, c.idOff, drop)
	c.seqData, c.seqOff = keepStrings(c.seqData, c.seqOff, drop)
	c.amount = keepValues(c.amount, drop)
	c.eventTS = keepValues(c.eventTS, drop)
	for _, d := range b.rb.dict {
		d.idx = keepValues(d.idx, drop)
		d.compact()
	}
	b.rb.rows -= n
	return n
}

// NewRecordBatch returns the batch's rows as one record batch with
// DictionaryArrowSchema's layout, ingested_at set to ingestedAt, and
// starts an empty batch of the same shard. The caller releases it.
func (b *EventColumns) NewRecordBatch(ingestedAt time.Time) arrow.RecordBatch {
	rb := b.rb
	c, n := rb.dense, rb.rows
	us := ingestedAt.UnixMicro()
	c.ingestedAt = c.ingestedAt[:0]
	for range n {
		c.ingestedAt = append(c.ingestedAt, us)
	}
	// Every sub_sequence_number is NULL: zero values, a zero bitmap.
	c.subSeq = zeros(c.subSeq, n)
	c.subSeqValid = zeros(c.subSeqValid, int(bitutil.BytesForBits(int64(n))))
	c.subSeqNulls = n
	b.customers = IDArena{}
	return rb.NewRecordBatch()
}

// Release frees the builder's buffers.
func (b *EventColumns) Release() { b.rb.Release() }

// appendDecoded appends a valid event whose event_id and customer_id are
// given as bytes (copied here), with the lineage of a file row: shard,
// sequence number seq, no sub-sequence. ingested_at and the NULL
// sub-sequences are filled in by EventColumns.NewRecordBatch.
func (rb *RecordBuilder) appendDecoded(e *Event, id, customer []byte, shard string, seq int64, customers *IDArena) {
	if rb.rows == 0 {
		rb.reserve()
	}
	c := rb.dense
	if c.idOff == nil { // no reserve: grow as the rows come
		c.idOff, c.seqOff = []int32{0}, []int32{0}
	}
	c.idData = append(c.idData, id...)
	c.idOff = append(c.idOff, int32(len(c.idData)))
	c.amount = append(c.amount, decimal128.FromI64(int64(e.AmountUSD)))
	c.eventTS = append(c.eventTS, e.EventTS.UnixMicro())
	c.seqData = strconv.AppendInt(c.seqData, seq, 10)
	c.seqOff = append(c.seqOff, int32(len(c.seqData)))
	d := rb.dict
	d[0].add(e.EventType)
	d[1].addBytes(customer, customers)
	d[2].add(e.Currency)
	d[3].add(e.SubscriptionTier)
	d[4].add(e.Status)
	d[5].add(e.CountryCode)
	d[6].add(e.PaymentProcessor)
	d[7].add(shard)
	rb.rows++
}

// addBytes is add for a value given as bytes that change after the call:
// it is looked up by content, and copied into arena when new.
// Its values are looked up in d.byBytes, not d.index.
func (d *dictColumn) addBytes(v []byte, arena *IDArena) {
	k, slot, tag := d.byBytes.find(v, d.values)
	if k < 0 {
		s, _ := arena.join(v, nil)
		k = int32(len(d.values))
		d.values = append(d.values, s)
		d.bytes += len(s)
		d.byBytes.insert(slot, tag, k, d.values)
	}
	d.idx = append(d.idx, k)
}

// compact drops the dictionary's values no index refers to and renumbers
// the indices, keeping the values' order.
func (d *dictColumn) compact() {
	newIndex := make([]int32, len(d.values))
	for i := range newIndex {
		newIndex[i] = -1
	}
	for _, k := range d.idx {
		newIndex[k] = 0
	}
	kept := d.values[:0]
	d.bytes = 0
	clear(d.index)
	for i, v := range d.values {
		if newIndex[i] < 0 {
			continue
		}
		newIndex[i] = int32(len(kept))
		d.index[v] = newIndex[i]
		kept = append(kept, v)
		d.bytes += len(v)
	}
	clear(d.values[len(kept):])
	d.values = kept
	for i, k := range d.idx {
		d.idx[i] = newIndex[k]
	}
	if len(d.byBytes.slots) > 0 {
		d.byBytes.rebuild(d.values, len(d.byBytes.slots))
	}
	d.cache = [64]struct {
		p *byte
		n int
		k int32
	}{}
}

// zeros returns n zero values in s's memory when it has room.
func zeros[T any](s []T, n int) []T {
	s = slices.Grow(s[:0], n)[:n]
	clear(s)
	return s
}

// keepValues returns s without the elements whose drop is true, in s's
// memory.
func keepValues[T any](s []T, drop []bool) []T {
	out := s[:0]
	for i, v := range s {
		if !drop[i] {
			out = append(out, v)
		}
	}
	return out
}

// keepStrings is keepValues for a string column's data and offsets (which
// start with a leading 0).
func keepStrings(data []byte, off []int32, drop []bool) ([]byte, []int32) {
	outData, outOff := data[:0], off[:1]
	for i := range drop {
		if drop[i] {
			continue
		}
		outData = append(outData, data[off[i]:off[i+1]]...) // never ahead of the read position
		outOff = append(outOff, int32(len(outData)))
	}
	return outData, outOff
}
