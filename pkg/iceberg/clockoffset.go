package iceberg

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// ClockOffsetCatalog is a catalog whose commits are those of a process
// whose wall clock is Offset ahead (negative: behind). It is for fault
// injection only: no environment variable or time namespace moves a Go
// process's wall clock, and iceberg-go stamps each snapshot with the
// committing process's time.Now().
//
// CommitTable shifts the timestamp of every snapshot the updates add
// (the AddSnapshot update's Snapshot.TimestampMs) by Offset before the
// wrapped catalog applies them. That is every time a skewed process
// writes into a commit that adds a snapshot: the metadata's
// last-updated-ms, the snapshot log entry and the next metadata log entry
// are all taken from the added snapshot's timestamp. What it leaves
// unshifted: the last-updated-ms of commits that add no snapshot
// (properties, snapshot expiry), which iceberg-go stamps with the real
// time.Now() while it builds the metadata; and every other use of the
// clock in the process (ingested_at, retention ages, dead letters).
//
// LoadTable returns tables bound to the wrapper, so that transactions on
// them commit through CommitTable; every other method is the wrapped
// catalog's.
type ClockOffsetCatalog struct {
	catalog.Catalog
	offset time.Duration
}

// WithClockOffset returns cat with every snapshot its commits add stamped
// offset later (earlier when negative) than this process's clock. A zero
// offset returns cat itself.
func WithClockOffset(cat catalog.Catalog, offset time.Duration) catalog.Catalog {
	if offset == 0 {
		return cat
	}
	return &ClockOffsetCatalog{Catalog: cat, offset: offset}
}

var _ catalog.Catalog = (*ClockOffsetCatalog)(nil)

// Offset is how far ahead of this process's clock snapshots are stamped.
func (c *ClockOffsetCatalog) Offset() time.Duration { return c.offset }

// LoadTable loads the table through the wrapped catalog and binds it to
// the wrapper.
func (c *ClockOffsetCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}
	return table.New(tbl.Identifier(), tbl.Metadata(), tbl.MetadataLocation(), tbl.FS, c), nil
}

// CommitTable commits upd through the wrapped catalog with every added
// snapshot's timestamp shifted by the offset. The caller's updates and
// snapshots are not modified: shifted copies are committed.
func (c *ClockOffsetCatalog) CommitTable(ctx context.Context, ident table.Identifier, reqs []table.Requirement, upd []table.Update) (table.Metadata, string, error) {
	shifted := make([]table.Update, len(upd))
	for i, u := range upd {
		shifted[i] = u
		if u.Action() != table.UpdateAddSnapshot {
			continue
		}
		snap, err := addedSnapshot(u)
		if err != nil {
			return nil, "", err
		}
		moved := *snap
		moved.TimestampMs += c.offset.Milliseconds()
		shifted[i] = table.NewAddSnapshotUpdate(&moved)
	}
	return c.Catalog.CommitTable(ctx, ident, reqs, shifted)
}

// Close closes the wrapped catalog when it has a Close method.
func (c *ClockOffsetCatalog) Close() error {
	if cl, ok := c.Catalog.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// addedSnapshot returns the snapshot of an AddSnapshot update. iceberg-go
// exports the field but not the update's type, hence reflection.
func addedSnapshot(u table.Update) (*table.Snapshot, error) {
	v := reflect.ValueOf(u)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Snapshot"); f.IsValid() {
			if s, ok := f.Interface().(*table.Snapshot); ok && s != nil {
				return s, nil
			}
		}
	}
	return nil, fmt.Errorf("clock offset: %s update %T carries no snapshot", u.Action(), u)
}
