package sqlview_test

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/paystream/paystream/pkg/schema"
	"github.com/paystream/paystream/pkg/sqlview"
)

const tierSQL = "SELECT subscription_tier, COUNT(*), SUM(amount_usd) FROM netflix_revenue_raw.subscription_payments WHERE status = 'succeeded' GROUP BY subscription_tier"

var paymentsIdent = table.Identifier{"netflix_revenue_raw", "subscription_payments"}

// newCatalog opens an embedded SQLite catalog with a local warehouse in a
// temporary directory (as pkg/iceberg's sqlite: catalog does).
func newCatalog(t *testing.T) catalog.Catalog {
	t.Helper()
	dir := t.TempDir()
	db, err := sql.Open(sqliteshim.ShimName, "file:"+filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	cat, err := sqlcat.NewCatalog("paystream", db, sqlcat.SQLite, iceberggo.Properties{"warehouse": "file://" + filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// createTable makes a payments-shaped table partitioned by day(event_ts).
func createTable(t *testing.T, cat catalog.Catalog, ident table.Identifier, props iceberggo.Properties) *table.Table {
	t.Helper()
	ctx := t.Context()
	ns := catalog.NamespaceFromIdent(ident)
	if ok, err := cat.CheckNamespaceExists(ctx, ns); err != nil {
		t.Fatal(err)
	} else if !ok {
		if err := cat.CreateNamespace(ctx, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	sch := schema.IcebergSchema()
	spec, err := iceberggo.NewPartitionSpecOpts(iceberggo.AddPartitionFieldByName(schema.ColEventTS, "event_ts_day", iceberggo.DayTransform{}, sch, nil))
	if err != nil {
		t.Fatal(err)
	}
	if props == nil {
		props = iceberggo.Properties{}
	}
	props["format-version"] = "2"
	tbl, err := cat.CreateTable(ctx, ident, sch, catalog.WithPartitionSpec(&spec), catalog.WithProperties(props))
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// generate returns n valid rows spread over two days.
func generate(seed uint64, n int) []schema.Row {
	g := schema.NewGenerator(seed, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	rows := make([]schema.Row, n)
	for i := range rows {
		ts := time.Date(2024, 5, 1, 23, 59, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
		rows[i] = schema.Row{Event: g.Next(ts), ShardID: "shard-0", SequenceNumber: "1", IngestedAt: ts}
	}
	return rows
}

func appendRows(t *testing.T, cat catalog.Catalog, ident table.Identifier, rows []schema.Row) *table.Table {
	t.Helper()
	tbl, err := cat.LoadTable(t.Context(), ident)
	if err != nil {
		t.Fatal(err)
	}
	rec := schema.BuildRecordBatch(nil, rows)
	defer rec.Release()
	rdr, err := array.NewRecordReader(schema.ArrowSchema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	tbl, err = tbl.Append(t.Context(), rdr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

type tierTotal struct {
	count int64
	sum   schema.Amount
}

// expectedTiers computes the answer of tierSQL in Go.
func expectedTiers(rows []schema.Row) map[string]tierTotal {
	out := map[string]tierTotal{}
	for _, r := range rows {
		if r.Status != schema.StatusSucceeded {
			continue
		}
		tt := out[r.SubscriptionTier]
		tt.count++
		tt.sum += r.AmountUSD
		out[r.SubscriptionTier] = tt
	}
	return out
}

func open(t *testing.T, cat catalog.Catalog, opts sqlview.Options) *sqlview.Engine {
	t.Helper()
	e, err := sqlview.Open(t.Context(), cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func query(t *testing.T, e *sqlview.Engine, sql string) *sqlview.Result {
	t.Helper()
	r, err := e.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return r
}

func TestTierTotalsMatchTheRows(t *testing.T) {
	cat := newCatalog(t)
	createTable(t, cat, paymentsIdent, nil)
	a, b := generate(1, 3000), generate(2, 1700)
	appendRows(t, cat, paymentsIdent, a)
	appendRows(t, cat, paymentsIdent, b)
	want := expectedTiers(append(slices.Clone(a), b...))

	e := open(t, cat, sqlview.Options{})
	r := query(t, e, tierSQL)
	if len(r.Columns) != 3 || r.Columns[2].Type != "DECIMAL(38,2)" {
		t.Fatalf("columns = %+v, want 3 with SUM as DECIMAL(38,2)", r.Columns)
	}
	got := map[string]tierTotal{}
	for _, row := range r.Rows {
		amt, err := schema.ParseAmount(row[2].Text)
		if err != nil {
			t.Fatalf("sum %q is not an exact two-decimal amount: %v", row[2].Text, err)
		}
		if !strings.Contains(row[2].Text, ".") || len(row[2].Text)-strings.Index(row[2].Text, ".") != 3 {
			t.Errorf("sum %q is not printed with two decimals", row[2].Text)
		}
		var n int64
		if err := json.Unmarshal([]byte(row[1].Text), &n); err != nil {
			t.Fatal(err)
		}
		got[row[0].Text] = tierTotal{n, amt}
	}
	if len(got) != len(want) {
		t.Fatalf("tiers = %v, want %v", got, want)
	}
	for tier, w := range want {
		if got[tier] != w {
			t.Errorf("tier %s: got count %d sum %s, want count %d sum %s", tier, got[tier].count, got[tier].sum, w.count, w.sum)
		}
	}

	info := e.Tables()
	if len(info) != 1 || info[0].Name != "netflix_revenue_raw.subscription_payments" || info[0].Rows != 4700 || info[0].Files < 2 || info[0].DeleteFiles != 0 {
		t.Errorf("Tables() = %+v", info)
	}
}

func TestFormatsPrintExactValues(t *testing.T) {
	cat := newCatalog(t)
	createTable(t, cat, paymentsIdent, nil)
	rows := generate(3, 3)
	rows[0].AmountUSD = 1550 // 15.50: a trailing zero that a float or trimmed decimal would lose
	rows[1].AmountUSD = -5
	rows[2].AmountUSD = 100_000_000
	appendRows(t, cat, paymentsIdent, rows)
	e := open(t, cat, sqlview.Options{})
	const q = "SELECT event_id, amount_usd, event_ts FROM netflix_revenue_raw.subscription_payments ORDER BY amount_usd"

	var buf bytes.Buffer
	if _, err := e.Stream(t.Context(), q, &buf, sqlview.FormatCSV); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantAmounts := []string{"-0.05", "15.50", "1000000.00"}
	if len(recs) != 4 || !slices.Equal(recs[0], []string{"event_id", "amount_usd", "event_ts"}) {
		t.Fatalf("csv = %q", recs)
	}
	for i, w := range wantAmounts {
		if recs[i+1][1] != w {
			t.Errorf("csv row %d amount = %q, want %q", i, recs[i+1][1], w)
		}
	}
	if recs[1][2] != rows[1].EventTS.Format(time.RFC3339Nano) {
		t.Errorf("csv event_ts = %q, want %q", recs[1][2], rows[1].EventTS.Format(time.RFC3339Nano))
	}

	buf.Reset()
	if _, err := e.Stream(t.Context(), q, &buf, sqlview.FormatJSON); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	var objs []map[string]any
	if err := dec.Decode(&objs); err != nil {
		t.Fatalf("json output does not parse: %v", err)
	}
	for i, w := range wantAmounts {
		if n, ok := objs[i]["amount_usd"].(json.Number); !ok || n.String() != w {
			t.Errorf("json row %d amount = %#v, want number %s", i, objs[i]["amount_usd"], w)
		}
	}

	buf.Reset()
	n, err := e.Stream(t.Context(), q, &buf, sqlview.FormatTable)
	if err != nil || n != 3 {
		t.Fatalf("table: n=%d err=%v", n, err)
	}
	out := buf.String()
	for _, w := range append(wantAmounts, "event_id", "(3 rows)") {
		if !strings.Contains(out, w) {
			t.Errorf("table output lacks %q:\n%s", w, out)
		}
	}
}

func TestEmptyTableHasColumnsAndNoRows(t *testing.T) {
	cat := newCatalog(t)
	createTable(t, cat, paymentsIdent, nil)
	e := open(t, cat, sqlview.Options{})
	r := query(t, e, "SELECT * FROM netflix_revenue_raw.subscription_payments")
	if len(r.Rows) != 0 {
		t.Fatalf("rows = %d, want 0", len(r.Rows))
	}
	var names []string
	for _, c := range r.Columns {
		names = append(names, c.Name)
	}
	var want []string
	for _, c := range schema.Columns {
		want = append(want, c.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("columns = %v, want %v", names, want)
	}
	r = query(t, e, tierSQL)
	if len(r.Rows) != 0 {
		t.Fatalf("tier query on an empty table returned %d rows", len(r.Rows))
	}
	if info := e.Tables(); len(info) != 1 || info[0].SnapshotID != 0 || info[0].Rows != 0 || info[0].Files != 0 {
		t.Fatalf("Tables() = %+v", info)
	}
}

func TestTimeTravel(t *testing.T) {
	cat := newCatalog(t)
	createTable(t, cat, paymentsIdent, nil)
	first := appendRows(t, cat, paymentsIdent, generate(4, 100))
	snap1 := first.CurrentSnapshot()
	// Snapshot times have millisecond resolution: make sure the next one is later.
	time.Sleep(5 * time.Millisecond)
	appendRows(t, cat, paymentsIdent, generate(5, 50))

	count := func(e *sqlview.Engine) string {
		t.Helper()
		return query(t, e, "SELECT count(*) FROM netflix_revenue_raw.subscription_payments").Rows[0][0].Text
	}
	if got := count(open(t, cat, sqlview.Options{})); got != "150" {
		t.Errorf("current: %s rows, want 150", got)
	}
	if got := count(open(t, cat, sqlview.Options{SnapshotTable: paymentsIdent, SnapshotID: snap1.SnapshotID})); got != "100" {
		t.Errorf("--snapshot first: %s rows, want 100", got)
	}
	asOf := time.UnixMilli(snap1.TimestampMs).Add(time.Millisecond / 2)
	if got := count(open(t, cat, sqlview.Options{AsOf: asOf})); got != "100" {
		t.Errorf("--as-of first commit: %s rows, want 100", got)
	}
	if got := count(open(t, cat, sqlview.Options{AsOf: time.UnixMilli(snap1.TimestampMs - 1)})); got != "0" {
		t.Errorf("--as-of before the first commit: %s rows, want 0", got)
	}

	_, err := sqlview.Open(t.Context(), cat, sqlview.Options{SnapshotTable: paymentsIdent, SnapshotID: 42})
	if !errors.Is(err, sqlview.ErrNoSnapshot) {
		t.Errorf("unknown snapshot: err = %v, want ErrNoSnapshot", err)
	}
	_, err = sqlview.Open(t.Context(), cat, sqlview.Options{SnapshotTable: table.Identifier{"nope", "t"}, SnapshotID: snap1.SnapshotID})
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		t.Errorf("snapshot of an unknown table: err = %v, want ErrNoSuchTable", err)
	}
	_, err = sqlview.Open(t.Context(), cat, sqlview.Options{SnapshotTable: paymentsIdent, SnapshotID: snap1.SnapshotID, AsOf: asOf})
	if err == nil {
		t.Error("--snapshot with --as-of: no error")
	}
}

func TestTableWithDeleteFilesIsRefusedOthersWork(t *testing.T) {
	cat := newCatalog(t)
	other := table.Identifier{"netflix_revenue_raw", "other"}
	createTable(t, cat, paymentsIdent, iceberggo.Properties{table.WriteDeleteModeKey: table.WriteModeMergeOnRead})
	createTable(t, cat, other, nil)
	rows := generate(6, 200)
	tbl := appendRows(t, cat, paymentsIdent, rows)
	appendRows(t, cat, other, generate(7, 10))
	// A merge-on-read delete of some rows writes positional delete files.
	if _, err := tbl.Delete(t.Context(), iceberggo.EqualTo(iceberggo.Reference(schema.ColEventID), rows[3].EventID), nil); err != nil {
		t.Fatal(err)
	}

	e := open(t, cat, sqlview.Options{})
	var info sqlview.TableInfo
	for _, ti := range e.Tables() {
		if ti.Name == "netflix_revenue_raw.subscription_payments" {
			info = ti
		}
	}
	if info.DeleteFiles == 0 {
		t.Fatalf("Tables() does not report the delete files: %+v", e.Tables())
	}
	_, err := e.Query(t.Context(), tierSQL)
	if !errors.Is(err, sqlview.ErrDeleteFiles) || !strings.Contains(err.Error(), "delete file") || !strings.Contains(err.Error(), "netflix_revenue_raw.subscription_payments") {
		t.Fatalf("query over a table with delete files: err = %v, want a refusal naming the table and delete files", err)
	}
	if got := query(t, e, "SELECT count(*) FROM netflix_revenue_raw.other").Rows[0][0].Text; got != "10" {
		t.Errorf("other table: %s rows, want 10", got)
	}
}

func TestQueryErrorsAreClear(t *testing.T) {
	cat := newCatalog(t)
	createTable(t, cat, paymentsIdent, nil)
	e := open(t, cat, sqlview.Options{})
	for _, tc := range []struct {
		name, sql string
		want      []string
	}{
		{"syntax", "SELEC 1", []string{"syntax error"}},
		{"unknown table", "SELECT * FROM netflix_revenue_raw.subscription_paymentz", []string{"does not exist", "tables in the catalog: netflix_revenue_raw.subscription_payments"}},
		{"unknown column", "SELECT amount FROM netflix_revenue_raw.subscription_payments", []string{"amount"}},
		{"empty", "  ", []string{"empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Query(t.Context(), tc.sql)
			if !errors.Is(err, sqlview.ErrQuery) {
				t.Fatalf("err = %v, want ErrQuery", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"table", "csv", "json", "JSON"} {
		if _, err := sqlview.ParseFormat(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := sqlview.ParseFormat("yaml"); err == nil || !strings.Contains(err.Error(), "table, csv or json") {
		t.Errorf("yaml: err = %v", err)
	}
}

func TestBrokenTableDoesNotHideTheOthers(t *testing.T) {
	cat := newCatalog(t)
	broken := table.Identifier{"netflix_revenue_raw", "broken"}
	createTable(t, cat, paymentsIdent, nil)
	createTable(t, cat, broken, nil)
	appendRows(t, cat, paymentsIdent, generate(8, 20))
	tbl := appendRows(t, cat, broken, generate(9, 20))
	// Lose the broken table's current metadata file.
	if err := os.Remove(strings.TrimPrefix(tbl.MetadataLocation(), "file://")); err != nil {
		t.Fatal(err)
	}

	e := open(t, cat, sqlview.Options{})
	if got := query(t, e, "SELECT count(*) FROM netflix_revenue_raw.subscription_payments").Rows[0][0].Text; got != "20" {
		t.Errorf("healthy table: %s rows, want 20", got)
	}
	_, err := e.Query(t.Context(), "SELECT count(*) FROM netflix_revenue_raw.broken")
	if !errors.Is(err, sqlview.ErrUnreadable) || !strings.Contains(err.Error(), "netflix_revenue_raw.broken") {
		t.Errorf("broken table: err = %v, want ErrUnreadable naming it", err)
	}
	var buf bytes.Buffer
	if err := sqlview.TablesResult(e.Tables()).Write(&buf, sqlview.FormatCSV); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "netflix_revenue_raw.broken") || !strings.Contains(buf.String(), "cannot be read") {
		t.Errorf("--tables does not show the broken table:\n%s", buf.String())
	}
	// Pinning a snapshot of the broken table fails outright.
	if _, err := sqlview.Open(t.Context(), cat, sqlview.Options{SnapshotTable: broken, SnapshotID: 1}); err == nil {
		t.Error("--snapshot of an unreadable table: no error")
	}
}
