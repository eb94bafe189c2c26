package schema

import (
	"testing"
	"time"
)

// generated returns n generated events as JSON records and their mean size.
func generated(n int) ([][]byte, int) {
	g := NewGenerator(1, now)
	recs := make([][]byte, n)
	size := 0
	for i := range recs {
		e := g.Next(now)
		recs[i] = e.AppendJSON(nil)
		size += len(recs[i])
	}
	return recs, size / n
}

// BenchmarkDecode measures decode+validate of generated events on one core.
// Run it with GOMAXPROCS=1; allocs/op is allocations per event.
func BenchmarkDecode(b *testing.B) {
	benchmarkDecode(b, Decode)
}

// BenchmarkDecodeReference is BenchmarkDecode for decodeReference, the
// encoding/json decoder Decode replaced, for before/after in one run.
func BenchmarkDecodeReference(b *testing.B) {
	benchmarkDecode(b, decodeReference)
}

func benchmarkDecode(b *testing.B, decode func([]byte, time.Time) (Event, error)) {
	recs, size := generated(1024)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := decode(recs[i%len(recs)], now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEventColumns measures what ingest-file does per event in this
// package: EventColumns.Decode (decode, validate, append to the batch's
// columns), with a record batch every 100,000 rows (ingest-file's default
// batch), released as the commit step does, so that batches reuse memory.
func BenchmarkEventColumns(b *testing.B) {
	recs, size := generated(1024)
	cols := NewEventColumns(nil)
	defer cols.Release()
	cols.Begin(testShard, 100_000)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := cols.Decode(recs[i%len(recs)], now, int64(i+1)); err != nil {
			b.Fatal(err)
		}
		if cols.Len() == 100_000 {
			cols.NewRecordBatch(now).Release()
			cols.Begin(testShard, 100_000)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecodeToRecord is the stream path's share of the same: decode,
// validate and append the row to an Arrow builder, with a record batch
// every 100,000 rows.
func BenchmarkDecodeToRecord(b *testing.B) {
	recs, size := generated(1024)
	rb := NewRecordBuilder(nil)
	defer rb.Release()
	row := Row{ShardID: "events.ndjson", SequenceNumber: "1", IngestedAt: now}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e, err := Decode(recs[i%len(recs)], now)
		if err != nil {
			b.Fatal(err)
		}
		row.Event = e
		rb.Append(&row)
		if rb.Len() == 100_000 {
			rb.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkGenerate measures the generator including JSON encoding.
func BenchmarkGenerate(b *testing.B) {
	g := NewGenerator(1, now)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e := g.Next(now)
		buf = e.AppendJSON(buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRecordBuilder measures appending rows to Arrow.
func BenchmarkRecordBuilder(b *testing.B) {
	g := NewGenerator(1, now)
	rows := make([]Row, 1024)
	for i := range rows {
		rows[i] = Row{Event: g.Next(now), ShardID: "shardId-000000000000", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", IngestedAt: now}
	}
	rb := NewRecordBuilder(nil)
	defer rb.Release()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rb.Append(&rows[i%len(rows)])
		if rb.Len() == 8192 {
			rb.NewRecordBatch().Release()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDictionaryRecordBuilder measures what commit.Step does with a
// file ingest batch: Grow, then append 100,000 rows (no sub-sequence
// numbers) to a NewDictionaryRecordBuilder and take the record batch.
// One op is one row.
func BenchmarkDictionaryRecordBuilder(b *testing.B) {
	const batch = 100_000
	rows := generatedRows(batch)
	for i := range rows {
		rows[i].SubSequence = -1
	}
	rb := NewDictionaryRecordBuilder(nil)
	defer rb.Release()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		n := min(batch, b.N-i)
		rb.Grow(rows[:n])
		for k := range n {
			rb.Append(&rows[k])
		}
		rb.NewRecordBatch().Release()
		i += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
