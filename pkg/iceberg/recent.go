package iceberg

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/schema"
)

// recentScanConcurrency bounds the data files a RecentEventIDs scan decodes
// at once (several, to hide object-store latency).
const recentScanConcurrency = 4

// recentBatchRows caps the rows of the record batches a RecentEventIDs scan
// decodes. Each file being read holds its Parquet reader's buffers and a
// few decoded batches (the scan hands them out in file order, so the other
// readers' batches wait), so the batch size bounds the scan's memory:
// iceberg-go's default, 128 Ki rows, decodes a whole file of a commit at
// once; 8 Ki rows cut the scan's peak heap by about 35 MiB in
// BenchmarkRestoreWindow (BENCHMARKS.md, "Dedup window restore").
const recentBatchRows = 8 << 10

// RecentEventIDs calls add for each event id of the rows of shards ingested
// at or after since, to refill the dedup window on start-up or lease
// take-over (a shard and its ancestors are read in one scan). Ids stream
// out as the data files are read, file after file in the order of their
// lowest ingested_at: in time order when the files' ingested_at ranges do
// not overlap (one commit's files, uncompacted) and their rows are in time
// order, else in no particular order. Nothing is kept: id is valid only
// during the call (it points into a column buffer), so add copies or
// hashes it. add runs on the calling goroutine.
//
// The scan is planned with the filter shard_id IN shards and ingested_at
// >= since, so iceberg-go skips data files whose column bounds rule them
// out (the table writes full shard_id bounds, see createProperties); it
// reads only the event_id, ingested_at and shard_id columns, and filters
// the rows itself, in record batches of at most recentBatchRows rows, at
// most recentScanConcurrency files at a time. Every manifest is still read:
// ingested_at is not a partition column. An error, or ctx ending, stops the
// scan; the ids already given to add are then a partial set.
func (s *Sink) RecentEventIDs(ctx context.Context, shards []string, since time.Time, add func(shard, id string, at time.Time)) error {
	if len(shards) == 0 {
		return nil
	}
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return fmt.Errorf("load table for recent ids: %w", err)
	}
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	sc, recs, err := recentScan(ctx, tbl, shards, since)
	if err != nil {
		return err
	}
	cols, err := recentColumns(sc)
	if err != nil {
		return err
	}
	keep := func(shard string, at time.Time) bool { return !at.Before(since) && slices.Contains(shards, shard) }
	for rec, err := range recs {
		if err != nil {
			return fmt.Errorf("scan recent ids of %v: %w", shards, err)
		}
		err = cols.each(rec, keep, add)
		rec.Release()
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("scan recent ids of %v: %w", shards, err)
		}
	}
	return nil
}

// recentScan plans the data files that may hold rows of shards ingested
// at or after since (pruned by partition and column bounds) and reads
// them. The rows are not filtered by iceberg-go: its filter copies every
// column it keeps, several times the bytes the scan reads, so the caller
// filters them as it goes through them.
func recentScan(ctx context.Context, tbl *table.Table, shards []string, since time.Time) (*arrow.Schema, iter.Seq2[arrow.RecordBatch, error], error) {
	cols := table.WithSelectedFields(schema.ColShardID, schema.ColEventID, schema.ColIngestedAt)
	tasks, err := tbl.Scan(table.WithRowFilter(recentFilter(shards, since)), cols).PlanFiles(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan the scan of recent ids of %v: %w", shards, err)
	}
	for i := range tasks {
		tasks[i].Residual = nil
	}
	byIngestedAt(tbl, tasks)
	sc, recs, err := tbl.Scan(cols, table.WithMaxConcurrency(recentScanConcurrency), table.WithArrowBatchSize(recentBatchRows)).ReadTasks(ctx, tasks)
	if err != nil {
		return nil, nil, fmt.Errorf("scan recent ids of %v: %w", shards, err)
	}
	return sc, recs, nil
}

// byIngestedAt orders tasks by the lower bound of their files' ingested_at
// (files without one first), so that the ids of files that each hold one
// commit come out in time order and dedup.Filter.Seed need not sort them.
func byIngestedAt(tbl *table.Table, tasks []table.FileScanTask) {
	f, ok := tbl.Schema().FindFieldByName(schema.ColIngestedAt)
	if !ok {
		return
	}
	lower := func(t table.FileScanTask) int64 {
		b := t.File.LowerBoundValues()[f.ID]
		if len(b) != 8 {
			return math.MinInt64
		}
		return int64(binary.LittleEndian.Uint64(b))
	}
	slices.SortStableFunc(tasks, func(a, b table.FileScanTask) int { return cmp.Compare(lower(a), lower(b)) })
}

// recentFilter selects the rows of shards ingested at or after since.
func recentFilter(shards []string, since time.Time) iceberggo.BooleanExpression {
	return iceberggo.NewAnd(
		iceberggo.IsIn(iceberggo.Reference(schema.ColShardID), shards...),
		iceberggo.GreaterThanEqual(iceberggo.Reference(schema.ColIngestedAt), iceberggo.Timestamp(since.UnixMicro())),
	)
}

// recentCols are the positions of the scanned columns in its records.
type recentCols struct{ shard, id, at int }

func recentColumns(sc *arrow.Schema) (recentCols, error) {
	shard, id, at := sc.FieldIndices(schema.ColShardID), sc.FieldIndices(schema.ColEventID), sc.FieldIndices(schema.ColIngestedAt)
	if len(shard) != 1 || len(id) != 1 || len(at) != 1 {
		return recentCols{}, fmt.Errorf("scan recent ids: unexpected schema %s", sc)
	}
	return recentCols{shard: shard[0], id: id[0], at: at[0]}, nil
}

// each calls add for every row of rec with all three columns set that
// keep accepts.
func (c recentCols) each(rec arrow.RecordBatch, keep func(shard string, at time.Time) bool, add func(shard, id string, at time.Time)) error {
	shards, ok1 := rec.Column(c.shard).(*array.String)
	ids, ok2 := rec.Column(c.id).(*array.String)
	ats, ok3 := rec.Column(c.at).(*array.Timestamp)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("scan recent ids: unexpected column types %s", rec.Schema())
	}
	unit := ats.DataType().(*arrow.TimestampType).Unit
	for i := range ids.Len() {
		if ids.IsNull(i) || ats.IsNull(i) || shards.IsNull(i) {
			continue
		}
		shard, at := shards.Value(i), ats.Value(i).ToTime(unit)
		if keep(shard, at) {
			add(shard, ids.Value(i), at)
		}
	}
	return nil
}
