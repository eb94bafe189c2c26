package kpl

import (
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/schema"
)

// benchAggregate packs generated payment events (JSON, ~270 B, partition
// key = customer_id) into one aggregate of at most limit bytes.
func benchAggregate(b *testing.B, limit int) Aggregate {
	b.Helper()
	a, err := NewAggregator(limit)
	if err != nil {
		b.Fatal(err)
	}
	gen := schema.NewGenerator(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for {
		e := gen.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		r := UserRecord{PartitionKey: e.CustomerID, Data: e.AppendJSON(nil)}
		if !a.Fits(r) {
			break
		}
		if err := a.Add(r); err != nil {
			b.Fatal(err)
		}
	}
	agg, _ := a.Flush()
	return agg
}

// BenchmarkDeaggregate measures de-aggregating one aggregate of generated
// events: MD5 check, protobuf parse, key resolution. A reused slice
// (AppendDeaggregate) leaves the partition key strings as the only
// allocations.
func BenchmarkDeaggregate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit int
	}{{"50KiB", DefaultAggregateBytes}, {"1MiB", MaxAggregateBytes}} {
		b.Run(bc.name, func(b *testing.B) {
			agg := benchAggregate(b, bc.limit)
			var rs []UserRecord
			b.SetBytes(int64(len(agg.Data)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				rs, err = AppendDeaggregate(rs[:0], agg.Data)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(agg.Records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(agg.Records), "records/aggregate")
		})
	}
}

// BenchmarkAggregate measures packing generated events into 50 KiB
// aggregates (Add and Flush, MD5 included).
func BenchmarkAggregate(b *testing.B) {
	a, err := NewAggregator(DefaultAggregateBytes)
	if err != nil {
		b.Fatal(err)
	}
	gen := schema.NewGenerator(1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	recs := make([]UserRecord, 1000)
	for i := range recs {
		e := gen.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		recs[i] = UserRecord{PartitionKey: e.CustomerID, Data: e.AppendJSON(nil)}
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, r := range recs {
			if !a.Fits(r) {
				a.Flush()
			}
			if err := a.Add(r); err != nil {
				b.Fatal(err)
			}
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
