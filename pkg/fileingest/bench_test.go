package fileingest_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/fileingest"
)

// benchEvents is the size of the generated file: PAYSTREAM_BENCH_EVENTS,
// default 100,000 (BENCHMARKS.md uses 1,000,000).
func benchEvents(b *testing.B) int {
	if s := os.Getenv("PAYSTREAM_BENCH_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("PAYSTREAM_BENCH_EVENTS=%q: want a positive number", s)
		}
		return n
	}
	return 100_000
}

// BenchmarkIngestFile measures consumer ingest-file end to end on the
// embedded SQLite catalog and a local warehouse: hash, decode, validate,
// dedup, Parquet (zstd) and Iceberg commits of 100,000-line batches. Each
// iteration ingests the whole file into a fresh table. For the figure in
// BENCHMARKS.md run it with GOMAXPROCS=1; cmd/query's
// BenchmarkIngestFileVsDuckDB puts DuckDB beside it.
func BenchmarkIngestFile(b *testing.B) {
	n := benchEvents(b)
	path := testenv.WriteEvents(b, b.TempDir(), n)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(info.Size())
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e := newFileEnv(b)
		filter, err := dedup.New(dedup.Config{})
		if err != nil {
			b.Fatal(err)
		}
		f := e.ingester(b, func(c *fileingest.Config) {
			c.BatchRows = fileingest.DefaultBatchRows
			c.Dedup = filter
		})
		b.StartTimer()
		st, err := f.IngestPath(b.Context(), path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Rows != int64(n) {
			b.Fatalf("committed %d rows, want %d", st.Rows, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
