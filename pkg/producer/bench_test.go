package producer

import (
	"io"
	"testing"

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
