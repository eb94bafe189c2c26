package iceberg

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// A table from before sub_sequence_number: its files lack the column.
// After EnsureTable adds it, new rows carry it, old rows read as NULL, and
// compaction over both kinds of files keeps every row and value.
func TestSubSequenceColumnOnOlderTable(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	ident := table.Identifier{"netflix_revenue_raw", "before_kpl"}
	var old []iceberggo.NestedField
	for _, f := range schema.IcebergSchema().Fields() {
		if f.Name != schema.ColSubSequence {
			old = append(old, f)
		}
	}
	spec := PartitionSpec()
	if _, err := env.cat.CreateTable(ctx, ident, iceberggo.NewSchema(0, old...), catalog.WithPartitionSpec(&spec),
		catalog.WithLocation(env.cfg.Warehouse+"/netflix_revenue_raw.db/before_kpl")); err != nil {
		t.Fatal(err)
	}
	s := NewSink(env.cat, ident, SinkConfig{})
	// Two files written as an older consumer did: no sub_sequence_number.
	for i, first := range []int{1, 11} {
		b := makeBatch(t, "s", map[int]string{0: "", 1: "10"}[i], first, 10)
		b.Records = dropColumn(t, b.Records, schema.ColSubSequence)
		if _, err := s.Commit(ctx, b); err != nil {
			t.Fatalf("commit to the older table: %v", err)
		}
	}
	if _, err := EnsureTable(ctx, env.cat, ident, env.cfg.Warehouse); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	s = NewSink(env.cat, ident, SinkConfig{})
	rows := makeRows("s", 21, 4)
	for i := range rows {
		rows[i].SequenceNumber, rows[i].SubSequence = "21", int64(i)
	}
	rec := schema.BuildRecordBatch(nil, rows)
	defer rec.Release()
	if _, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "s", After: "20", Last: "21:3"}}}); err != nil {
		t.Fatalf("commit rows with sub-sequence numbers: %v", err)
	}
	check := func(when string) {
		t.Helper()
		subs := subSequences(t, env.cat, ident)
		nulls, set := 0, 0
		for _, v := range subs {
			if v < 0 {
				nulls++
			} else {
				set++
			}
		}
		if nulls != 20 || set != 4 || subs["evt_s_23"] != 2 {
			t.Errorf("%s: %d NULL and %d set sub_sequence_number (evt_s_23: %d); want 20, 4 and 2", when, nulls, set, subs["evt_s_23"])
		}
	}
	check("before compaction")
	if res, err := s.Compact(ctx, compactNow); err != nil || res.FilesRewritten != 3 {
		t.Fatalf("compact: %+v, %v; want the 3 files rewritten", res, err)
	}
	check("after compaction")
	if pos, err := s.Positions(ctx); err != nil || pos["s"] != "21:3" {
		t.Errorf("position %v, %v; want 21:3", pos, err)
	}
}

func dropColumn(t *testing.T, rec arrow.RecordBatch, name string) arrow.RecordBatch {
	t.Helper()
	idx := rec.Schema().FieldIndices(name)[0]
	var fields []arrow.Field
	var cols []arrow.Array
	for i, f := range rec.Schema().Fields() {
		if i != idx {
			fields = append(fields, f)
			cols = append(cols, rec.Column(i))
		}
	}
	out := array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
	t.Cleanup(out.Release)
	return out
}

// subSequences scans the table: event_id → sub_sequence_number (-1 NULL).
func subSequences(t *testing.T, cat catalog.Catalog, ident table.Identifier) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	out := map[string]int64{}
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		ids := rec.Column(rec.Schema().FieldIndices(schema.ColEventID)[0]).(*array.String)
		subs := rec.Column(rec.Schema().FieldIndices(schema.ColSubSequence)[0]).(*array.Int64)
		for i := range int(rec.NumRows()) {
			v := int64(-1)
			if subs.IsValid(i) {
				v = subs.Value(i)
			}
			out[ids.Value(i)] = v
		}
	}
	return out
}

// The table fences composite positions: a batch that starts after
// "SEQ:SUB" commits only while the table is at exactly that position,
// and a zombie's batch after any other position, inside the same
// aggregate or after it, is refused with nothing appended.
func TestCompositePositionsFence(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	batch := func(after, last string, first int) commit.Batch {
		b := makeBatch(t, "s1", after, first, 3)
		b.Ranges[0].Last = last
		return b
	}
	if _, err := s.Commit(ctx, batch("", "5:2", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, batch("5:2", "5:5", 4)); err != nil {
		t.Fatalf("the next batch inside the aggregate: %v", err)
	}
	before, _ := env.cat.LoadTable(ctx, env.ident)
	for _, after := range []string{"", "5:2", "5:4", "5", "4"} {
		if _, err := s.Commit(ctx, batch(after, "9", 7)); !errors.Is(err, commit.ErrPositionMoved) {
			t.Errorf("after=%q with the table at 5:5: err = %v, want commit.ErrPositionMoved", after, err)
		}
	}
	now, _ := env.cat.LoadTable(ctx, env.ident)
	if before.CurrentSnapshot().SnapshotID != now.CurrentSnapshot().SnapshotID {
		t.Error("a refused batch made a snapshot")
	}
	if _, err := s.Commit(ctx, batch("5:5", "5", 7)); err != nil {
		t.Fatalf("the rest of the aggregate: %v", err)
	}
	if pos, err := s.Positions(ctx); err != nil || pos["s1"] != "5" {
		t.Errorf("position %v, %v; want the whole aggregate 5", pos, err)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s1", 1, 9))
}
