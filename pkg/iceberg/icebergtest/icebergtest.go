package icebergtest

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/iceberg"
)

// Table is an open catalog holding the payment table.
type Table struct {
	Config  iceberg.CatalogConfig
	Catalog catalog.Catalog
	Ident   table.Identifier
}

// SQLite creates the payment table on a SQLite catalog with a file
// warehouse under tb's temporary directory.
func SQLite(tb testing.TB) *Table {
	tb.Helper()
	dir := tb.TempDir()
	return Open(tb, iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Table:     iceberg.DefaultTable,
	})
}

// Open opens cfg's catalog (closed when tb ends) and creates the table if
// it is absent.
func Open(tb testing.TB, cfg iceberg.CatalogConfig) *Table {
	tb.Helper()
	ctx := context.Background()
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if c, ok := cat.(io.Closer); ok {
			_ = c.Close()
		}
	})
	ident, err := iceberg.ParseIdentifier(cfg.Table)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		tb.Fatal(err)
	}
	return &Table{Config: cfg, Catalog: cat, Ident: ident}
}

// Sink returns a sink on the table.
func (t *Table) Sink(cfg iceberg.SinkConfig) *iceberg.Sink {
	return iceberg.NewSink(t.Catalog, t.Ident, cfg)
}

// DeadLetters returns the table's dead-letter store (default prefix).
func (t *Table) DeadLetters() *iceberg.DeadLetter {
	return iceberg.NewDeadLetter(t.Config.Warehouse, "", t.Ident, nil)
}
