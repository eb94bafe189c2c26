package ingest

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// benchAnswer is a GetRecords answer of n Kinesis records, each a KPL
// aggregate of perAgg generated events (perAgg 1: plain records).
func benchAnswer(b *testing.B, n, perAgg int) (*kinesis.GetRecordsOutput, int) {
	b.Helper()
	now := time.Now().UTC()
	g := schema.NewGenerator(1, now)
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0)}
	users := 0
	for i := range n {
		seq := aws.String(strconv.Itoa(1_000_000 + i))
		if perAgg == 1 {
			e := g.Next(now)
			out.Records = append(out.Records, ktypes.Record{SequenceNumber: seq, Data: e.AppendJSON(nil)})
			users++
			continue
		}
		a, err := kpl.NewAggregator(kpl.MaxAggregateBytes)
		if err != nil {
			b.Fatal(err)
		}
		for range perAgg {
			e := g.Next(now)
			if err := a.Add(kpl.UserRecord{PartitionKey: e.CustomerID, Data: e.AppendJSON(nil)}); err != nil {
				b.Fatal(err)
			}
		}
		agg, _ := a.Flush()
		out.Records = append(out.Records, ktypes.Record{SequenceNumber: seq, Data: agg.Data})
		users += perAgg
	}
	return out, users
}

// BenchmarkDecodeAnswer measures shardReader.decode on one GetRecords
// answer: plain records, and KPL aggregates of 100 user records (about
// 27 KB each, below the KPL's 51,200-byte default), cut into chunks of
// 50,000 user records.
func BenchmarkDecodeAnswer(b *testing.B) {
	for _, bc := range []struct {
		name      string
		n, perAgg int
	}{
		{"plain_10000", 10_000, 1},
		{"kpl_100x100", 100, 100},
		{"kpl_1000x100", 1000, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			out, users := benchAnswer(b, bc.n, bc.perAgg)
			now := time.Now()
			r := &shardReader{shard: "s", maxRows: 50_000, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cs := r.decode(out)
				if got := len(cs[len(cs)-1].rows); got == 0 {
					b.Fatal("no rows decoded")
				}
			}
			b.ReportMetric(float64(users)*float64(b.N)/b.Elapsed().Seconds(), "user_records/s")
		})
	}
}
