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
// apart going back from now) as NDJSON — what producer --output writes — to
// dir/events.ndjson and returns its path. Tests and benchmarks of file
// ingest share it.
func WriteEvents(tb testing.TB, dir string, n int) string {
	tb.Helper()
	path := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	g := schema.NewGenerator(7, now)
	var buf []byte
	for i := range n {
		ev := g.Next(now.Add(-time.Duration(i) * 10 * time.Millisecond))
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
