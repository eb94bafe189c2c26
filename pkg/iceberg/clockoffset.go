package iceberg

import (
	"bytes"
	"context"
	"encoding/json"
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
// them commit through CommitTable, with their metadata's timestamps moved
// back by Offset: iceberg-go also stamps and checks a snapshot with
// time.Now() while it stages the transaction in this process, and against
// the moved history that check is the skewed clock's. Every other method
// is the wrapped catalog's.
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
// the wrapper. The table's metadata is seen as the skewed process sees it
// against its own clock: every timestamp in it (last-updated-ms, each
// snapshot's, the snapshot and metadata log entries) moved back by the
// offset. iceberg-go checks a new snapshot against the table's history
// while the transaction is staged in this process, with this process's
// time.Now(); against the moved history that check is the one a skewed
// clock would make, and CommitTable moves what is committed forward again.
func (c *ClockOffsetCatalog) LoadTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	tbl, err := c.Catalog.LoadTable(ctx, ident)
	if err != nil {
		return nil, err
	}
	meta, err := shiftMetadata(tbl.Metadata(), -c.offset)
	if err != nil {
		return nil, err
	}
	return table.New(tbl.Identifier(), meta, tbl.MetadataLocation(), tbl.FS, c), nil
}

// shiftMetadata returns meta with every timestamp in it moved by d,
// through its JSON form (what catalogs read from metadata files).
func shiftMetadata(meta table.Metadata, d time.Duration) (table.Metadata, error) {
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("clock offset: encode metadata: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("clock offset: decode metadata: %w", err)
	}
	ms := d.Milliseconds()
	shift := func(obj map[string]any, key string) error {
		v, ok := obj[key]
		if !ok {
			return nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Errorf("clock offset: metadata %s is %T, not a number", key, v)
		}
		i, err := n.Int64()
		if err != nil {
			return fmt.Errorf("clock offset: metadata %s: %w", key, err)
		}
		obj[key] = i + ms
		return nil
	}
	if err := shift(m, "last-updated-ms"); err != nil {
		return nil, err
	}
	for _, list := range []string{"snapshots", "snapshot-log", "metadata-log"} {
		entries, _ := m[list].([]any)
		for _, e := range entries {
			obj, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("clock offset: metadata %s entry is %T", list, e)
			}
			if err := shift(obj, "timestamp-ms"); err != nil {
				return nil, err
			}
		}
	}
	if b, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("clock offset: encode metadata: %w", err)
	}
	return table.ParseMetadataBytes(b)
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
