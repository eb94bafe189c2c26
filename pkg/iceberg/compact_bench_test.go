package iceberg

import (
	"context"
	"strconv"
	"testing"
	"time"
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
	for range b.N {
		b.StopTimer()
		s := onePartition(b, files, rows)
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
