package iceberg

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// mixedTable commits, for three shards with full-length ids, files that
// mix shards and straddle the bound, files of one shard only, and files
// wholly before the bound. It returns the bound: rows are ingested one
// minute apart from 12:00, and the bound is 12:40.
func mixedTable(t *testing.T) (*testEnv, *Sink, time.Time) {
	t.Helper()
	env := newSQLiteEnv(t)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	after := map[string]string{}
	next := map[string]int{}
	commitRows := func(parts ...string) { // "shard:n", rows numbered on per shard
		var rows []schema.Row
		var ranges []commit.ShardRange
		for _, p := range parts {
			shard, n, _ := strings.Cut(p, ":")
			count, _ := strconv.Atoi(n)
			rows = append(rows, makeRows(shard, next[shard]+1, count)...)
			next[shard] += count
			ranges = append(ranges, commit.ShardRange{Shard: shard, After: after[shard], Last: strconv.Itoa(next[shard])})
			after[shard] = strconv.Itoa(next[shard])
		}
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
		defer rec.Release()
		if _, err := s.Commit(context.Background(), commit.Batch{Records: rec, Ranges: ranges}); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := recentShard(1), recentShard(2), recentShard(3)
	commitRows(a+":20", b+":20", c+":20") // all before the bound
	commitRows(c + ":30")                 // before and after, shard c only
	commitRows(a+":30", b+":10")          // straddles the bound
	commitRows(b + ":30")                 // after the bound, shard b only
	commitRows(a+":5", c+":10")           // after the bound
	return env, s, time.Date(2026, 3, 1, 12, 40, 0, 0, time.UTC)
}

func recentShard(i int) string { return "shardId-00000000000" + strconv.Itoa(i) }

// recentIDs collects RecentEventIDs' output as "shard/id" strings.
func recentIDs(t *testing.T, s *Sink, shards []string, since time.Time) []string {
	t.Helper()
	var out []string
	err := s.RecentEventIDs(context.Background(), shards, since, func(shard, id string, at time.Time) {
		if at.Before(since) {
			t.Errorf("%s ingested at %v, before %v", id, at, since)
		}
		out = append(out, shard+"/"+id)
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// fullScanIDs is the reference: every row of the table read without a
// filter, kept when its shard is in shards and it was ingested at or after
// since.
func fullScanIDs(t *testing.T, env *testEnv, shards []string, since time.Time) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := tbl.Scan(table.WithSelectedFields(schema.ColShardID, schema.ColEventID, schema.ColIngestedAt)).ToArrowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rec, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		cols, err := recentColumns(rec.Schema())
		if err != nil {
			t.Fatal(err)
		}
		sh, ids, ats := rec.Column(cols.shard).(*array.String), rec.Column(cols.id).(*array.String), rec.Column(cols.at).(*array.Timestamp)
		for i := range ids.Len() {
			if slices.Contains(shards, sh.Value(i)) && !ats.Value(i).ToTime(arrow.Microsecond).Before(since) {
				out = append(out, sh.Value(i)+"/"+ids.Value(i))
			}
		}
		rec.Release()
	}
	slices.Sort(out)
	return out
}

func TestRecentEventIDsMatchesFullScan(t *testing.T) {
	env, s, since := mixedTable(t)
	for _, shards := range [][]string{
		{recentShard(1)},
		{recentShard(2)},
		{recentShard(3), recentShard(1)}, // a shard and its ancestor, one scan
		{recentShard(1), recentShard(2), recentShard(3)},
		{"shardId-000000000009"},
	} {
		got := recentIDs(t, s, shards, since)
		want := fullScanIDs(t, env, shards, since)
		if !slices.Equal(got, want) {
			t.Errorf("shards %v: recent ids (%d)\n%v\nwant (%d)\n%v", shards, len(got), got, len(want), want)
		}
	}
	if got := recentIDs(t, s, []string{recentShard(1)}, since); len(got) != 16 {
		t.Errorf("shard 1 has %d ids since %v, want 16 (rows 40..55)", len(got), since)
	}
}

// The scan must skip data files whose ingested_at or shard_id bounds rule
// them out: the first file is older than the bound, and the files of
// shard b or c alone hold none of shard a's rows. Shard ids are longer
// than iceberg-go's default 16-character bounds, so this needs the
// table's full shard_id metrics.
func TestRecentEventIDsPrunesFiles(t *testing.T) {
	env, _, since := mixedTable(t)
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan(table.WithRowFilter(recentFilter([]string{recentShard(1)}, since))).PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// makeRows puts a batch's rows in one partition (event day), so each
	// commit wrote one file; shard a's rows since the bound are in two.
	if len(tasks) != 2 {
		var files []string
		for _, task := range tasks {
			files = append(files, task.File.FilePath())
		}
		t.Errorf("scan plans %d data files, want 2 (with shard a's rows since the bound):\n%s", len(tasks), strings.Join(files, "\n"))
	}
}

// Cancelling the context mid-scan ends RecentEventIDs with an error that
// wraps context.Canceled, before the scan reaches the end of the table.
func TestRecentEventIDsCancelled(t *testing.T) {
	_, s, _ := mixedTable(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n int
	all := []string{recentShard(1), recentShard(2), recentShard(3)}
	err := s.RecentEventIDs(ctx, all, time.Time{}, func(string, string, time.Time) {
		n++
		if n == 1 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RecentEventIDs after cancel: err = %v, want context.Canceled", err)
	}
	if n >= 175 {
		t.Errorf("%d ids delivered after the cancel; the scan went on to the end (175 rows)", n)
	}
}

// The scan hands out record batches of at most recentBatchRows rows, even
// from a data file holding several times that: each batch of the files
// read at once is held until its ids are taken, so its size bounds the
// scan's memory (BENCHMARKS.md, "Dedup window restore").
func TestRecentScanBatchRows(t *testing.T) {
	env := newSQLiteEnv(t)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	shard := recentShard(1)
	n := 2*recentBatchRows + 100
	rows := makeRows(shard, 1, n)
	start := rows[0].IngestedAt
	for i := range rows { // one partition, so one data file
		rows[i].EventTS = start
		rows[i].IngestedAt = start.Add(time.Duration(i) * time.Millisecond)
	}
	rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
	defer rec.Release()
	if _, err := s.Commit(context.Background(), commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: shard, Last: strconv.Itoa(n)}}}); err != nil {
		t.Fatal(err)
	}
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := recentScan(context.Background(), tbl, []string{shard}, start)
	if err != nil {
		t.Fatal(err)
	}
	total, batches := 0, 0
	for r, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		if r.NumRows() > recentBatchRows {
			t.Errorf("record batch of %d rows, want at most %d", r.NumRows(), recentBatchRows)
		}
		total += int(r.NumRows())
		batches++
		r.Release()
	}
	if total != n {
		t.Fatalf("scan read %d rows in %d batches, want %d", total, batches, n)
	}
}

// Data files are read in the order of their lowest ingested_at, so when
// the files' ingested_at ranges do not overlap (each holds one commit) the
// ids come out in time order and Seed need not sort them.
func TestRecentEventIDsInTimeOrder(t *testing.T) {
	env := newSQLiteEnv(t)
	s := NewSink(env.cat, env.ident, SinkConfig{})
	shard := recentShard(1)
	const commits, perCommit = 6, 50
	for c := range commits {
		after := ""
		if c > 0 {
			after = strconv.Itoa(c * perCommit)
		}
		b := makeBatch(t, shard, after, c*perCommit+1, perCommit)
		if _, err := s.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	var ats []time.Time
	err := s.RecentEventIDs(context.Background(), []string{shard}, time.Time{}, func(_, _ string, at time.Time) {
		ats = append(ats, at)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ats) != commits*perCommit {
		t.Fatalf("%d ids, want %d", len(ats), commits*perCommit)
	}
	for i := 1; i < len(ats); i++ {
		if ats[i].Before(ats[i-1]) {
			t.Fatalf("id %d ingested at %v comes after one ingested at %v", i, ats[i], ats[i-1])
		}
	}
}
