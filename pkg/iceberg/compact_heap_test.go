package iceberg

import (
	"context"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// onePartition returns a sink on a new table holding files data files of
// rows rows each, all in one day's partition, as a day of small commits
// leaves it.
func onePartition(tb testing.TB, files, rows int) *Sink {
	tb.Helper()
	ctx := context.Background()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	env := newSQLiteEnv(tb)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	for i := range files {
		first := 1 + i*rows
		rs := makeRows("shardId-0", first, rows)
		for j := range rs {
			rs[j].EventTS = day.Add(time.Duration(first+j) * 50 * time.Millisecond)
		}
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rs)
		_, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-0", After: afterSeq(first - 1), Last: strconv.Itoa(first + rows - 1)}}})
		rec.Release()
		if err != nil {
			tb.Fatal(err)
		}
	}
	return s
}

// compactPeak compacts s and returns the result and the peak heap during
// the compaction beyond the live heap before it.
func compactPeak(tb testing.TB, s *Sink) (CompactResult, uint64) {
	tb.Helper()
	before := heapNow()
	stop := heapPeak()
	res, err := s.Compact(context.Background(), compactNow)
	peak := stop()
	if err != nil {
		tb.Fatal(err)
	}
	return res, peak - min(peak, before)
}

// TestCompactionHeapBoundedByRowGroup compacts a partition of 800,000 rows
// in 50 files and checks that the rewrite's heap stays far below what
// holding the partition takes. iceberg-go's defaults (GOMAXPROCS files
// read at once, 64 batches queued for the writer) peaked at 268 MiB here,
// and the maintainer's RSS grew with the partition it compacted; one file
// at a time in small batches peaks near 90 MiB, the writer's row group.
func TestCompactionHeapBoundedByRowGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 800,000 rows; skipped with -short")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	s := onePartition(t, 50, 16000)
	res, peak := compactPeak(t, s)
	if res.FilesRewritten != 50 {
		t.Fatalf("rewrote %d files, want all 50", res.FilesRewritten)
	}
	const limit = 160 << 20
	t.Logf("peak heap %.1f MiB beyond the heap before, %.1f MiB written", float64(peak)/(1<<20), float64(res.BytesWritten)/(1<<20))
	if peak > limit {
		t.Errorf("compaction peaked at %.1f MiB beyond the heap before it, want at most %d MiB", float64(peak)/(1<<20), limit>>20)
	}
}

// BenchmarkCompactionHeap rewrites one partition of 50 files of 4,000 rows
// (PAYSTREAM_COMPACT_BENCH_ROWS sets the rows per file) and reports the
// peak heap during Sink.Compact beyond the heap before it (sampled every
// 2 ms, garbage included: run with GOGC=25), against the bytes written.
//
//	GOGC=25 PAYSTREAM_COMPACT_BENCH_ROWS=32000 go test ./pkg/iceberg -run '^$' -bench CompactionHeap -benchtime 1x
func BenchmarkCompactionHeap(b *testing.B) {
	rows := 4000
	if v, err := strconv.Atoi(os.Getenv("PAYSTREAM_COMPACT_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	for range b.N {
		b.StopTimer()
		s := onePartition(b, 50, rows)
		b.StartTimer()
		res, peak := compactPeak(b, s)
		b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-heap")
		b.ReportMetric(float64(res.BytesWritten)/(1<<20), "MiB-written")
		b.ReportMetric(float64(50*rows), "rows")
	}
}
