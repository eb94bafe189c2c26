package iceberg

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// BenchmarkCompaction measures Sink.Compact of one partition of small
// files, as a 1 s flush leaves them: 200 commits of 500 rows each (one
// file each). It reports input files and input MiB per second.
//
//	go test ./pkg/iceberg -run '^$' -bench Compaction -benchtime 3x
func BenchmarkCompaction(b *testing.B) {
	const files, rows = 200, 500
	ctx := context.Background()
	var inFiles, inBytes int64
	var spent time.Duration
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for range b.N {
		b.StopTimer()
		env := newSQLiteEnv(b)
		s := NewSink(env.cat, env.ident, SinkConfig{})
		for i := range files {
			first := 1 + i*rows
			rs := makeRows("shardId-0", first, rows)
			for j := range rs { // one day: the hot partition of a busy stream
				rs[j].EventTS = day.Add(time.Duration(first+j) * 800 * time.Millisecond)
			}
			rec := schema.BuildRecordBatch(memory.DefaultAllocator, rs)
			_, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-0", After: afterSeq(first - 1), Last: strconv.Itoa(first + rows - 1)}}})
			rec.Release()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		res, err := s.Compact(ctx, CompactOptions{MinFiles: 2, MinAge: -1})
		spent += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.FilesRewritten != files {
			b.Fatalf("rewrote %d files, want %d", res.FilesRewritten, files)
		}
		inFiles += int64(res.FilesRewritten)
		inBytes += res.BytesRewritten
		b.ReportMetric(float64(res.BytesWritten)/float64(res.BytesRewritten), "out/in-bytes")
	}
	b.ReportMetric(float64(inFiles)/spent.Seconds(), "files/s")
	b.ReportMetric(float64(inBytes)/(1<<20)/spent.Seconds(), "MiB/s")
	b.ReportMetric(float64(inFiles*rows)/spent.Seconds(), "rows/s")
}

// afterSeq renders a position; 0 is none.
func afterSeq(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}
