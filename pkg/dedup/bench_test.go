package dedup_test

import (
	"fmt"
	"iter"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/paystream/paystream/internal/cputime"
	"github.com/paystream/paystream/pkg/dedup"
)

// idGen makes distinct UUID-shaped event ids (36 bytes, like the
// producer's) from a counter.
type idGen struct {
	n   uint64
	buf [36]byte
}

const idPrefix = "6f1c2a9e-7b3d-4e51-8a90-"

func (g *idGen) format(i uint64) {
	copy(g.buf[:], idPrefix)
	for k := len(g.buf) - 1; k >= len(idPrefix); k-- {
		g.buf[k] = "0123456789abcdef"[i&15]
		i >>= 4
	}
}

// id returns the i-th id as a new string.
func (g *idGen) id(i uint64) string {
	g.format(i)
	return string(g.buf[:])
}

// next returns a new id as a new string.
func (g *idGen) next() string {
	g.n++
	return g.id(g.n - 1)
}

// scratch returns the i-th id in g's buffer, valid until the next call.
// Check and Seed hash ids and keep nothing of them, so benchmarks use this
// to measure the Filter rather than string allocation.
func (g *idGen) scratch(i uint64) string {
	g.format(i)
	return unsafe.String(&g.buf[0], len(g.buf))
}

const (
	rate       = 1000 // events/s per shard: the Kinesis write limit
	hourOfIDs  = rate * 3600
	benchBatch = 500
)

// hour yields n ids committed at rate per second, ending at end.
func hour(g *idGen, first uint64, n int, end time.Time) iter.Seq2[string, time.Time] {
	start := end.Add(-time.Duration(n) * time.Second / rate)
	return func(yield func(string, time.Time) bool) {
		for i := range n {
			at := start.Add(time.Duration(i) * time.Second / rate)
			if !yield(g.scratch(first+uint64(i)), at) {
				return
			}
		}
	}
}

// prefilled returns a Filter whose shard "s" holds a window of size ids,
// built once per size and shared by the runs of a benchmark.
var prefilled = struct {
	sync.Mutex
	m map[int]*benchShard
}{m: map[int]*benchShard{}}

type benchShard struct {
	f    *dedup.Filter
	gen  idGen
	next uint64 // next fresh id
	at   time.Time
}

func prefill(b *testing.B, size int) *benchShard {
	prefilled.Lock()
	defer prefilled.Unlock()
	if s, ok := prefilled.m[size]; ok {
		return s
	}
	f, err := dedup.New(dedup.Config{MaxIDs: size})
	if err != nil {
		b.Fatal(err)
	}
	s := &benchShard{f: f, next: uint64(size), at: t0}
	if err := f.Seed("s", hour(&s.gen, 0, size, t0)); err != nil {
		b.Fatal(err)
	}
	prefilled.m[size] = s
	return s
}

// BenchmarkCheck measures Check on a full window, as a consumer calls it:
// 90% new ids (lookup + insert + eviction of the oldest), 10% duplicates
// of recent ids (lookup only), a Commit every 500 events. One op is one
// Check, including hashing the id.
func BenchmarkCheck(b *testing.B) {
	for _, size := range []int{10_000, hourOfIDs} {
		b.Run(fmt.Sprintf("window=%d", size), func(b *testing.B) {
			s := prefill(b, size)
			batch := s.f.Begin("s")
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cputime.Process()
			dups := 0
			for i := range b.N {
				var id string
				if i%10 == 9 {
					id = s.gen.scratch(s.next - 5) // a retry a few events later
				} else {
					id = s.gen.scratch(s.next)
					s.next++
				}
				if batch.Check(id) {
					dups++
				}
				if i%benchBatch == benchBatch-1 {
					s.at = s.at.Add(time.Second / 2)
					if err := batch.Commit(s.at); err != nil {
						b.Fatal(err)
					}
					batch = s.f.Begin("s")
				}
			}
			b.StopTimer()
			cpu := cputime.Process() - cpu0
			if err := batch.Commit(s.at); err != nil {
				b.Fatal(err)
			}
			if want := b.N / 10; dups != want {
				b.Fatalf("%d duplicates caught, want %d", dups, want)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "ops/cpu-s")
		})
	}
}

// BenchmarkBytesPerID fills a window to the default MaxIDs and reports the
// heap it holds per id (runtime.MemStats) and what Stats.Bytes estimates.
func BenchmarkBytesPerID(b *testing.B) {
	const n = dedup.DefaultMaxIDs
	var heap, est float64
	for range b.N {
		var gen idGen
		before := heapAlloc()
		f, err := dedup.New(dedup.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Seed("s", hour(&gen, 0, n, t0)); err != nil {
			b.Fatal(err)
		}
		heap = float64(heapAlloc()-before) / n
		est = float64(f.Stats().Bytes) / n
		if f.Len("s") != n {
			b.Fatalf("Len %d, want %d", f.Len("s"), n)
		}
		runtime.KeepAlive(f)
	}
	b.ReportMetric(heap, "heap-B/id")
	b.ReportMetric(est, "stats-B/id")
}

// BenchmarkSeed restores one shard's full window, 1 h at 1,000 events/s
// (3.6M ids), from ids already in memory: the Filter's part of a restore,
// not reading the rows from the table. "reverse" feeds the rows newest
// first, which takes the sort path.
func BenchmarkSeed(b *testing.B) {
	for _, order := range []string{"ordered", "reverse"} {
		b.Run("1h@1000/s/"+order, func(b *testing.B) {
			var gen idGen
			rows := hour(&gen, 0, hourOfIDs, t0)
			if order == "reverse" {
				end := t0
				rows = func(yield func(string, time.Time) bool) {
					for i := hourOfIDs - 1; i >= 0; i-- {
						at := end.Add(-time.Duration(hourOfIDs-1-i) * time.Second / rate)
						if !yield(gen.scratch(uint64(i)), at) {
							return
						}
					}
				}
			}
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for range b.N {
				f, err := dedup.New(dedup.Config{})
				if err != nil {
					b.Fatal(err)
				}
				if err := f.Seed("s", rows); err != nil {
					b.Fatal(err)
				}
				if f.Len("s") != hourOfIDs {
					b.Fatalf("Len %d, want %d", f.Len("s"), hourOfIDs)
				}
			}
			perRestore := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perRestore, "s/restore")
			b.ReportMetric(hourOfIDs/perRestore, "ids/s")
			b.ReportMetric((cputime.Process()-cpu0).Seconds()/float64(b.N), "cpu-s/restore")
		})
	}
}

// BenchmarkInherit builds a child's window from a parent holding a full
// hour (a split), as a worker does when it takes the child right after
// finishing the parent.
func BenchmarkInherit(b *testing.B) {
	s := prefill(b, hourOfIDs)
	b.ResetTimer()
	var cpu time.Duration
	for i := range b.N {
		cpu0 := cputime.Process()
		child := fmt.Sprint("child-", i)
		missing, err := s.f.Inherit(child, "s")
		if err != nil || len(missing) != 0 {
			b.Fatalf("Inherit: missing %v, %v", missing, err)
		}
		b.StopTimer()
		cpu += cputime.Process() - cpu0
		s.f.Drop(child)
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/inherit")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/inherit")
}

// BenchmarkFillWindow checks 300,000 fresh ids into a new shard in
// batches of 100,000, as file ingest of a 300,000-line input does: the
// window grows by doubling as ids come (reserve=none), a batch at a time
// (reserve=batch, Batch.Reserve as commit.Step calls it) or once for the
// whole input (reserve=input, Filter.Reserve as file ingest calls it);
// check=each calls Check per id, check=all CheckAll with 64 ids at a time
// (as commit.Step does). Reports CPU ns per id.
func BenchmarkFillWindow(b *testing.B) {
	const (
		n     = 300_000
		batch = 100_000
		group = 64
	)
	var g idGen
	ids := make([]string, n)
	for i := range ids {
		ids[i] = g.next()
	}
	for _, tc := range []struct{ reserve, check string }{
		{"none", "each"}, {"batch", "each"}, {"input", "each"}, {"input", "all"},
	} {
		b.Run("reserve="+tc.reserve+"/check="+tc.check, func(b *testing.B) {
			var dups [group]bool
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for range b.N {
				f, err := dedup.New(dedup.Config{})
				if err != nil {
					b.Fatal(err)
				}
				if tc.reserve == "input" {
					f.Reserve("s", n)
				}
				for first := 0; first < n; first += batch {
					bt := f.Begin("s")
					if tc.reserve == "batch" {
						bt.Reserve(batch)
					}
					part := ids[first : first+batch]
					if tc.check == "each" {
						for _, id := range part {
							bt.Check(id)
						}
					} else {
						for i := 0; i < len(part); i += group {
							k := min(group, len(part)-i)
							bt.CheckAll(part[i:i+k], dups[:k])
						}
					}
					if err := bt.Commit(t0); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64((cputime.Process()-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/id")
		})
	}
}
