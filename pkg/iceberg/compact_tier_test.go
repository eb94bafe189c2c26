package iceberg

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// commitSecondsApart commits n batches of per rows of shardId-1 with
// sequence numbers from first, their events one second apart from 12:00
// of day: a day's partition holds many rows.
func commitSecondsApart(t testing.TB, s *Sink, day time.Time, first, n, per int) {
	t.Helper()
	after := ""
	if first > 1 {
		after = strconv.Itoa(first - 1)
	}
	for i := range n {
		rows := makeRows("shardId-1", first+i*per, per)
		for j := range rows {
			rows[j].EventTS = day.Add(12*time.Hour + time.Duration(first+i*per+j)*time.Second)
		}
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
		last := strconv.Itoa(first + (i+1)*per - 1)
		_, err := s.Commit(context.Background(), commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-1", After: after, Last: last}}})
		rec.Release()
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		after = last
	}
}

// sizedFile is a data file of the table's day partition day with only a
// path, a row count and a size: what the planner looks at.
func sizedFile(t testing.TB, path string, day int64, rows, size int64) iceberggo.DataFile {
	t.Helper()
	spec := PartitionSpec()
	fieldID := spec.Field(0).FieldID
	b, err := iceberggo.NewDataFileBuilder(spec, iceberggo.EntryContentData, path, iceberggo.ParquetFile,
		map[int]any{fieldID: iceberggo.Date(day)}, nil, nil, rows, size)
	if err != nil {
		t.Fatal(err)
	}
	return b.Build()
}

// parquetSize is what a Parquet file of rows of the table takes, roughly as
// the soak measured: ≈ 7 KB of footer and page overhead, ≈ 4 bytes a row.
func parquetSize(rows int64) int64 { return 7_000 + 4*rows }

// Over a day of maintenance runs, the hot partition's compaction rewrites
// each row a few times, not once per run: files compaction wrote stay
// below the target size and so stay small, and a planner taking every
// small file rereads the whole day's data on every run. 600 runs, each
// after 80 new commits' files of 40–60 rows (as in a soak: 10 s runs,
// 8 commits a second); every planned group is replaced by one file of its
// rows, as the rewrite would.
func TestHotPartitionCompactionRewritesEachRowFewTimes(t *testing.T) {
	now := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	today := dayOf(now)
	opts := CompactOptions{MinFiles: 16, MinAge: time.Minute}.withDefaults()
	var live []liveFile
	var appended, rewritten int64
	var smallest int64 = math.MaxInt64
	n := 0
	add := func(rows int64) {
		n++
		live = append(live, liveFile{file: sizedFile(t, fmt.Sprintf("data/%d.parquet", n), today, rows, parquetSize(rows)), added: now.Add(-time.Hour)})
	}
	const runs = 600
	for run := range runs {
		for i := range 80 {
			rows := int64(40 + (run*80+i)%21)
			smallest = min(smallest, rows)
			appended += rows
			add(rows)
		}
		plans, err := planCompaction(live, opts, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range plans {
			for _, g := range p.groups {
				gone := map[string]bool{}
				var rows int64
				for _, task := range g.Tasks {
					gone[task.File.FilePath()] = true
					rows += task.File.Count()
				}
				kept := live[:0]
				for _, f := range live {
					if !gone[f.file.FilePath()] {
						kept = append(kept, f)
					}
				}
				live = kept
				add(rows)
				rewritten += rows
			}
		}
	}
	var liveRows int64
	for _, f := range live {
		liveRows += f.file.Count()
	}
	if liveRows != appended {
		t.Fatalf("simulation lost rows: %d live, %d appended", liveRows, appended)
	}
	if rewritten == 0 {
		t.Fatal("nothing was compacted")
	}
	// A file joins a rewrite only when the files with fewer rows hold half
	// as many, so every rewrite of a row puts it in a file with at least
	// 1.5 times as many: at most log1.5(total/smallest) rewrites per row.
	// With commits of similar size a rewrite about doubles a row's file,
	// so log2 holds here; tiering by bytes (where a commit's file is mostly
	// overhead) rewrote each row 29 times, taking every small file 300.
	amp := float64(rewritten) / float64(appended)
	most := math.Log2(float64(appended) / float64(smallest))
	t.Logf("%d runs, %d rows appended, %d rewritten (%.2f times), %d live files", runs, appended, rewritten, amp, len(live))
	if amp > most {
		t.Errorf("each row rewritten %.1f times on average, want at most %.1f", amp, most)
	}
	// The files left: the new ones not yet worth a rewrite and about one per
	// tier.
	if limit := opts.MinFiles + 2*int(most); len(live) > limit {
		t.Errorf("%d live files after the last run, want at most %d", len(live), limit)
	}
}

// In the hot partition, a file compaction wrote is left alone while the
// new small files are fewer bytes than half of it.
func TestCompactLeavesLargerFileUntilSmallOnesAddUp(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // makeRows' day
	hot := CompactOptions{MinFiles: 2, MinAge: -1, at: day.Add(23 * time.Hour)}
	// 6 batches of 1,000 rows of one day, packed into one file.
	commitSecondsApart(t, s, day, 1, 6, 1000)
	if res, err := s.Compact(ctx, hot); err != nil || res.FilesRewritten != 6 || res.FilesWritten != 1 {
		t.Fatalf("first compaction %+v, %v; want 6 files into 1", res, err)
	}
	before := tableRows(t, env, 0)
	commitSecondsApart(t, s, day, 6001, 2, 2)
	res, err := s.Compact(ctx, hot)
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesRewritten != 2 || res.FilesWritten != 1 {
		t.Errorf("hot compaction %+v; want the 2 new files into 1, the packed file left alone", res)
	}
	if got := len(liveDataFiles(t, env)); got != 2 {
		t.Errorf("%d live files, want 2", got)
	}
	after := tableRows(t, env, 0)
	if len(after) != len(before)+4 {
		t.Errorf("%d rows, want %d", len(after), len(before)+4)
	}
}

// A past day's partition is packed whole once nothing has been added to it
// for settleAge, with as few as two small files; until then it is tiered
// like the hot partition (late events keep arriving after midnight).
func TestSettledPartitionPackedWhole(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	yesterday := dayOf(now) - 1
	files := func(newest time.Time) []liveFile {
		return []liveFile{
			{file: sizedFile(t, "data/packed.parquet", yesterday, 1_000_000, parquetSize(1_000_000)), added: newest.Add(-3 * time.Hour)},
			{file: sizedFile(t, "data/late-1.parquet", yesterday, 50, parquetSize(50)), added: newest.Add(-time.Minute)},
			{file: sizedFile(t, "data/late-2.parquet", yesterday, 50, parquetSize(50)), added: newest},
		}
	}
	opts := CompactOptions{MinFiles: 16, MinAge: time.Minute}.withDefaults()
	for _, tc := range []struct {
		name   string
		newest time.Time
		want   int // files in the one group planned; 0: none
	}{
		{"settled", now.Add(-settleAge - time.Minute), 3},
		{"late files still arriving", now.Add(-settleAge + time.Minute), 0},
	} {
		plans, err := planCompaction(files(tc.newest), opts, now)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, p := range plans {
			for _, g := range p.groups {
				got += len(g.Tasks)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %d files planned, want %d", tc.name, got, tc.want)
		}
	}
}

// tiered takes the longest run from the fewest rows up whose largest file
// holds at most twice the others' rows: a file with fewer rows than the
// rest (a batch cut at midnight) does not stop it, a file of many more
// rows (the day's compacted file) is left out.
func TestTieredRun(t *testing.T) {
	task := func(i int, rows int64) table.FileScanTask {
		f := sizedFile(t, fmt.Sprintf("data/%d.parquet", i), 20000, rows, parquetSize(rows))
		return table.FileScanTask{File: f, Length: f.FileSizeBytes()}
	}
	for _, tc := range []struct {
		name string
		rows []int64
		want int
	}{
		{"a cut batch first", []int64{100, 20, 100, 100, 100}, 5},
		{"the day's file left out", []int64{50, 60, 50, 1_000_000, 55}, 4},
		{"a file of twice the others joins", []int64{10, 10, 40}, 3},
		{"more than twice does not", []int64{10, 10, 41}, 2},
		{"one file", []int64{7}, 1},
		{"none", nil, 0},
	} {
		var tasks []table.FileScanTask
		for i, r := range tc.rows {
			tasks = append(tasks, task(i, r))
		}
		if got := tiered(tasks, DefaultCompactTargetSize*3/4); len(got) != tc.want {
			t.Errorf("%s: %d files taken, want %d", tc.name, len(got), tc.want)
		}
	}
}
