package iceberg

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/internal/cputime"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// The restore benchmark's table: a day of history for four shards written
// by the consumer's commit path, then an hour (the dedup window) in which
// the restored shard took restoreWindowIDs rows. Every commit holds rows of
// every shard, so a shard's ids are spread over all data files.
const (
	restoreShards       = 4
	restoreShard        = "shardId-000000000000"
	restoreWindowIDs    = 3_600_000 // 1 h at 1,000 events/s
	restoreWindowCommit = 120       // one commit per 30 s
	restoreHistCommits  = 230       // 23 h, one commit per 6 min
	restoreOtherRows    = 2000      // rows of each other shard per commit
)

// restoreStart is when the history begins; the window starts 23 h later.
var restoreStart = time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)

func restoreWindowStart() time.Time { return restoreStart.Add(23 * time.Hour) }

func restoreShardID(i int) string { return "shardId-00000000000" + strconv.Itoa(i) }

// restoreTable builds (or reuses, when PAYSTREAM_RESTORE_BENCH_DIR names a
// folder that already holds one) the restore benchmark's table.
func restoreTable(b *testing.B) *testEnv {
	b.Helper()
	dir := os.Getenv("PAYSTREAM_RESTORE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	done := filepath.Join(dir, "built")
	if _, err := os.Stat(done); err == nil {
		return newSQLiteEnvDir(b, dir)
	}
	env := newSQLiteEnvDir(b, dir)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	w := &restoreWriter{sink: s, after: map[string]string{}, seq: map[string]int{}}
	for c := range restoreHistCommits {
		from := restoreStart.Add(time.Duration(c) * 6 * time.Minute)
		w.commit(b, from, 6*time.Minute, restoreOtherRows)
		if c%50 == 49 {
			if _, err := s.Maintain(context.Background(), MaintainOptions{KeepSnapshots: 50}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for c := range restoreWindowCommit {
		from := restoreWindowStart().Add(time.Duration(c) * 30 * time.Second)
		w.commit(b, from, 30*time.Second, restoreWindowIDs/restoreWindowCommit)
		if c%50 == 49 {
			if _, err := s.Maintain(context.Background(), MaintainOptions{KeepSnapshots: 50}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return env
}

// restoreWriter commits the benchmark's batches, keeping each shard's
// position.
type restoreWriter struct {
	sink  *Sink
	after map[string]string
	seq   map[string]int
}

// commit writes one batch: first rows of restoreShard and restoreOtherRows
// of every other shard, ingested evenly over [from, from+span).
func (w *restoreWriter) commit(b *testing.B, from time.Time, span time.Duration, first int) {
	b.Helper()
	var rows []schema.Row
	var ranges []commit.ShardRange
	g := schema.NewGenerator(uint64(from.Unix()), from)
	for i := range restoreShards {
		shard := restoreShardID(i)
		n := restoreOtherRows
		if shard == restoreShard {
			n = first
		}
		for j := range n {
			at := from.Add(span * time.Duration(j) / time.Duration(n))
			w.seq[shard]++
			seq := strconv.Itoa(w.seq[shard])
			e := g.Next(at.Add(-2 * time.Second))
			e.EventID = "evt_" + shard[len(shard)-2:] + "_" + seq
			rows = append(rows, schema.Row{Event: e, ShardID: shard, SequenceNumber: seq, IngestedAt: at})
		}
		ranges = append(ranges, commit.ShardRange{Shard: shard, After: w.after[shard], Last: strconv.Itoa(w.seq[shard])})
		w.after[shard] = strconv.Itoa(w.seq[shard])
	}
	rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
	defer rec.Release()
	if _, err := w.sink.Commit(context.Background(), commit.Batch{Records: rec, Ranges: ranges}); err != nil {
		b.Fatal(err)
	}
}

// heapPeak samples the bytes of live and not yet swept heap objects every
// few milliseconds until stop is called, and returns the highest sample.
func heapPeak() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var (
		mu   sync.Mutex
		peak = read()
		quit = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				v := read()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	})
	return func() uint64 {
		close(quit)
		wg.Wait()
		return max(peak, read())
	}
}

// heapNow returns the live heap after a full collection.
func heapNow() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// BenchmarkRestoreWindow refills a dedup window of restoreWindowIDs ids
// from a table holding a day of four shards' history, as the pipeline does
// on a lease take-over ("window"), and reads the same ids without keeping
// them ("scan"). It reports ids/s, CPU seconds per restore, and the peak
// heap beyond the window itself (sampled every 2 ms, so it includes garbage
// not yet collected: run with GOGC=25 to see the live part).
//
//	PAYSTREAM_RESTORE_BENCH_DIR=$(mktemp -d) go test ./pkg/iceberg -run '^$' -bench RestoreWindow -benchtime 3x
func BenchmarkRestoreWindow(b *testing.B) {
	env := restoreTable(b)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	ctx := context.Background()
	for _, mode := range []string{"scan", "window"} {
		b.Run(mode, func(b *testing.B) {
			var beyond, windowBytes uint64
			cpu := time.Duration(0)
			for range b.N {
				b.StopTimer()
				f, err := dedup.New(dedup.Config{})
				if err != nil {
					b.Fatal(err)
				}
				base := heapNow()
				stop := heapPeak()
				cpu0 := cputime.Process()
				b.StartTimer()
				n := 0
				if mode == "scan" {
					n = restoreCount(ctx, b, s, restoreShard, restoreWindowStart())
				} else {
					n = restoreInto(ctx, b, s, f, restoreShard, restoreWindowStart())
				}
				b.StopTimer()
				cpu += cputime.Process() - cpu0
				peak := stop()
				if n != restoreWindowIDs || (mode == "window" && f.Len(restoreShard) != restoreWindowIDs) {
					b.Fatalf("restored %d ids (window holds %d), want %d", n, f.Len(restoreShard), restoreWindowIDs)
				}
				windowBytes = uint64(f.Stats().Bytes)
				beyond = max(beyond, peak-base-min(windowBytes, peak-base))
				runtime.KeepAlive(f)
			}
			b.ReportMetric(float64(b.N*restoreWindowIDs)/b.Elapsed().Seconds(), "ids/s")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/restore")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/restore")
			b.ReportMetric(float64(beyond)/(1<<20), "MiB-beyond-window")
			b.ReportMetric(float64(windowBytes)/(1<<20), "MiB-window")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// restoreCount reads shard's recent ids, counting them.
func restoreCount(ctx context.Context, b *testing.B, s *Sink, shard string, since time.Time) int {
	n := 0
	if err := s.RecentEventIDs(ctx, []string{shard}, since, func(string, string, time.Time) { n++ }); err != nil {
		b.Fatal(err)
	}
	return n
}

// restoreInto seeds f's window of shard from the table, as
// ingest.Pipeline.restoreWindow does, and returns the ids read.
func restoreInto(ctx context.Context, b *testing.B, s *Sink, f *dedup.Filter, shard string, since time.Time) int {
	n := 0
	var scanErr error
	err := f.Seed(shard, func(yield func(string, time.Time) bool) {
		scanErr = s.RecentEventIDs(ctx, []string{shard}, since, func(_, id string, at time.Time) {
			n++
			yield(id, at)
		})
	})
	if scanErr != nil || err != nil {
		b.Fatal(scanErr, err)
	}
	return n
}
