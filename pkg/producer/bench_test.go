package producer

import (
	"fmt"
	"io"
	"testing"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/internal/testenv"
)

// BenchmarkProducerMoto measures records/s sent to a 2-shard moto stream
// with PutRecords (500 per call, one call in flight: moto overwrites
// records when calls overlap). Each iteration sends 2,000 records.
func BenchmarkProducerMoto(b *testing.B) {
	testenv.Moto(b)
	kc, err := NewKinesisClient(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig("bench")
	cfg.CreateStream, cfg.Shards, cfg.Rate, cfg.Count = true, 2, 0, 2000
	var sent int64
	for b.Loop() {
		sum, err := Run(b.Context(), cfg, kc, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if sum.SequenceCollisions != 0 || sum.FailedAfterRetries != 0 {
			b.Fatalf("summary %+v", sum)
		}
		sent += sum.Sent
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkGenerateOutput measures the producer without a network: generate,
// add 10% duplicates and 2% invalid records, batch and write NDJSON to
// io.Discard. It bounds what one producer process can offer a stream.
func BenchmarkGenerateOutput(b *testing.B) {
	cfg := testConfig("")
	cfg.Output, cfg.Rate, cfg.Count, cfg.DuplicateRate, cfg.InvalidRate = "-", 0, 100_000, 0.1, 0.02
	var sent int64
	for b.Loop() {
		sum, err := Run(b.Context(), cfg, nil, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		sent += sum.Sent
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/event")
}

// BenchmarkProducerAggregate measures user records/s sent to a 4-shard
// in-process kinesistest stream, one record per Kinesis record against
// --aggregate (default size, --batch 5000). Each iteration sends 20,000
// user records to a new stream.
func BenchmarkProducerAggregate(b *testing.B) {
	for _, bc := range []struct {
		name      string
		aggregate bool
		batch     int
	}{{"plain", false, 500}, {"aggregate", true, 5000}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := kinesistest.Start(b)
			kc := testClient(b, srv.URL)
			var sent, kinesisRecords int64
			n := 0
			for b.Loop() {
				n++
				cfg := testConfig(fmt.Sprintf("bench-%d", n))
				cfg.CreateStream, cfg.Shards, cfg.Rate, cfg.Count, cfg.Batch = true, 4, 0, 20_000, bc.batch
				cfg.Aggregate = bc.aggregate
				sum, err := Run(b.Context(), cfg, kc, io.Discard, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				if sum.Sent != 20_000 || sum.FailedAfterRetries != 0 {
					b.Fatalf("summary %+v", sum)
				}
				sent += sum.Sent
				kinesisRecords += sum.KinesisRecords
			}
			b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(sent)/float64(kinesisRecords), "records/kinesis-record")
		})
	}
}
