package schema

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/paystream/paystream/internal/cputime"
)

// lowCardinality are the string columns whose values repeat from row to
// row; the Parquet writer keeps a dictionary for each of them.
var lowCardinality = []string{
	ColEventType, ColCustomerID, ColCurrency, ColSubscriptionTier, ColStatus,
	ColCountryCode, ColPaymentProcessor, ColShardID,
}

// BenchmarkParquetWrite measures arrow-go's Parquet writer on one
// 100,000-row batch of generated events, with the writer settings
// iceberg-go v0.7.0 derives from the table's properties (zstd level 1,
// 1 MiB pages, data page v2, dictionaries except for event_id,
// sequence_number and event_ts, cost-based dictionary fall-back on every
// column): "dense" is the batch as RecordBuilder makes it (what the table
// writer is handed today), "dictionary" the same batch with the eight
// low-cardinality string columns as dictionary arrays, which pqarrow writes
// as dictionary indices without hashing each value. "build-dictionary" is
// what making those dictionary columns from the rows costs (a map lookup
// per value, in one pass over the rows), "build-dictionary-cached" the
// same with an address cache in front of the map; dense minus dictionary
// minus a build is what handing the writer dictionaries would save.
//
// iceberg-go's table writer casts dictionary columns back to plain strings
// before the Parquet writer sees them (toRequestedSchema), so today only a
// writer of our own could take the "dictionary" path. Run with GOMAXPROCS=1
// (cpu-ns/event then counts the one core, garbage collection included).
func BenchmarkParquetWrite(b *testing.B) {
	const n = 100_000
	rows := generatedRows(n)
	dense := BuildRecordBatch(memory.DefaultAllocator, rows)
	defer dense.Release()
	dict := withDictionaries(dense, rows, lowCardinality)
	defer dict.Release()

	for _, bc := range []struct {
		name string
		rec  arrow.RecordBatch
	}{{"dense", dense}, {"dictionary", dict}} {
		b.Run(bc.name, func(b *testing.B) {
			var out bytes.Buffer
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for b.Loop() {
				out.Reset()
				writeParquet(b, &out, bc.rec)
			}
			reportPerEvent(b, n, cputime.Process()-cpu0)
			b.ReportMetric(float64(out.Len())/n, "bytes/event")
		})
	}
	for _, bc := range []struct {
		name   string
		cached bool
	}{{"build-dictionary", false}, {"build-dictionary-cached", true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for b.Loop() {
				buildDictionaries(dense, rows, lowCardinality, bc.cached).Release()
			}
			reportPerEvent(b, n, cputime.Process()-cpu0)
		})
	}
}

// reportPerEvent reports wall-clock and CPU (process user + system, which
// a shared machine disturbs less) nanoseconds per event of a benchmark
// whose iterations handle n events each.
func reportPerEvent(b *testing.B, n int, cpu time.Duration) {
	events := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(float64(cpu.Nanoseconds())/events, "cpu-ns/event")
}

// TestParquetWriteDictionarySameValues checks that the benchmark's two
// batches hold the same values: the dictionary columns decode to the
// dense ones.
func TestParquetWriteDictionarySameValues(t *testing.T) {
	rows := generatedRows(5000)
	dense := BuildRecordBatch(memory.DefaultAllocator, rows)
	defer dense.Release()
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			dict := buildDictionaries(dense, rows, lowCardinality, cached)
			defer dict.Release()
			checkSameValues(t, dense, dict)
		})
	}
}

func checkSameValues(t *testing.T, dense, dict arrow.RecordBatch) {
	t.Helper()
	checkSameColumnValues(t, dense, dict)
	var out bytes.Buffer
	writeParquet(t, &out, dict)
	if out.Len() == 0 {
		t.Fatal("no Parquet written")
	}
}

// checkSameColumnValues fails t unless every column of dict, a batch with
// dictionary columns, holds dense's values row by row.
func checkSameColumnValues(t *testing.T, dense, dict arrow.RecordBatch) {
	t.Helper()
	for i, f := range dense.Schema().Fields() {
		d, ok := dict.Column(i).(*array.Dictionary)
		if !ok {
			if !array.Equal(dense.Column(i), dict.Column(i)) {
				t.Errorf("column %s differs", f.Name)
			}
			continue
		}
		want := dense.Column(i).(*array.String)
		values := d.Dictionary().(*array.String)
		for r := range want.Len() {
			if got := values.Value(d.GetValueIndex(r)); got != want.Value(r) {
				t.Fatalf("column %s row %d = %q, want %q", f.Name, r, got, want.Value(r))
			}
		}
	}
}

func generatedRows(n int) []Row {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	g := NewGenerator(7, start)
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{
			Event:          g.Next(start.Add(-time.Duration(i) * 10 * time.Millisecond)),
			ShardID:        "file-0271407f9fcd1f3b8a4591d467599fcd",
			SequenceNumber: fmt.Sprint(i + 1),
			IngestedAt:     start,
		}
	}
	return rows
}

// withDictionaries returns rec with the named string columns replaced by
// dictionary arrays (int32 indices) built from rows.
func withDictionaries(rec arrow.RecordBatch, rows []Row, names []string) arrow.RecordBatch {
	return buildDictionaries(rec, rows, names, false)
}

// buildDictionaries is withDictionaries; cached puts a small cache keyed
// by the string's address before each column's map, which hits whenever
// a value is the same string as before (Decode's constants and interned
// values).
func buildDictionaries(rec arrow.RecordBatch, rows []Row, names []string, cached bool) arrow.RecordBatch {
	mem := memory.DefaultAllocator
	type column struct {
		value  func(*Row) string
		d      dictIndex
		values *array.StringBuilder
		idx    []int32
	}
	cs := make([]column, len(names))
	for c, name := range names {
		cs[c] = column{value: rowString(name), d: dictIndex{index: make(map[string]int32)},
			values: array.NewStringBuilder(mem), idx: make([]int32, len(rows))}
	}
	// One pass over the rows, as RecordBuilder.Append would do it.
	for r := range rows {
		for c := range cs {
			col := &cs[c]
			if v := col.value(&rows[r]); cached {
				col.idx[r] = col.d.cached(v, col.values)
			} else {
				col.idx[r] = col.d.lookup(v, col.values)
			}
		}
	}
	fields := slices.Clone(rec.Schema().Fields())
	cols := slices.Clone(rec.Columns()) // Columns is the batch's own slice
	owned := make([]arrow.Array, 0, len(names))
	for c, name := range names {
		i := rec.Schema().FieldIndices(name)[0]
		values := cs[c].values.NewArray()
		cs[c].values.Release()
		indices := array.NewData(arrow.PrimitiveTypes.Int32, len(rows),
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(cs[c].idx))}, nil, 0, 0)
		dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
		arr := array.NewDictionaryArray(dt, array.MakeFromData(indices), values)
		indices.Release()
		values.Release()
		fields[i].Type = dt
		cols[i] = arr
		owned = append(owned, arr)
	}
	out := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
	for _, a := range owned {
		a.Release()
	}
	return out
}

// dictIndex numbers a column's distinct values in the order first seen.
type dictIndex struct {
	index map[string]int32
	cache [64]struct {
		p *byte
		n int
		k int32
	}
}

func (d *dictIndex) lookup(v string, values *array.StringBuilder) int32 {
	k, ok := d.index[v]
	if !ok {
		k = int32(len(d.index))
		d.index[v] = k
		values.Append(v)
	}
	return k
}

func (d *dictIndex) cached(v string, values *array.StringBuilder) int32 {
	p := unsafe.StringData(v)
	e := &d.cache[(uint64(uintptr(unsafe.Pointer(p)))*0x9e3779b97f4a7c15)>>58]
	if e.p == p && e.n == len(v) && p != nil {
		return e.k
	}
	k := d.lookup(v, values)
	e.p, e.n, e.k = p, len(v), k
	return k
}

func rowString(name string) func(*Row) string {
	switch name {
	case ColEventType:
		return func(r *Row) string { return r.EventType }
	case ColCustomerID:
		return func(r *Row) string { return r.CustomerID }
	case ColCurrency:
		return func(r *Row) string { return r.Currency }
	case ColSubscriptionTier:
		return func(r *Row) string { return r.SubscriptionTier }
	case ColStatus:
		return func(r *Row) string { return r.Status }
	case ColCountryCode:
		return func(r *Row) string { return r.CountryCode }
	case ColPaymentProcessor:
		return func(r *Row) string { return r.PaymentProcessor }
	case ColShardID:
		return func(r *Row) string { return r.ShardID }
	}
	panic("no string column " + name)
}

// writeParquet writes rec as one Parquet file with the settings iceberg-go
// v0.7.0 (table/internal/parquet_files.go) applies for the table's
// properties.
func writeParquet(tb testing.TB, out *bytes.Buffer, rec arrow.RecordBatch) {
	props := []parquet.WriterProperty{
		parquet.WithMaxRowGroupLength(1 << 20),
		parquet.WithDataPageSize(1 << 20),
		parquet.WithDataPageVersion(parquet.DataPageV2),
		parquet.WithBatchSize(20_000),
		parquet.WithDictionaryPageSizeLimit(2 << 20),
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithCompressionLevel(1),
		parquet.WithDictionaryDefault(true),
		parquet.WithDictionaryFor(ColEventID, false),
		parquet.WithDictionaryFor(ColSequenceNumber, false),
		parquet.WithDictionaryFor(ColEventTS, false),
	}
	for _, f := range rec.Schema().Fields() {
		props = append(props, parquet.WithDictionaryCostFallbackFor(f.Name, true))
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), out, parquet.NewWriterProperties(props...),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.WriteBuffered(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}
