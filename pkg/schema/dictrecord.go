package schema

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
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
		dense:    &denseColumns{},
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
	col  int // Columns index
	mem  memory.Allocator
	pool *slicePool // of idx, as denseColumns.pool
	// byBytes indexes values for addBytes (EventColumns), in place of
	// index.
	byBytes bytesTable
	idx     []int32
	index   map[string]int32
	values  []string
	bytes   int // of values
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
	var ib *memory.Buffer
	if d.pool != nil {
		ib = memory.NewBufferWithAllocator(sliceBytes(d.idx), d.pool)
	} else {
		ib = memory.NewBufferBytes(sliceBytes(d.idx))
	}
	idx := array.NewData(dictIndexType, len(d.idx), []*memory.Buffer{nil, ib}, nil, 0, 0)
	ib.Release() // idx holds its own reference
	indices := array.MakeFromData(idx)
	idx.Release()
	out := array.NewDictionaryArray(dictionaryArrowSchema.Field(d.col).Type, indices, values)
	indices.Release()
	values.Release()
	// The index slice now belongs to the array; the next batch gets its
	// own (from the pool, when the column has one: at reserve).
	if d.pool != nil {
		d.idx = nil
	} else {
		d.idx = make([]int32, 0, len(d.idx))
	}
	clear(d.index)
	d.byBytes.reset()
	clear(d.values)
	d.values, d.bytes = d.values[:0], 0
	d.cache = [64]struct {
		p *byte
		n int
		k int32
	}{}
	return out
}

// Columns indices of the string columns a denseColumns builds (Grow
// counts their bytes under the same indices).
const (
	colEventID        = 0
	colSequenceNumber = 11
)

// denseColumns builds the columns of a NewDictionaryRecordBuilder that
// are not dictionaries (denseSchema's, in its order) straight into Go
// slices, which become the arrays' buffers: no builder per value, no
// validity bitmap for columns that cannot be NULL. Each batch gets its
// own slices, sized by reserve (the arrays keep the old ones): new
// memory, or with a pool the memory of a batch already released.
type denseColumns struct {
	// pool, when set, holds the memory of the slices (EventColumns):
	// the arrays give it back when released. Nil: new memory each batch.
	pool            *slicePool
	idOff, seqOff   []int32 // string offsets; start with the leading 0
	idData, seqData []byte
	amount          []decimal128.Num
	eventTS         []int64 // microseconds
	ingestedAt      []int64
	subSeq          []int64 // 0 where NULL
	subSeqValid     []byte  // validity bitmap of subSeq
	subSeqNulls     int
}

// reserve gives the next batch new slices with room for rows rows and
// idBytes and seqBytes of strings.
func (c *denseColumns) reserve(rows, idBytes, seqBytes int) {
	p := c.pool
	*c = denseColumns{
		pool:        p,
		idOff:       append(poolSlice[int32](p, rows+1), 0),
		seqOff:      append(poolSlice[int32](p, rows+1), 0),
		idData:      poolSlice[byte](p, idBytes),
		seqData:     poolSlice[byte](p, seqBytes),
		amount:      poolSlice[decimal128.Num](p, rows),
		eventTS:     poolSlice[int64](p, rows),
		ingestedAt:  poolSlice[int64](p, rows),
		subSeq:      poolSlice[int64](p, rows),
		subSeqValid: poolSlice[byte](p, int(bitutil.BytesForBits(int64(rows)))),
	}
}

// buffer wraps b as an array buffer; with a pool, releasing the buffer
// gives b back to it.
func (c *denseColumns) buffer(b []byte) *memory.Buffer {
	if c.pool != nil {
		return memory.NewBufferWithAllocator(b, c.pool)
	}
	return memory.NewBufferBytes(b)
}

func (c *denseColumns) append(r *Row) {
	if c.idOff == nil { // no reserve: grow as the rows come
		c.idOff, c.seqOff = []int32{0}, []int32{0}
	}
	c.idData = append(c.idData, r.EventID...)
	c.idOff = append(c.idOff, int32(len(c.idData)))
	c.amount = append(c.amount, decimal128.FromI64(int64(r.AmountUSD)))
	c.eventTS = append(c.eventTS, r.EventTS.UnixMicro())
	c.seqData = append(c.seqData, r.SequenceNumber...)
	c.seqOff = append(c.seqOff, int32(len(c.seqData)))
	c.ingestedAt = append(c.ingestedAt, r.IngestedAt.UnixMicro())
	i := len(c.subSeq)
	if i%8 == 0 {
		c.subSeqValid = append(c.subSeqValid, 0)
	}
	if r.SubSequence < 0 {
		c.subSeq = append(c.subSeq, 0)
		c.subSeqNulls++
	} else {
		c.subSeq = append(c.subSeq, r.SubSequence)
		c.subSeqValid[i/8] |= 1 << (i % 8)
	}
}

// arrays returns the batch's columns in denseSchema's order and leaves c
// empty; the arrays own the slices.
func (c *denseColumns) arrays() []arrow.Array {
	n := len(c.eventTS)
	if c.idOff == nil {
		c.idOff, c.seqOff = []int32{0}, []int32{0}
	}
	f := denseSchema.Fields()
	var validity *memory.Buffer
	if c.subSeqNulls > 0 {
		validity = c.buffer(c.subSeqValid)
	}
	out := []arrow.Array{
		newArray(f[0].Type, n, nil, 0, c.buffer(sliceBytes(c.idOff)), c.buffer(c.idData)),
		newArray(f[1].Type, n, nil, 0, c.buffer(sliceBytes(c.amount))),
		newArray(f[2].Type, n, nil, 0, c.buffer(sliceBytes(c.eventTS))),
		newArray(f[3].Type, n, nil, 0, c.buffer(sliceBytes(c.seqOff)), c.buffer(c.seqData)),
		newArray(f[4].Type, n, nil, 0, c.buffer(sliceBytes(c.ingestedAt))),
		newArray(f[5].Type, n, validity, c.subSeqNulls, c.buffer(sliceBytes(c.subSeq))),
	}
	*c = denseColumns{pool: c.pool}
	return out
}

// newArray makes an array of type dt and length n: a validity bitmap
// (nil for none) with its NULL count, then the type's buffers. The array
// takes the buffers' references.
func newArray(dt arrow.DataType, n int, validity *memory.Buffer, nulls int, bufs ...*memory.Buffer) arrow.Array {
	all := make([]*memory.Buffer, 0, 1+len(bufs))
	all = append(all, validity)
	all = append(all, bufs...)
	data := array.NewData(dt, n, all, nil, nulls, 0)
	for _, b := range all {
		if b != nil {
			b.Release() // data holds its own reference
		}
	}
	defer data.Release()
	return array.MakeFromData(data)
}

// appendDict is Append for a NewDictionaryRecordBuilder.
func (rb *RecordBuilder) appendDict(r *Row) {
	rb.dense.append(r)
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
	cols := make([]arrow.Array, len(Columns))
	for i, a := range rb.dense.arrays() {
		cols[rb.cols[i]] = a
	}
	for _, d := range rb.dict {
		cols[d.col] = d.array()
	}
	out := array.NewRecordBatch(dictionaryArrowSchema, cols, int64(rows))
	for _, a := range cols {
		a.Release()
	}
	return out
}
