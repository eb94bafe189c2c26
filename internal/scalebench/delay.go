package scalebench

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// DelayCatalog wraps an Iceberg catalog so that every CommitTable waits a
// fixed delay before it commits, and counts the CommitTable calls (commit
// attempts). The delay widens the window between loading a table and its
// compare-and-swap as a remote catalog's round trips do. Safe for
// concurrent use.
type DelayCatalog struct {
	catalog.Catalog
	delay    time.Duration
	attempts atomic.Int64
}

// NewDelayCatalog returns cat with delay added before every commit.
func NewDelayCatalog(cat catalog.Catalog, delay time.Duration) *DelayCatalog {
	return &DelayCatalog{Catalog: cat, delay: delay}
}

// CommitTable waits the delay, then commits through the wrapped catalog.
// If ctx ends during the wait it returns ctx's error and commits nothing.
func (c *DelayCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, upd []table.Update) (table.Metadata, string, error) {
	c.attempts.Add(1)
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case <-t.C:
	}
	return c.Catalog.CommitTable(ctx, ident, reqs, upd)
}

// LoadTable returns the table with this wrapper as its catalog, so that
// transactions on it commit through CommitTable above.
func (c *DelayCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}
	return table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, c), nil
}

// Attempts returns the CommitTable calls so far.
func (c *DelayCatalog) Attempts() int64 { return c.attempts.Load() }
