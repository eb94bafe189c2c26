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
	IngestedAt     time.Time
}

// RecordBuilder accumulates rows into Arrow record batches with
// ArrowSchema's layout. Not safe for concurrent use.
type RecordBuilder struct {
	b    *array.RecordBuilder
	rows int
	// Rows and string bytes per column of the last batch: the first
	// Append of the next batch reserves as much, so that a batch like the
	// last one grows no buffer (growing by doubling copies every buffer
	// about log2(rows) times).
	lastRows int
	lastData []int
}

// NewRecordBuilder returns a builder using mem (memory.DefaultAllocator when nil).
func NewRecordBuilder(mem memory.Allocator) *RecordBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &RecordBuilder{b: array.NewRecordBuilder(mem, arrowSchema), lastData: make([]int, len(Columns))}
}

// Append adds one row.
func (rb *RecordBuilder) Append(r *Row) {
	if rb.rows == 0 && rb.lastRows > 0 {
		rb.reserve()
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
	rb.rows++
}

// Len is the number of rows appended since the last NewRecordBatch.
func (rb *RecordBuilder) Len() int { return rb.rows }

// NewRecordBatch returns the rows appended so far as one record batch and
// resets the builder. The caller releases the batch.
func (rb *RecordBuilder) NewRecordBatch() arrow.RecordBatch {
	rb.lastRows = rb.rows
	for i, f := range rb.b.Fields() {
		if sb, ok := f.(*array.StringBuilder); ok {
			rb.lastData[i] = sb.DataLen()
		}
	}
	rb.rows = 0
	return rb.b.NewRecordBatch()
}

// reserve makes room for a batch the size of the last one.
func (rb *RecordBuilder) reserve() {
	rb.b.Reserve(rb.lastRows)
	for i, f := range rb.b.Fields() {
		if sb, ok := f.(*array.StringBuilder); ok {
			sb.ReserveData(rb.lastData[i])
		}
	}
}

// Release frees the builder's buffers.
func (rb *RecordBuilder) Release() { rb.b.Release() }

// BuildRecordBatch is a convenience for building one batch from rows.
func BuildRecordBatch(mem memory.Allocator, rows []Row) arrow.RecordBatch {
	rb := NewRecordBuilder(mem)
	defer rb.Release()
	for i := range rows {
		rb.Append(&rows[i])
	}
	return rb.NewRecordBatch()
}
