package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/iceberg"
)

// openTable opens c's catalog and parses c.Table; release closes the
// catalog. A bad table name is a usage error.
func openTable(ctx context.Context, c iceberg.CatalogConfig) (cat catalog.Catalog, ident table.Identifier, release func(), err error) {
	cat, err = iceberg.OpenCatalog(ctx, c)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open catalog %s: %w", c.Catalog, err)
	}
	release = func() {
		if cl, ok := cat.(io.Closer); ok {
			_ = cl.Close()
		}
	}
	ident, err = iceberg.ParseIdentifier(c.Table)
	if err != nil {
		release()
		return nil, nil, nil, &usageError{fmt.Errorf("--table: %w", err)}
	}
	return cat, ident, release, nil
}

// requireTable fails with a message naming --table and --catalog when the
// table does not exist; cmd names the subcommand, which never creates it.
func requireTable(ctx context.Context, cat catalog.Catalog, ident table.Identifier, c iceberg.CatalogConfig, cmd string) error {
	_, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return &usageError{fmt.Errorf("--table %s: no such table in catalog %s (check --table and --catalog; %s never creates a table)", c.Table, c.Catalog, cmd)}
	}
	if err != nil {
		return fmt.Errorf("table %s: %w", c.Table, err)
	}
	return nil
}
