package iceberg

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	_ "github.com/duckdb/duckdb-go/v2" // DuckDB reads the data files back
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/schema"
)

// directTestBatch is a batch that exercises what the direct writer must
// get right: rows of one or more days (partitions, interleaved), NULLs in
// a dictionary-encoded string column and in sub_sequence_number, a string
// column with one value (shard_id) and ones with many (event_id,
// customer_id), negative amounts; built by schema.NewRecordBuilder, or
// with dictionary columns by schema.NewDictionaryRecordBuilder (as
// commit.Step does).
func directTestBatch(t *testing.T, n, days int, dict bool) arrow.RecordBatch {
	t.Helper()
	rows := makeRows("shardId-000000000007", 1, n)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		rows[i].EventTS = day.Add(time.Duration(i%days)*24*time.Hour + time.Duration(i)*time.Second)
		if i%5 == 0 {
			rows[i].SubSequence = int64(i)
		} else {
			rows[i].SubSequence = -1
		}
	}
	rb := schema.NewRecordBuilder(memory.DefaultAllocator)
	if dict {
		rb = schema.NewDictionaryRecordBuilder(memory.DefaultAllocator)
	}
	defer rb.Release()
	for i := range rows {
		rb.Append(&rows[i])
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	// country_code with NULLs.
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	for i := range rows {
		if i%7 == 3 {
			b.AppendNull()
		} else {
			b.Append(rows[i].CountryCode)
		}
	}
	cc := b.NewArray()
	defer cc.Release()
	cols := slices.Clone(rec.Columns())
	fields := rec.Schema().Fields()
	i := rec.Schema().FieldIndices(schema.ColCountryCode)[0]
	cols[i], fields[i].Type = cc, cc.DataType()
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

// TestDirectWriterMatchesIcebergGo writes the same batch with the sink's
// own data file writer and with iceberg-go's (table.WriteRecords), and
// checks that they agree on everything a reader or the manifest sees:
// one file per partition with the same partition values and folders; the
// same Parquet schema (field ids) and stored Arrow schema (plain strings);
// the same manifest statistics (record count, value counts, null counts,
// lower and upper bounds, for every column); and the same rows, every
// column, read back by DuckDB and by an iceberg-go scan of a table the
// direct writer's files were committed to.
func TestDirectWriterMatchesIcebergGo(t *testing.T) {
	for _, tc := range []struct {
		name string
		days int
		dict bool
	}{
		{"plain columns, three days", 3, false},
		{"dictionary columns, three days", 3, true},
		{"dictionary columns, one day", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testDirectWriterMatchesIcebergGo(t, tc.days, tc.dict) })
	}
}

func testDirectWriterMatchesIcebergGo(t *testing.T, days int, dict bool) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	rec := directTestBatch(t, 3000, days, dict)
	defer rec.Release()

	direct, err := writeDirect(ctx, tbl, rec, uuid.New())
	if err != nil {
		t.Fatalf("direct writer: %v", err)
	}
	theirs, err := writeDataFilesIceberg(ctx, tbl, rec, uuid.New())
	if err != nil {
		t.Fatalf("iceberg-go writer: %v", err)
	}
	if len(direct) != days || len(theirs) != days {
		t.Fatalf("files: direct %d, iceberg-go %d; want one per day, %d", len(direct), len(theirs), days)
	}
	byPartition := func(files []iceberggo.DataFile) map[string]iceberggo.DataFile {
		out := map[string]iceberggo.DataFile{}
		for _, f := range files {
			out[fmt.Sprint(f.Partition())] = f
		}
		return out
	}
	mine, want := byPartition(direct), byPartition(theirs)
	if !slices.Equal(slices.Sorted(maps.Keys(mine)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("partitions: direct %v, iceberg-go %v", slices.Sorted(maps.Keys(mine)), slices.Sorted(maps.Keys(want)))
	}
	var total int64
	for key, w := range want {
		m := mine[key]
		total += m.Count()
		if filepath.Dir(m.FilePath()) != filepath.Dir(w.FilePath()) {
			t.Errorf("partition %s: folder %s, iceberg-go's %s", key, filepath.Dir(m.FilePath()), filepath.Dir(w.FilePath()))
		}
		for _, c := range []struct {
			what      string
			got, want any
		}{
			{"record count", m.Count(), w.Count()},
			{"format", m.FileFormat(), w.FileFormat()},
			{"content", m.ContentType(), w.ContentType()},
			{"spec", m.SpecID(), w.SpecID()},
			{"value counts", m.ValueCounts(), w.ValueCounts()},
			{"null counts", m.NullValueCounts(), w.NullValueCounts()},
			{"NaN counts", m.NaNValueCounts(), w.NaNValueCounts()},
			{"lower bounds", m.LowerBoundValues(), w.LowerBoundValues()},
			{"upper bounds", m.UpperBoundValues(), w.UpperBoundValues()},
			{"column size keys", slices.Sorted(maps.Keys(m.ColumnSizes())), slices.Sorted(maps.Keys(w.ColumnSizes()))},
			{"sort order", m.SortOrderID(), w.SortOrderID()},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("partition %s: %s = %v, iceberg-go's %v", key, c.what, c.got, c.want)
			}
		}
		if m.FileSizeBytes() != fileSize(t, m.FilePath()) {
			t.Errorf("partition %s: file size %d in the manifest, %d on disk", key, m.FileSizeBytes(), fileSize(t, m.FilePath()))
		}
		ms, ws := footer(t, m.FilePath()), footer(t, w.FilePath())
		if ms.schema != ws.schema {
			t.Errorf("partition %s: Parquet schema\n%s\niceberg-go's\n%s", key, ms.schema, ws.schema)
		}
		if ms.arrow != ws.arrow || strings.Contains(ms.arrow, "dictionary") {
			t.Errorf("partition %s: stored Arrow schema\n%s\niceberg-go's\n%s", key, ms.arrow, ws.arrow)
		}
		if !slices.Equal(ms.dictColumns, ws.dictColumns) || len(ms.dictColumns) < 9 {
			t.Errorf("partition %s: dictionary-encoded columns %v, iceberg-go's %v (want the 8 low-cardinality strings and amount_usd)", key, ms.dictColumns, ws.dictColumns)
		}
		// A new table asks for delta encodings (DeltaEncodingKey), which
		// iceberg-go's writer does not know: DuckDB must read them alike.
		for _, d := range deltaEncodings {
			if !slices.Contains(ms.encodings[d.col], d.enc.String()) || slices.Contains(ws.encodings[d.col], d.enc.String()) {
				t.Errorf("partition %s: %s encoded %v, iceberg-go's %v; want %s in the direct writer's only", key, d.col, ms.encodings[d.col], ws.encodings[d.col], d.enc)
			}
		}
		if got, want := duckRows(t, m.FilePath()), duckRows(t, w.FilePath()); !slices.Equal(got, want) {
			t.Errorf("partition %s: DuckDB reads %d rows from the direct writer's file, %d from iceberg-go's; first difference: %s",
				key, len(got), len(want), firstDiff(got, want))
		}
	}
	if total != rec.NumRows() {
		t.Errorf("files hold %d rows, want %d", total, rec.NumRows())
	}

	// Committed, the direct writer's files scan back as the batch.
	txn := tbl.NewTransaction()
	if err := txn.AddDataFiles(ctx, direct, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tbl, err = env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	got := scanRows(t, tbl)
	plain, err := withoutDictionaries(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Release()
	wantRows := recordRows(plain)
	if !slices.Equal(got, wantRows) {
		t.Errorf("iceberg-go scan: %d rows, want %d; first difference: %s", len(got), len(wantRows), firstDiff(got, wantRows))
	}
}

// TestDeltaEncodingFollowsTheTableProperty: a table without
// DeltaEncodingKey (one made by an earlier version) or with it "false"
// gets PLAIN (or dictionary) event_ts, sequence_number and ingested_at;
// "true" (any case) gets the delta encodings and no dictionary.
func TestDeltaEncodingFollowsTheTableProperty(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	// One ingested_at for the batch, as a commit writes it: a column a
	// dictionary would pay off for, so only turning it off gives delta.
	rows := makeRows("shardId-000000000007", 1, 500)
	for i := range rows {
		rows[i].IngestedAt = rows[0].IngestedAt
		rows[i].SubSequence = -1
	}
	rb := schema.NewDictionaryRecordBuilder(memory.DefaultAllocator)
	defer rb.Release()
	for i := range rows {
		rb.Append(&rows[i])
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	for _, tc := range []struct {
		value string // "" removes the property
		delta bool
	}{{"", false}, {"false", false}, {"TRUE", true}, {"true", true}} {
		txn := tbl.NewTransaction()
		if tc.value == "" {
			err = txn.RemoveProperties([]string{DeltaEncodingKey})
		} else {
			err = txn.SetProperties(iceberggo.Properties{DeltaEncodingKey: tc.value})
		}
		if err != nil {
			t.Fatal(err)
		}
		if tbl, err = txn.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		files, err := writeDirect(ctx, tbl, rec, uuid.New())
		if err != nil || len(files) != 1 {
			t.Fatalf("%q: direct writer: %d files, %v", tc.value, len(files), err)
		}
		enc := footer(t, files[0].FilePath()).encodings
		for _, d := range deltaEncodings {
			delta := slices.Contains(enc[d.col], d.enc.String())
			plain := slices.Contains(enc[d.col], parquet.Encodings.Plain.String())
			dict := slices.Contains(enc[d.col], parquet.Encodings.RLEDict.String())
			if delta != tc.delta || plain == tc.delta || (tc.delta && dict) {
				t.Errorf("%s=%q: %s encoded %v, want %s: %v", DeltaEncodingKey, tc.value, d.col, enc[d.col], d.enc, tc.delta)
			}
		}
	}
}

// TestDirectWriterFallsBack checks that a table the direct writer does not
// cover (here: bloom filters) is still written, by iceberg-go's writer.
func TestDirectWriterFallsBack(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	txn := tbl.NewTransaction()
	if err := txn.SetProperties(iceberggo.Properties{bloomFilterKeyPrefix + schema.ColEventID: "true"}); err != nil {
		t.Fatal(err)
	}
	if tbl, err = txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rec := directTestBatch(t, 100, 2, true)
	defer rec.Release()
	if _, err := writeDirect(ctx, tbl, rec, uuid.New()); err == nil || !strings.Contains(err.Error(), errNotDirect.Error()) {
		t.Fatalf("direct writer on a table with bloom filters: %v, want errNotDirect", err)
	}
	files, err := writeDataFiles(ctx, tbl, rec, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, f := range files {
		rows += f.Count()
	}
	if rows != rec.NumRows() {
		t.Errorf("files hold %d rows, want %d", rows, rec.NumRows())
	}
}

func TestDictionaryOf(t *testing.T) {
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	values := []string{"b", "a", "", "b", "c", "a", "a", "b"}
	for i, v := range values {
		if i == 3 {
			b.AppendNull()
			continue
		}
		b.Append(v)
	}
	for range 200 { // enough rows that three values are worth a dictionary
		b.Append("c")
	}
	col := b.NewStringArray()
	defer col.Release()

	d := dictionaryOf(col, 1<<20)
	if d == nil {
		t.Fatal("no dictionary for 4 distinct values in 208 rows")
	}
	defer d.Release()
	dict := d.(*array.Dictionary)
	dv := dict.Dictionary().(*array.String)
	var gotDict []string
	for i := range dv.Len() {
		gotDict = append(gotDict, dv.Value(i))
	}
	if want := []string{"b", "a", "", "c"}; !slices.Equal(gotDict, want) {
		t.Errorf("dictionary %q, want %q (first seen order)", gotDict, want)
	}
	for i := range col.Len() {
		if dict.IsNull(i) != col.IsNull(i) {
			t.Fatalf("row %d: null %v, want %v", i, dict.IsNull(i), col.IsNull(i))
		}
		if !col.IsNull(i) && dv.Value(dict.GetValueIndex(i)) != col.Value(i) {
			t.Fatalf("row %d: %q, want %q", i, dv.Value(dict.GetValueIndex(i)), col.Value(i))
		}
	}
	if dictionaryOf(col, 2) != nil {
		t.Error("dictionary of 3 bytes built with a 2-byte limit")
	}

	// All distinct: not worth a dictionary.
	b2 := array.NewStringBuilder(memory.DefaultAllocator)
	defer b2.Release()
	for i := range 1000 {
		b2.Append(fmt.Sprint(i))
	}
	distinct := b2.NewStringArray()
	defer distinct.Release()
	if dictionaryOf(distinct, 1<<20) != nil {
		t.Error("dictionary built for 1000 distinct values in 1000 rows")
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(fileOf(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func fileOf(t *testing.T, path string) string {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.FromSlash(u.Path)
}

// parquetFooter is what a data file's footer says about its layout.
type parquetFooter struct {
	schema, arrow string
	dictColumns   []string // columns with a dictionary page
	// encodings are each column's encodings, as the footer names them
	// (of the first row group).
	encodings map[string][]string
}

func footer(t *testing.T, path string) parquetFooter {
	t.Helper()
	r, err := file.OpenParquetFile(fileOf(t, path), false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	md := r.MetaData()
	out := parquetFooter{schema: md.Schema.String()}
	if v := md.KeyValueMetadata().FindValue("ARROW:schema"); v != nil {
		out.arrow = *v
	}
	for rg := range md.NumRowGroups() {
		g := md.RowGroup(rg)
		for c := range g.NumColumns() {
			cc, err := g.ColumnChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			if cc.HasDictionaryPage() {
				out.dictColumns = append(out.dictColumns, cc.PathInSchema().String())
			}
			if rg == 0 {
				if out.encodings == nil {
					out.encodings = map[string][]string{}
				}
				for _, e := range cc.Encodings() {
					out.encodings[cc.PathInSchema().String()] = append(out.encodings[cc.PathInSchema().String()], e.String())
				}
			}
		}
	}
	return out
}

// duckRows reads a Parquet file with DuckDB, every column of every row as
// text, ordered by event_id.
func duckRows(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false&threads=1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	q := "SELECT * FROM read_parquet('" + strings.ReplaceAll(fileOf(t, path), "'", "''") + "', hive_partitioning=false) ORDER BY event_id"
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if want := len(schema.Columns); len(cols) != want {
		t.Fatalf("DuckDB reads %d columns (%v), want %d", len(cols), cols, want)
	}
	var out []string
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			cells[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(cells, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scanRows reads the table with an iceberg-go scan, every column of every
// row as text (Arrow's formatting), ordered by event_id.
func scanRows(t *testing.T, tbl *table.Table) []string {
	t.Helper()
	_, recs, err := tbl.Scan().ToArrowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rec, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recordRows(rec)...)
		rec.Release()
	}
	slices.Sort(out)
	return out
}

// recordRows formats rec's rows (event_id first, so that sorting orders
// them by it), sorted.
func recordRows(rec arrow.RecordBatch) []string {
	out := make([]string, rec.NumRows())
	for r := range out {
		var sb strings.Builder
		for c := range int(rec.NumCols()) {
			col := rec.Column(c)
			if sb.Len() > 0 {
				sb.WriteByte('|')
			}
			sb.WriteString(rec.Schema().Field(c).Name + "=")
			if col.IsNull(r) {
				sb.WriteString("NULL")
				continue
			}
			sb.WriteString(col.ValueStr(r))
		}
		out[r] = sb.String()
	}
	slices.Sort(out)
	return out
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
