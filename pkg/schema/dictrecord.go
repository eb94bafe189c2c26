package schema

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// DictionaryColumns are the string columns whose values repeat from row
// to row (the decoder returns most of them as shared constants or
// interned strings). A NewDictionaryRecordBuilder builds them as
// dictionary arrays.
var DictionaryColumns = []string{
	ColEventType, ColCustomerID, ColCurrency, ColSubscriptionTier, ColStatus,
	ColCountryCode, ColPaymentProcessor, ColShardID,
}

// dictIndexType is the index type of the dictionary columns.
var dictIndexType = arrow.PrimitiveTypes.Int32

var dictionaryArrowSchema = func() *arrow.Schema {
	fields := arrowSchema.Fields()
	for i := range fields {
		if isDictionaryColumn(fields[i].Name) {
			fields[i].Type = &arrow.DictionaryType{IndexType: dictIndexType, ValueType: arrow.BinaryTypes.String}
		}
	}
	return arrow.NewSchema(fields, nil)
}()

// denseSchema is the columns a NewDictionaryRecordBuilder builds with
// Arrow's builders.
var denseSchema = func() *arrow.Schema {
	var fields []arrow.Field
	for _, f := range arrowSchema.Fields() {
		if !isDictionaryColumn(f.Name) {
			fields = append(fields, f)
		}
	}
	return arrow.NewSchema(fields, nil)
}()

func isDictionaryColumn(name string) bool {
	for _, c := range DictionaryColumns {
		if c == name {
			return true
		}
	}
	return false
}

// DictionaryArrowSchema returns the Arrow schema of record batches built
// by a NewDictionaryRecordBuilder: ArrowSchema with the DictionaryColumns
// as dictionary<int32, utf8>. The values are the same.
func DictionaryArrowSchema() *arrow.Schema { return dictionaryArrowSchema }

// NewDictionaryRecordBuilder returns a builder whose record batches have
// DictionaryArrowSchema's layout: each of the DictionaryColumns is a
// dictionary array holding the batch's distinct values in the order first
// seen, and indices. It copies each distinct value once per batch instead
// of every value of every row, and a Parquet writer fed its batches writes
// the indices without hashing the values (pkg/iceberg's data file writer).
// Most values the decoder returns are shared strings, which the builder
// recognises by address before it looks them up by content.
func NewDictionaryRecordBuilder(mem memory.Allocator) *RecordBuilder {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	rb := &RecordBuilder{
		b:        array.NewRecordBuilder(mem, denseSchema),
		lastData: make([]int, len(Columns)),
		growData: make([]int, len(Columns)),
	}
	for i, c := range Columns {
		if isDictionaryColumn(c.Name) {
			rb.dict = append(rb.dict, &dictColumn{col: i, mem: mem, index: map[string]int32{}})
		} else {
			rb.cols = append(rb.cols, i)
		}
	}
	return rb
}

// dictColumn builds one dictionary column of a batch.
type dictColumn struct {
	col    int // Columns index
	mem    memory.Allocator
	idx    []int32
	index  map[string]int32
	values []string
	bytes  int // of values
	// cache maps a string's address and length to its index: a hit
	// needs no hash of the value. Entries hold the string's memory, so an
	// address cannot be reused for another value while cached.
	cache [64]struct {
		p *byte
		n int
		k int32
	}
}

func (d *dictColumn) add(v string) {
	p := unsafe.StringData(v)
	e := &d.cache[(uint64(uintptr(unsafe.Pointer(p)))*0x9e3779b97f4a7c15)>>58]
	if e.p == p && e.n == len(v) && p != nil {
		d.idx = append(d.idx, e.k)
		return
	}
	k, ok := d.index[v]
	if !ok {
		k = int32(len(d.values))
		d.index[v] = k
		d.values = append(d.values, v)
		d.bytes += len(v)
	}
	e.p, e.n, e.k = p, len(v), k
	d.idx = append(d.idx, k)
}

// array returns the column's dictionary array and starts the next batch.
func (d *dictColumn) array() arrow.Array {
	vb := array.NewStringBuilder(d.mem)
	vb.Reserve(len(d.values))
	vb.ReserveData(d.bytes)
	for _, v := range d.values {
		vb.Append(v)
	}
	values := vb.NewArray()
	vb.Release()
	idx := array.NewData(dictIndexType, len(d.idx),
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(d.idx))}, nil, 0, 0)
	indices := array.MakeFromData(idx)
	idx.Release()
	out := array.NewDictionaryArray(dictionaryArrowSchema.Field(d.col).Type, indices, values)
	indices.Release()
	values.Release()
	// The index slice now belongs to the array; the next batch gets its own.
	d.idx = make([]int32, 0, len(d.idx))
	clear(d.index)
	clear(d.values)
	d.values, d.bytes = d.values[:0], 0
	d.cache = [64]struct {
		p *byte
		n int
		k int32
	}{}
	return out
}

// appendDict is Append for a NewDictionaryRecordBuilder.
func (rb *RecordBuilder) appendDict(r *Row) {
	f := rb.b.Fields()
	f[0].(*array.StringBuilder).Append(r.EventID)
	f[1].(*array.Decimal128Builder).Append(decimal128.FromI64(int64(r.AmountUSD)))
	f[2].(*array.TimestampBuilder).Append(arrow.Timestamp(r.EventTS.UnixMicro()))
	f[3].(*array.StringBuilder).Append(r.SequenceNumber)
	f[4].(*array.TimestampBuilder).Append(arrow.Timestamp(r.IngestedAt.UnixMicro()))
	if r.SubSequence < 0 {
		f[5].(*array.Int64Builder).AppendNull()
	} else {
		f[5].(*array.Int64Builder).Append(r.SubSequence)
	}
	d := rb.dict
	d[0].add(r.EventType)
	d[1].add(r.CustomerID)
	d[2].add(r.Currency)
	d[3].add(r.SubscriptionTier)
	d[4].add(r.Status)
	d[5].add(r.CountryCode)
	d[6].add(r.PaymentProcessor)
	d[7].add(r.ShardID)
	rb.rows++
}

// newDictRecordBatch assembles the dense and dictionary columns of a
// NewDictionaryRecordBuilder's batch of rows rows.
func (rb *RecordBuilder) newDictRecordBatch(rows int) arrow.RecordBatch {
	dense := rb.b.NewRecordBatch()
	defer dense.Release()
	cols := make([]arrow.Array, len(Columns))
	for i, c := range rb.cols {
		cols[c] = dense.Column(i)
	}
	owned := make([]arrow.Array, len(rb.dict))
	for i, d := range rb.dict {
		owned[i] = d.array()
		cols[d.col] = owned[i]
	}
	out := array.NewRecordBatch(dictionaryArrowSchema, cols, int64(rows))
	for _, a := range owned {
		a.Release()
	}
	return out
}
