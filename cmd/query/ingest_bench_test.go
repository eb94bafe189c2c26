package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/cputime"
	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/internal/units"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/fileingest"
	"github.com/paystream/paystream/pkg/iceberg"
)

// BenchmarkIngestFileVsDuckDB puts consumer ingest-file beside DuckDB's
// single-threaded COPY (SELECT * FROM read_json(FILE)) TO … (FORMAT
// parquet, COMPRESSION zstd) on the same generated file, in the same run.
// Run it with GOMAXPROCS=1 (DuckDB gets SET threads = 1):
//
//	GOMAXPROCS=1 PAYSTREAM_BENCH_EVENTS=1000000 go test -run '^$' \
//	  -bench IngestFileVsDuckDB -benchtime 1x ./cmd/query/
//
// Metrics: events/s of each (wall clock) and the ratio DuckDB/ingest, also
// on process CPU time (getrusage), which a busy machine disturbs less; and
// the Parquet bytes per event each wrote.
// ingest-file does more than DuckDB: validation, de-duplication, the Iceberg
// schema (decimal amounts, UTC timestamps, day partitions) and commits.
func BenchmarkIngestFileVsDuckDB(b *testing.B) {
	n := 100_000
	if s := os.Getenv("PAYSTREAM_BENCH_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("PAYSTREAM_BENCH_EVENTS=%q: want a positive number", s)
		}
		n = v
	}
	dir := b.TempDir()
	path := testenv.WriteEvents(b, dir, n)
	info, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d events, %s, GOMAXPROCS=%d", n, units.Bytes(info.Size()), runtime.GOMAXPROCS(0))

	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false&threads=1")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(1)
	ctx := b.Context()

	var ingestWall, duckWall, ingestCPU, duckCPU time.Duration
	var tableBytes, duckBytes int64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		cfg := localConfig(b)
		f := newBenchIngester(b, cfg)
		out := filepath.Join(dir, "duck-"+strconv.Itoa(i)+".parquet")
		b.StartTimer()

		cpu0, t0 := cputime.Process(), time.Now()
		st, err := f.IngestPath(ctx, path, nil)
		if err != nil {
			b.Fatal(err)
		}
		if st.Rows != int64(n) {
			b.Fatalf("ingest committed %d rows, want %d", st.Rows, n)
		}
		cpu1, t1 := cputime.Process(), time.Now()
		if _, err := db.ExecContext(ctx, "COPY (SELECT * FROM read_json('"+path+"')) TO '"+out+"' (FORMAT parquet, COMPRESSION zstd)"); err != nil {
			b.Fatal(err)
		}
		cpu2, t2 := cputime.Process(), time.Now()

		ingestWall += t1.Sub(t0)
		duckWall += t2.Sub(t1)
		ingestCPU += cpu1 - cpu0
		duckCPU += cpu2 - cpu1
		b.StopTimer()
		tableBytes += testenv.ParquetBytes(b, strings.TrimPrefix(cfg.Warehouse, "file://"))
		if fi, err := os.Stat(out); err == nil {
			duckBytes += fi.Size()
		}
		var rows int64
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM read_parquet('"+out+"')").Scan(&rows); err != nil || rows != int64(n) {
			b.Fatalf("DuckDB wrote %d rows (%v), want %d", rows, err, n)
		}
		_ = os.Remove(out)
		b.StartTimer()
	}
	events := float64(n) * float64(b.N)
	b.ReportMetric(events/ingestWall.Seconds(), "ingest-events/s")
	b.ReportMetric(events/duckWall.Seconds(), "duckdb-events/s")
	b.ReportMetric(ingestWall.Seconds()/duckWall.Seconds(), "duckdb/ingest-wall-ratio")
	b.ReportMetric(ingestCPU.Seconds()/duckCPU.Seconds(), "duckdb/ingest-cpu-ratio")
	b.ReportMetric(events/ingestCPU.Seconds(), "ingest-events/cpu-s")
	b.ReportMetric(events/duckCPU.Seconds(), "duckdb-events/cpu-s")
	b.ReportMetric(float64(tableBytes)/events, "table-bytes/event")
	b.ReportMetric(float64(duckBytes)/events, "duckdb-bytes/event")
}

func newBenchIngester(b *testing.B, cfg iceberg.CatalogConfig) *fileingest.Ingester {
	ctx := context.Background()
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if c, ok := cat.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	})
	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		b.Fatal(err)
	}
	filter, err := dedup.New(dedup.Config{})
	if err != nil {
		b.Fatal(err)
	}
	f, err := fileingest.New(fileingest.Config{
		Table:       iceberg.NewSink(cat, ident, iceberg.SinkConfig{}),
		DeadLetters: iceberg.NewDeadLetter(cfg.Warehouse, "", ident, nil),
		Dedup:       filter,
	})
	if err != nil {
		b.Fatal(err)
	}
	return f
}
