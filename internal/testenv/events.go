package testenv

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/schema"
)

// WriteEvents writes n valid generated events (seed 7, event_ts 10 ms
// apart going back from noon UTC of today) as NDJSON — what producer
// --output writes — to dir/events.ndjson and returns its path. Tests and
// benchmarks of file ingest share it.
//
// Up to 4.3 M events fall in one UTC day whatever the time of the run. The
// table is partitioned by day, so a file reaching back across midnight had
// its batches split in two, every column copied, and cost about 0.1 µs per
// event more than one that did not: benchmarks run before and after
// midnight did not compare. Noon is at most 12 hours ahead of now, inside
// what Decode accepts (schema.MaxFutureSkew).
func WriteEvents(tb testing.TB, dir string, n int) string {
	tb.Helper()
	path := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	noon := now.UTC().Truncate(24 * time.Hour).Add(12 * time.Hour)
	g := schema.NewGenerator(7, now)
	var buf []byte
	for i := range n {
		ev := g.Next(noon.Add(-time.Duration(i) * 10 * time.Millisecond))
		buf = append(ev.AppendJSON(buf[:0]), '\n')
		if _, err := w.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}
