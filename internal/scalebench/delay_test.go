package scalebench

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/iceberg"
)

func sqliteTable(t *testing.T) (catalog.Catalog, table.Identifier) {
	t.Helper()
	dir := t.TempDir()
	cfg := iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Table:     iceberg.DefaultTable,
	}
	ctx := context.Background()
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	return cat, ident
}

// setProperty commits k=v through a table loaded from cat.
func setProperty(ctx context.Context, cat catalog.Catalog, ident table.Identifier, k, v string) error {
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return err
	}
	txn := tbl.NewTransaction()
	if err := txn.SetProperties(map[string]string{k: v}); err != nil {
		return err
	}
	_, err = txn.Commit(ctx)
	return err
}

func property(t *testing.T, cat catalog.Catalog, ident table.Identifier, k string) string {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), ident)
	if err != nil {
		t.Fatal(err)
	}
	return tbl.Properties()[k]
}

// A commit through a table loaded from the wrapper waits the delay, then
// lands in the wrapped catalog, and counts as one attempt.
func TestDelayCatalogDelaysAndCommits(t *testing.T) {
	cat, ident := sqliteTable(t)
	const delay = 200 * time.Millisecond
	dc := NewDelayCatalog(cat, delay)
	start := time.Now()
	if err := setProperty(context.Background(), dc, ident, "scalebench.test", "1"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("commit took %s, want at least the delay %s", took, delay)
	}
	if got := property(t, cat, ident, "scalebench.test"); got != "1" {
		t.Errorf("property in the wrapped catalog = %q, want %q", got, "1")
	}
	if got := dc.Attempts(); got != 1 {
		t.Errorf("Attempts() = %d, want 1", got)
	}
}

// A commit whose context ends during the delay returns the context's
// error and commits nothing.
func TestDelayCatalogCancelDuringDelay(t *testing.T) {
	cat, ident := sqliteTable(t)
	dc := NewDelayCatalog(cat, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- setProperty(ctx, dc, ident, "scalebench.test", "1") }()
	deadline := time.Now().Add(10 * time.Second)
	for dc.Attempts() == 0 { // wait until the commit is in its delay
		select {
		case err := <-done:
			t.Fatalf("commit returned %v before its delay ended", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("no commit attempt reached the wrapper within 10s")
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("commit returned %v, want context.Canceled", err)
	}
	if got := property(t, cat, ident, "scalebench.test"); got != "" {
		t.Errorf("property = %q after a cancelled commit, want none", got)
	}
}
