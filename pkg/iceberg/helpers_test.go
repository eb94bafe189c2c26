package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// testEnv is one table in a fresh SQLite catalog.
type testEnv struct {
	cfg   CatalogConfig
	cat   catalog.Catalog
	ident table.Identifier
}

func newSQLiteEnv(t testing.TB) *testEnv {
	t.Helper()
	return newSQLiteEnvDir(t, t.TempDir())
}

func newSQLiteEnvDir(t testing.TB, dir string) *testEnv {
	t.Helper()
	cfg := CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: fileURL(filepath.Join(dir, "warehouse")),
		Table:     DefaultTable,
	}
	return openEnv(t, cfg)
}

func openEnv(t testing.TB, cfg CatalogConfig) *testEnv {
	t.Helper()
	ctx := context.Background()
	cat := openCatalog(t, cfg)
	ident, err := ParseIdentifier(cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	return &testEnv{cfg: cfg, cat: cat, ident: ident}
}

// openCatalog opens another handle on cfg's catalog, as a second process would.
func openCatalog(t testing.TB, cfg CatalogConfig) catalog.Catalog {
	t.Helper()
	cat, err := OpenCatalog(context.Background(), cfg)
	if err != nil {
		t.Fatalf("OpenCatalog: %v", err)
	}
	t.Cleanup(func() {
		if c, ok := cat.(catalog.Closer); ok {
			_ = c.Close()
		}
	})
	return cat
}

// makeRows returns n valid rows of shard with sequence numbers first..first+n-1.
func makeRows(shard string, first, n int) []schema.Row {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := schema.NewGenerator(uint64(first)+uint64(len(shard))*7919, start)
	rows := make([]schema.Row, n)
	for i := range rows {
		ts := start.Add(time.Duration(first+i) * time.Minute)
		e := g.Next(ts)
		e.EventID = fmt.Sprintf("evt_%s_%d", shard, first+i)
		rows[i] = schema.Row{
			Event:          e,
			ShardID:        shard,
			SequenceNumber: strconv.Itoa(first + i),
			IngestedAt:     ts.Add(time.Second),
		}
	}
	return rows
}

func makeBatch(t testing.TB, shard string, after string, first, n int) commit.Batch {
	t.Helper()
	rec := schema.BuildRecordBatch(memory.DefaultAllocator, makeRows(shard, first, n))
	t.Cleanup(rec.Release)
	return commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: shard, After: after, Last: strconv.Itoa(first + n - 1)}}}
}

// eventIDCounts scans the table's current snapshot and counts each event_id.
func eventIDCounts(t testing.TB, cat catalog.Catalog, ident table.Identifier) map[string]int {
	t.Helper()
	ctx := context.Background()
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	if tbl.CurrentSnapshot() == nil {
		return out
	}
	_, recs, err := tbl.Scan(table.WithSelectedFields(schema.ColEventID)).ToArrowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		col := rec.Column(0).(*array.String)
		for i := range col.Len() {
			out[col.Value(i)]++
		}
		rec.Release()
	}
	return out
}

// assertExactlyOnce checks the table holds exactly want, each once.
func assertExactlyOnce(t testing.TB, got map[string]int, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("table has %d distinct event ids, want %d", len(got), len(want))
	}
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("event %s stored %d times, want 1", id, got[id])
		}
	}
}

func ids(shard string, first, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("evt_%s_%d", shard, first+i)
	}
	return out
}

// metricValue returns the value of the counter or histogram count name in reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// tableDir is the local folder of env's table.
func tableDir(t testing.TB, env *testEnv) string {
	t.Helper()
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(tbl.Location())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.FromSlash(u.Path)
}

// parquetFiles lists the data files on disk under the table folder.
func parquetFiles(t testing.TB, env *testEnv) []string {
	t.Helper()
	var out []string
	root := filepath.Join(tableDir(t, env), "data")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// liveDataFiles returns the local paths of the data files in the current snapshot.
func liveDataFiles(t testing.TB, env *testEnv) map[string]bool {
	t.Helper()
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, task := range tasks {
		u, err := url.Parse(task.File.FilePath())
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.FromSlash(u.Path)] = true
	}
	return out
}
