package schema

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row is a valid event plus the lineage the consumer adds.
type Row struct {
	Event
	ShardID        string
	SequenceNumber string
	// SubSequence is the user record's index in the KPL aggregate
	// SequenceNumber (its sub-sequence number), -1 for a plain record: the
	// table column sub_sequence_number is then NULL.
	SubSequence int64
	IngestedAt  time.Time
}

// RecordBuilder accumulates rows into Arrow record batches with
// ArrowSchema's layout (NewRecordBuilder) or DictionaryArrowSchema's
// (NewDictionaryRecordBuilder). Not safe for concurrent use.
type RecordBuilder struct {
	b *array.RecordBuilder // nil for a NewDictionaryRecordBuilder
	// dense builds the other columns of a NewDictionaryRecordBuilder
	// (denseSchema's), nil otherwise.
	dense *denseColumns
	// cols[i] is the Columns index of field i of b (or of dense).
	cols []int
	// dict holds the dictionary columns of a NewDictionaryRecordBuilder,
	// nil otherwise.
	dict []*dictColumn
	rows int
	// Rows and string bytes per column of the last batch: the first
	// Append of the next batch reserves as much, so that a batch like the
	// last one grows no buffer (growing by doubling copies every buffer
	// about log2(rows) times).
	lastRows int
	lastData []int
	// Rows and string bytes per column that Grow was asked for since the
	// last NewRecordBatch.
	growRows int
	growData []int
}

// NewRecordBuilder returns a builder using mem (memory.DefaultAllocator when nil).
func NewRecordBuilder(mem memory.Allocator) *RecordBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	cols := make([]int, len(Columns))
	for i := range cols {
		cols[i] = i
	}
	return &RecordBuilder{b: array.NewRecordBuilder(mem, arrowSchema), cols: cols, lastData: make([]int, len(Columns)), growData: make([]int, len(Columns))}
}

// Append adds one row.
func (rb *RecordBuilder) Append(r *Row) {
	if rb.rows == 0 {
		rb.reserve()
	}
	if rb.dict != nil {
		rb.appendDict(r)
		return
	}
	f := rb.b.Fields()
	f[0].(*array.StringBuilder).Append(r.EventID)
	f[1].(*array.StringBuilder).Append(r.EventType)
	f[2].(*array.StringBuilder).Append(r.CustomerID)
	f[3].(*array.Decimal128Builder).Append(decimal128.FromI64(int64(r.AmountUSD)))
	f[4].(*array.StringBuilder).Append(r.Currency)
	f[5].(*array.StringBuilder).Append(r.SubscriptionTier)
	f[6].(*array.StringBuilder).Append(r.Status)
	f[7].(*array.StringBuilder).Append(r.CountryCode)
	f[8].(*array.StringBuilder).Append(r.PaymentProcessor)
	f[9].(*array.TimestampBuilder).Append(arrow.Timestamp(r.EventTS.UnixMicro()))
	f[10].(*array.StringBuilder).Append(r.ShardID)
	f[11].(*array.StringBuilder).Append(r.SequenceNumber)
	f[12].(*array.TimestampBuilder).Append(arrow.Timestamp(r.IngestedAt.UnixMicro()))
	if r.SubSequence < 0 {
		f[13].(*array.Int64Builder).AppendNull()
	} else {
		f[13].(*array.Int64Builder).Append(r.SubSequence)
	}
	rb.rows++
}

// Grow makes room for rows in every column, string bytes included, so
// that appending them (or fewer) reallocates no buffer. Arrow's builders
// otherwise grow by doubling, copying each buffer about log2(rows) times:
// for a 100,000-row batch most of the bytes a commit allocates. Calls
// before a batch's first Append add up (commit.Step calls it with each
// part's rows), and that Append allocates each buffer once.
func (rb *RecordBuilder) Grow(rows []Row) {
	if len(rows) == 0 {
		return
	}
	d := rb.growData
	for i := range rows {
		r := &rows[i]
		d[0] += len(r.EventID)
		d[1] += len(r.EventType)
		d[2] += len(r.CustomerID)
		d[4] += len(r.Currency)
		d[5] += len(r.SubscriptionTier)
		d[6] += len(r.Status)
		d[7] += len(r.CountryCode)
		d[8] += len(r.PaymentProcessor)
		d[10] += len(r.ShardID)
		d[11] += len(r.SequenceNumber)
	}
	rb.growRows += len(rows)
}

// Len is the number of rows appended since the last NewRecordBatch.
func (rb *RecordBuilder) Len() int { return rb.rows }

// NewRecordBatch returns the rows appended so far as one record batch and
// resets the builder. The caller releases the batch.
func (rb *RecordBuilder) NewRecordBatch() arrow.RecordBatch {
	rb.lastRows = rb.rows
	rows := rb.rows
	rb.rows, rb.growRows = 0, 0
	clear(rb.growData)
	if rb.dense != nil {
		rb.lastData[colEventID] = len(rb.dense.idData)
		rb.lastData[colSequenceNumber] = len(rb.dense.seqData)
		return rb.newDictRecordBatch(rows)
	}
	for i, f := range rb.b.Fields() {
		if sb, ok := f.(*array.StringBuilder); ok {
			rb.lastData[rb.cols[i]] = sb.DataLen()
		}
	}
	return rb.b.NewRecordBatch()
}

// reserve makes room for a batch the size of the last one or of the rows
// given to Grow, whichever is larger.
func (rb *RecordBuilder) reserve() {
	n := max(rb.lastRows, rb.growRows)
	if n == 0 {
		return
	}
	if rb.dense != nil {
		rb.dense.reserve(n,
			max(rb.lastData[colEventID], rb.growData[colEventID]),
			max(rb.lastData[colSequenceNumber], rb.growData[colSequenceNumber]))
		for _, d := range rb.dict {
			if cap(d.idx) < n {
				d.idx = poolSlice[int32](d.pool, n)
			}
		}
		return
	}
	for i, f := range rb.b.Fields() {
		// Resize to exactly n, not Reserve (which rounds up to a power of
		// two): NewRecordBatch trims fixed-width buffers to their length,
		// copying them again.
		if f.Cap() < n {
			f.Resize(n)
		}
		if sb, ok := f.(*array.StringBuilder); ok {
			c := rb.cols[i]
			sb.ReserveData(max(rb.lastData[c], rb.growData[c]))
		}
	}
}

// Release frees the builder's buffers.
func (rb *RecordBuilder) Release() {
	if rb.b != nil {
		rb.b.Release()
	}
}

// BuildRecordBatch is a convenience for building one batch from rows.
func BuildRecordBatch(mem memory.Allocator, rows []Row) arrow.RecordBatch {
	rb := NewRecordBuilder(mem)
	defer rb.Release()
	for i := range rows {
		rb.Append(&rows[i])
	}
	return rb.NewRecordBatch()
}
