package iceberg

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/internal/quantile"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// benchTable is a table that has already taken some commits, kept across
// the repeated calls the testing package makes with growing b.N.
type benchTable struct {
	env     *testEnv
	sink    *Sink
	commits int
	after   string
}

// commitOne commits one 100-row batch and, like the consumer, runs
// maintenance every 50 commits (keep 50 snapshots).
func (bt *benchTable) commitOne(b *testing.B) time.Duration {
	first := bt.commits*100 + 1
	rows := makeRows("shardId-0", first, 100)
	rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
	last := strconv.Itoa(first + 99)
	start := time.Now()
	_, err := bt.sink.Commit(context.Background(), commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-0", After: bt.after, Last: last}}})
	d := time.Since(start)
	rec.Release()
	if err != nil {
		b.Fatal(err)
	}
	bt.after = last
	bt.commits++
	if bt.commits%50 == 0 {
		if _, err := bt.sink.Maintain(context.Background(), MaintainOptions{KeepSnapshots: 50}); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// BenchmarkCommitLatency measures Sink.Commit of a 100-row batch on a
// SQLite catalog and local warehouse when the table has already taken 1,
// 1,000 and 5,000 commits, with the consumer's maintenance cadence. The
// point is that latency stays flat as the table ages.
//
//	go test ./pkg/iceberg -run '^$' -bench CommitLatency -benchtime 200x
func BenchmarkCommitLatency(b *testing.B) {
	parent := b // owns the tables: sub-benchmarks run several times
	benchTables := map[int]*benchTable{}
	for _, age := range benchAges() {
		b.Run("commits="+strconv.Itoa(age), func(b *testing.B) {
			bt := benchTables[age]
			if bt == nil {
				env := newSQLiteEnvDir(parent, parent.TempDir())
				bt = &benchTable{env: env, sink: NewSink(env.cat, env.ident, SinkConfig{})}
				for bt.commits < age-1 {
					bt.commitOne(b)
				}
				benchTables[age] = bt
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				lat = append(lat, bt.commitOne(b))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(quantile.Sorted(0.5, lat).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(quantile.Sorted(0.99, lat).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkBytesPerEvent commits generated events in 10,000-row batches and
// reports the on-disk bytes per event of the data files (ZSTD Parquet) and
// of the whole table folder (data + metadata).
//
//	go test ./pkg/iceberg -run '^$' -bench BytesPerEvent -benchtime 20x
func BenchmarkBytesPerEvent(b *testing.B) {
	const perBatch = 10_000
	env := newSQLiteEnvDir(b, b.TempDir())
	s := NewSink(env.cat, env.ident, SinkConfig{})
	g := schema.NewGenerator(42, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	var dataBytes, rowsTotal int64
	after := ""
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		rows := make([]schema.Row, perBatch)
		for j := range rows {
			// Events spread over a few days, as in a real stream with late events.
			ts := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*perBatch+j) * 7 * time.Second)
			seq := strconv.Itoa(i*perBatch + j + 1)
			rows[j] = schema.Row{Event: g.Next(ts), ShardID: "shardId-000000000000", SequenceNumber: "4959033827149025660855969253836157109592157598913658" + leftPad(seq, 4), IngestedAt: ts.Add(time.Second)}
		}
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
		last := strconv.Itoa((i + 1) * perBatch)
		b.StartTimer()
		res, err := s.Commit(context.Background(), commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-000000000000", After: after, Last: last}}})
		b.StopTimer()
		rec.Release()
		if err != nil {
			b.Fatal(err)
		}
		after = last
		dataBytes += res.Bytes
		rowsTotal += res.Rows
		b.StartTimer()
	}
	b.StopTimer()
	var folder int64
	_ = filepath.WalkDir(tableDir(b, env), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				folder += info.Size()
			}
		}
		return nil
	})
	b.ReportMetric(float64(dataBytes)/float64(rowsTotal), "data-bytes/event")
	b.ReportMetric(float64(folder)/float64(rowsTotal), "table-bytes/event")
	b.ReportMetric(float64(rowsTotal)/b.Elapsed().Seconds(), "events/s")
}

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

// benchAges are the table ages BenchmarkCommitLatency measures at;
// PAYSTREAM_BENCH_AGES="1,10" overrides them for a quick run.
func benchAges() []int {
	ages := []int{1, 1000, 5000}
	if v := os.Getenv("PAYSTREAM_BENCH_AGES"); v != "" {
		ages = ages[:0]
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				ages = append(ages, n)
			}
		}
	}
	return ages
}
