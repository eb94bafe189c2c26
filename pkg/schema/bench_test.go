package schema

import (
	"testing"
)

// BenchmarkDecode measures decode+validate of generated events on one core.
func BenchmarkDecode(b *testing.B) {
	g := NewGenerator(1, now)
	recs := make([][]byte, 1024)
	size := 0
	for i := range recs {
		e := g.Next(now)
		recs[i] = e.AppendJSON(nil)
		size += len(recs[i])
	}
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(recs[i%len(recs)], now); err != nil {
			b.Fatal(err)
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
