package scalebench

import (
	"context"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/schema"
)

// tableContents returns the number of snapshots made between start and
// end, and every event_id in the table.
func (b *bench) tableContents(ctx context.Context, start, end time.Time) (int64, []string) {
	tbl, err := b.catalog().LoadTable(ctx, b.ident)
	if err != nil {
		b.t.Fatal(err)
	}
	var snaps int64
	for _, s := range tbl.Metadata().Snapshots() {
		at := time.UnixMilli(s.TimestampMs)
		if !at.Before(start) && !at.After(end) {
			snaps++
		}
	}
	if tbl.CurrentSnapshot() == nil {
		return snaps, nil
	}
	arrowTbl, err := tbl.Scan(table.WithSelectedFields(schema.ColEventID)).ToArrowTable(ctx)
	if err != nil {
		b.t.Fatal(err)
	}
	defer arrowTbl.Release()
	var ids []string
	tr := array.NewTableReader(arrowTbl, 0)
	defer tr.Release()
	for tr.Next() {
		col := tr.RecordBatch().Column(0).(*array.String)
		for i := range col.Len() {
			ids = append(ids, col.Value(i))
		}
	}
	return snaps, ids
}
