package iceberg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// Writing data files.
//
// The sink writes a batch's Parquet data files itself (one per partition,
// column by column with arrow-go's Parquet file.Writer, parquet.go) instead of through
// iceberg-go's table.WriteRecords, and describes them with
// table.DataFileFromMetadata for AddDataFiles. What this buys: the string
// columns the table dictionary-encodes reach the Parquet writer as Arrow
// dictionary arrays, so its dictionary encoder writes indices instead of
// hashing (and boxing into an interface) every value of every row
// (BENCHMARKS.md, "A data-file writer of our own"). iceberg-go's writer
// casts dictionary columns back to plain strings before the Parquet
// writer sees them, so it cannot take that path.
//
// The files are the ones iceberg-go's writer makes for the same rows: the
// table's Arrow schema with its field ids (stored in each file, with plain
// string types: readers such as RecentEventIDs see utf8 columns), the
// Parquet writer settings iceberg-go derives from the table properties,
// the same file names and partition folders, and the manifest statistics
// computed by iceberg-go from the file's footer under the table's metrics
// modes (TestDirectWriterMatchesIcebergGo). A table the direct writer does
// not cover — another partition spec, a sort order, format v3, bloom
// filters, a file format or codec it does not know, a column type it does
// not expect — is written by iceberg-go's writer as before.
//
// Two differences, both for batches far larger than a commit's: a batch
// is one file per partition whatever its size (iceberg-go's writer rolls
// to a new file at write.target-file-size-bytes, 512 MiB by default,
// about 80 M rows here), and in a batch of more than one row group
// (write.parquet.row-group-limit, 1 Mi rows) a dictionary column's row
// group statistics span the whole batch's values (the file's, which the
// manifest records, are exact).

// errNotDirect means the direct writer does not cover the table or the
// batch; iceberg-go's writer writes it.
var errNotDirect = errors.New("not covered by the direct data file writer")

// Table properties iceberg-go reads for the Parquet writer that its table
// package does not export.
const (
	parquetDictEnabledKey = "parquet.enable.dictionary"
	// bloomFilterKeyPrefix, followed by a column name, enables a column's
	// bloom filter.
	bloomFilterKeyPrefix = table.ParquetBloomFilterColumnEnabledKeyPrefix + "."
)

// DeltaEncodingKey is the table property that, when "true", has the
// Parquet writer encode event_ts and ingested_at with DELTA_BINARY_PACKED
// and sequence_number with DELTA_BYTE_ARRAY, without dictionaries:
// consecutive values differ little (ingested_at is one value per commit),
// so the files get about a third smaller and the writer compresses fewer
// bytes, and it hashes no value into a dictionary (for ingested_at about
// 4 % of file ingest's CPU). New tables set it; an existing table keeps
// writing PLAIN and dictionaries until someone sets it, because readers
// must know Parquet's delta encodings (README, "The table"). A
// column's dictionary property (write.parquet.dict-encoding-enabled.column.*)
// still wins over it.
const DeltaEncodingKey = "paystream.parquet.delta-encoding"

// deltaEncodings are the columns DeltaEncodingKey encodes and how.
var deltaEncodings = []struct {
	col string
	enc parquet.Encoding
}{
	{schema.ColEventTS, parquet.Encodings.DeltaBinaryPacked},
	{schema.ColSequenceNumber, parquet.Encodings.DeltaByteArray},
	{schema.ColIngestedAt, parquet.Encodings.DeltaBinaryPacked},
}

// writeDataFiles writes rec as Parquet data files of tbl (one per
// partition) without committing them. Field ids are taken from the table's
// schema by column name, so a table whose ids differ from pkg/schema's
// still gets correct files. On an error, the files already written are
// removed.
func writeDataFiles(ctx context.Context, tbl *table.Table, rec arrow.RecordBatch, commitID uuid.UUID) ([]iceberggo.DataFile, error) {
	files, err := writeDirect(ctx, tbl, rec, commitID)
	if errors.Is(err, errNotDirect) {
		return writeDataFilesIceberg(ctx, tbl, rec, commitID)
	}
	return files, err
}

// writeDirect writes rec with the direct writer, or returns errNotDirect
// (having written nothing).
func writeDirect(ctx context.Context, tbl *table.Table, rec arrow.RecordBatch, commitID uuid.UUID) ([]iceberggo.DataFile, error) {
	p, err := newFilePlan(tbl, rec.Schema())
	if err != nil {
		return nil, err
	}
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	wfs, ok := fsys.(iceio.WriteFileIO)
	if !ok {
		return nil, errNotDirect
	}
	parts, err := p.partitions(ctx, rec)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, pt := range parts {
			releaseAll(pt.cols)
		}
	}()
	files := make([]iceberggo.DataFile, 0, len(parts))
	for i, pt := range parts {
		df, err := p.writeFile(ctx, wfs, dataFileName(i, commitID), pt)
		if err != nil {
			removeFiles(ctx, tbl, files)
			return nil, err
		}
		files = append(files, df)
	}
	return files, nil
}

// dataFileName names a data file as iceberg-go's writer does:
// partition index, task, write id, file number in the partition.
func dataFileName(partition int, commitID uuid.UUID) string {
	return fmt.Sprintf("%05d-%d-%s-%05d.parquet", partition, 0, commitID, 1)
}

// filePlan is how the direct writer writes batches of one schema to one
// table.
type filePlan struct {
	tbl   *table.Table
	props iceberggo.Properties
	// fileSchema is the table's schema as iceberg-go's writer gives it to
	// the Parquet writer (field ids in the metadata); it is stored in each
	// file.
	fileSchema *arrow.Schema
	// cols[i] is the batch's column for fileSchema's field i; -1: the
	// batch lacks that optional column, which is written as NULLs.
	cols []int
	// dict[i]: field i is a string or decimal column the table
	// dictionary-encodes; the writer hands it to the Parquet writer as a
	// dictionary array.
	dict []bool
	// width[i] is the fixed_len_byte_array width of decimal field i.
	width  []int
	wp     *parquet.WriterProperties
	layout parquetLayout
	// dictLimit is the dictionary page limit: a column whose distinct
	// values take more is handed over plain (the Parquet writer would fall
	// back to plain encoding for it anyway).
	dictLimit int
	// day is the batch's column of the day partition's source, -1 for an
	// unpartitioned table.
	day int
}

// newFilePlan checks that the direct writer covers tbl and batches of
// schema sc, and prepares the writer settings.
func newFilePlan(tbl *table.Table, sc *arrow.Schema) (*filePlan, error) {
	props := tbl.Properties()
	if tbl.Metadata().Version() > 2 || !tbl.SortOrder().IsUnsorted() ||
		props.Get(table.WriteFormatDefaultKey, table.WriteFormatDefaultDefault) != "parquet" ||
		props.GetBool(table.ParquetShredVariantsKey, table.ParquetShredVariantsDefault) {
		return nil, errNotDirect
	}
	for k, v := range props {
		if strings.HasPrefix(k, bloomFilterKeyPrefix) && strings.EqualFold(v, "true") {
			return nil, errNotDirect
		}
	}
	tsc := tbl.Schema()
	if sanitized, err := iceberggo.SanitizeColumnNames(tsc); err != nil || !sanitized.Equals(tsc) {
		return nil, errNotDirect
	}
	fileSchema, err := table.SchemaToArrowSchemaWithOptions(tsc, table.ArrowSchemaOptions{IncludeFieldIDs: true, TableProperties: props})
	if err != nil {
		return nil, errNotDirect
	}
	for _, f := range sc.Fields() {
		if _, ok := tsc.FindFieldByName(f.Name); !ok {
			return nil, fmt.Errorf("%w: column %s is not in the table (run EnsureTable to add it)", commit.ErrInvalidBatch, f.Name)
		}
	}
	wp, err := parquetWriterProperties(props, fileSchema)
	if err != nil {
		return nil, err
	}
	layout, err := newParquetLayout(fileSchema, wp)
	if err != nil {
		return nil, errNotDirect
	}
	if layout.schema.NumColumns() != fileSchema.NumFields() {
		return nil, errNotDirect // nested columns
	}
	p := &filePlan{
		tbl:        tbl,
		props:      props,
		fileSchema: fileSchema,
		cols:       make([]int, fileSchema.NumFields()),
		dict:       make([]bool, fileSchema.NumFields()),
		width:      make([]int, fileSchema.NumFields()),
		wp:         wp,
		layout:     layout,
		dictLimit:  int(wp.DictionaryPageSizeLimit()),
		day:        -1,
	}
	for i, f := range fileSchema.Fields() {
		p.cols[i] = -1
		idx := sc.FieldIndices(f.Name)
		if len(idx) == 0 {
			if !f.Nullable {
				return nil, fmt.Errorf("%w: required column %s is missing from the records", commit.ErrInvalidBatch, f.Name)
			}
			continue
		}
		if !sameType(sc.Field(idx[0]).Type, f.Type) {
			return nil, errNotDirect
		}
		p.cols[i] = idx[0]
		col := layout.schema.Column(i)
		switch {
		case !wp.DictionaryEnabledFor(col.Path()):
		case f.Type.ID() == arrow.STRING:
			p.dict[i] = true
		case f.Type.ID() == arrow.DECIMAL128 && col.PhysicalType() == parquet.Types.FixedLenByteArray:
			p.dict[i], p.width[i] = true, col.TypeLength()
		}
	}
	if err := p.bindPartition(sc); err != nil {
		return nil, err
	}
	return p, nil
}

// sameType reports whether a batch column of type have can be written as
// a file column of type want: the same type, or a dictionary of it.
func sameType(have, want arrow.DataType) bool {
	if d, ok := have.(*arrow.DictionaryType); ok {
		have = d.ValueType
	}
	return arrow.TypeEqual(have, want)
}

// bindPartition accepts an unpartitioned table or one partitioned by the
// day of a microsecond timestamp column (paystream's day(event_ts)).
func (p *filePlan) bindPartition(sc *arrow.Schema) error {
	spec := p.tbl.Spec()
	switch spec.NumFields() {
	case 0:
		return nil
	case 1:
	default:
		return errNotDirect
	}
	f := spec.Field(0)
	if _, ok := f.Transform.(iceberggo.DayTransform); !ok {
		return errNotDirect
	}
	name, ok := p.tbl.Schema().FindColumnName(f.SourceID())
	if !ok {
		return errNotDirect
	}
	idx := sc.FieldIndices(name)
	if len(idx) == 0 {
		return errNotDirect
	}
	ts, ok := sc.Field(idx[0]).Type.(*arrow.TimestampType)
	if !ok || ts.Unit != arrow.Microsecond {
		return errNotDirect
	}
	p.day = idx[0]
	return nil
}

// parquetWriterProperties returns the Parquet writer settings iceberg-go
// v0.7.0 derives from the table properties (table/internal's
// GetWriteProperties and getWriteProperties): row-group row limit, page
// size, data page version, page row limit as the write batch size,
// dictionary page limit, codec and level, dictionary encoding (table-wide
// and per column) with the cost-based fall-back on every column, the
// allocator, and bloom filter size (filters themselves send the table to
// iceberg-go's writer).
func parquetWriterProperties(props iceberggo.Properties, sc *arrow.Schema) (*parquet.WriterProperties, error) {
	var version parquet.DataPageVersion
	switch props.Get(table.ParquetPageVersionKey, table.ParquetPageVersionDefault) {
	case "1":
		version = parquet.DataPageV1
	case "2":
		version = parquet.DataPageV2
	default:
		return nil, errNotDirect
	}
	var codec compress.Compression
	switch props.Get(table.ParquetCompressionKey, table.ParquetCompressionDefault) {
	case "zstd":
		codec = compress.Codecs.Zstd
	case "snappy":
		codec = compress.Codecs.Snappy
	case "gzip":
		codec = compress.Codecs.Gzip
	case "uncompressed":
		codec = compress.Codecs.Uncompressed
	default:
		return nil, errNotDirect
	}
	for _, k := range []string{table.ParquetRowGroupLimitKey, table.ParquetPageSizeBytesKey, table.ParquetPageRowLimitKey,
		table.ParquetDictSizeBytesKey, table.ParquetCompressionLevelKey, table.ParquetBloomFilterMaxBytesKey} {
		if v, ok := props[k]; ok {
			if _, err := strconv.Atoi(v); err != nil {
				return nil, errNotDirect // iceberg-go's writer reports it
			}
		}
	}
	wp := []parquet.WriterProperty{
		parquet.WithAllocator(memory.DefaultAllocator),
		parquet.WithMaxRowGroupLength(int64(props.GetInt(table.ParquetRowGroupLimitKey, table.ParquetRowGroupLimitDefault))),
		parquet.WithDataPageSize(int64(props.GetInt(table.ParquetPageSizeBytesKey, table.ParquetPageSizeBytesDefault))),
		parquet.WithDataPageVersion(version),
		parquet.WithBatchSize(int64(props.GetInt(table.ParquetPageRowLimitKey, table.ParquetPageRowLimitDefault))),
		parquet.WithDictionaryPageSizeLimit(int64(props.GetInt(table.ParquetDictSizeBytesKey, table.ParquetDictSizeBytesDefault))),
		parquet.WithCompression(codec),
		parquet.WithCompressionLevel(props.GetInt(table.ParquetCompressionLevelKey, table.ParquetCompressionLevelDefault)),
		parquet.WithMaxBloomFilterBytes(int64(props.GetInt(table.ParquetBloomFilterMaxBytesKey, table.ParquetBloomFilterMaxBytesDefault))),
	}
	dict := true
	if v, ok := props[parquetDictEnabledKey]; ok {
		dict = strings.EqualFold(v, "true")
	}
	wp = append(wp, parquet.WithDictionaryDefault(dict))
	if strings.EqualFold(props.Get(DeltaEncodingKey, "false"), "true") {
		for _, d := range deltaEncodings {
			wp = append(wp, parquet.WithEncodingFor(d.col, d.enc), parquet.WithDictionaryFor(d.col, false))
		}
	}
	for k, v := range props {
		if col, ok := strings.CutPrefix(k, dictEncodingKey); ok && col != "" {
			wp = append(wp, parquet.WithDictionaryFor(col, strings.EqualFold(v, "true")))
		}
	}
	for _, f := range sc.Fields() {
		if f.Type.ID() == arrow.STRUCT || f.Type.ID() == arrow.LIST || f.Type.ID() == arrow.MAP {
			return nil, errNotDirect
		}
		wp = append(wp, parquet.WithDictionaryCostFallbackFor(f.Name, true))
	}
	return parquet.NewWriterProperties(wp...), nil
}

// part is one data file to write: its rows' columns in file schema order
// (nil for a column the batch lacks) and partition.
type part struct {
	cols   []arrow.Array
	rows   int64
	split  bool        // the rows were taken out of a batch of several partitions
	values map[int]any // partition field id → value; nil when unpartitioned
	path   string      // partition folder, "" when unpartitioned
}

// nullDay is the partition key of rows whose timestamp is NULL.
const nullDay = math.MinInt64

// partitions splits rec by partition, in the order of each partition's
// first row. The parts own their columns.
func (p *filePlan) partitions(ctx context.Context, rec arrow.RecordBatch) ([]part, error) {
	whole := func() []arrow.Array {
		cols := make([]arrow.Array, len(p.cols))
		for i, c := range p.cols {
			if c >= 0 {
				cols[i] = rec.Column(c)
				cols[i].Retain()
			}
		}
		return cols
	}
	if p.day < 0 {
		return []part{{cols: whole(), rows: rec.NumRows()}}, nil
	}
	ts, ok := rec.Column(p.day).(*array.Timestamp)
	if !ok {
		return nil, errNotDirect
	}
	days := make([]int64, ts.Len())
	const microsPerDay = 86_400_000_000
	for i := range days {
		if ts.IsNull(i) {
			days[i] = nullDay
			continue
		}
		days[i] = floorDiv(int64(ts.Value(i)), microsPerDay)
	}
	var order []int64 // partition keys in the order first seen
	rows := map[int64][]int64{}
	for i, d := range days {
		if _, ok := rows[d]; !ok {
			order = append(order, d)
			if len(order) == 1 {
				// Most batches hold one day: no row lists needed unless
				// another day turns up.
				rows[d] = nil
				continue
			}
			if rows[order[0]] == nil {
				first := make([]int64, i)
				for j := range first {
					first[j] = int64(j)
				}
				rows[order[0]] = first
			}
		}
		if len(order) > 1 {
			rows[d] = append(rows[d], int64(i))
		}
	}
	spec := p.tbl.Spec()
	field := spec.Field(0).FieldID
	parts := make([]part, 0, len(order))
	for _, d := range order {
		var v any // NULL partition
		if d != nullDay {
			v = iceberggo.Date(d)
		}
		pt := part{values: map[int]any{field: v}, path: spec.PartitionToPath(partitionRow{v}, p.tbl.Schema())}
		if len(order) == 1 {
			pt.cols, pt.rows = whole(), rec.NumRows()
		} else {
			cols, err := takeRows(ctx, rec, p.cols, rows[d])
			if err != nil {
				for _, q := range parts {
					releaseAll(q.cols)
				}
				return nil, err
			}
			pt.cols, pt.rows, pt.split = cols, int64(len(rows[d])), true
		}
		parts = append(parts, pt)
	}
	return parts, nil
}

// takeRows returns the given rows of rec's columns idx (nil for -1).
func takeRows(ctx context.Context, rec arrow.RecordBatch, idx []int, rows []int64) ([]arrow.Array, error) {
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues(rows, nil)
	indices := b.NewArray()
	b.Release()
	defer indices.Release()
	cols := make([]arrow.Array, len(idx))
	for i, c := range idx {
		if c < 0 {
			continue
		}
		col, err := compute.TakeArray(ctx, rec.Column(c), indices)
		if err != nil {
			releaseAll(cols)
			return nil, fmt.Errorf("split the batch by partition: %w", err)
		}
		cols[i] = col
	}
	return cols, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// partitionRow is a one-field partition tuple for PartitionToPath.
type partitionRow struct{ v any }

func (r partitionRow) Size() int      { return 1 }
func (r partitionRow) Get(int) any    { return r.v }
func (r partitionRow) Set(int, any)   { panic("partitionRow is read-only") }
func (r partitionRow) String() string { return fmt.Sprint(r.v) }

func releaseAll(cols []arrow.Array) {
	for _, c := range cols {
		if c != nil {
			c.Release()
		}
	}
}

// location returns where a data file called name of the partition folder
// dir goes, as iceberg-go's writer places it (the table's location
// provider; partitioned files under data/<dir>).
func (p *filePlan) location(name, dir string) (string, error) {
	props := p.props
	if dir != "" {
		root, err := url.Parse(p.tbl.Location())
		if err != nil {
			return "", err
		}
		props = maps.Clone(p.props)
		props[table.WriteDataPathKey] = root.JoinPath("data", dir).String()
	}
	loc, err := table.LoadLocationProvider(p.tbl.Location(), props)
	if err != nil {
		return "", err
	}
	return loc.NewDataLocation(name), nil
}

// writeFile writes one data file and describes it for the manifest. A
// failed write removes the file.
func (p *filePlan) writeFile(ctx context.Context, fsys iceio.WriteFileIO, name string, pt part) (df iceberggo.DataFile, err error) {
	path, err := p.location(name, pt.path)
	if err != nil {
		return nil, err
	}
	cols, err := p.fileColumns(ctx, pt)
	if err != nil {
		return nil, err
	}
	defer releaseAll(cols)

	f, err := fsys.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = fsys.Remove(path)
		}
	}()
	out := &countingWriter{w: f}
	meta, err := p.writeParquet(out, cols, pt.rows)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", path, err)
	}
	df, err = table.DataFileFromMetadata(table.DataFileArgs{
		Schema:          p.tbl.Schema(),
		Spec:            p.tbl.Spec(),
		Format:          iceberggo.ParquetFile,
		Metadata:        meta,
		FilePath:        path,
		FileSize:        out.n,
		Content:         iceberggo.EntryContentData,
		PartitionValues: pt.values,
		Properties:      p.props,
		FormatVersion:   p.tbl.Metadata().Version(),
	})
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", path, err)
	}
	if df.Count() != pt.rows {
		return nil, fmt.Errorf("data file %s holds %d rows, want %d", path, df.Count(), pt.rows)
	}
	return df, nil
}

// fileColumns returns pt's columns as written: NULLs for a missing
// column, dictionary arrays for the string and decimal columns the table
// dictionary-encodes (when their distinct values fit the dictionary
// page), plain arrays otherwise. A dictionary column of the batch
// (schema.NewDictionaryRecordBuilder's) is passed on as it is when it is
// worth it; the caller releases the result.
func (p *filePlan) fileColumns(ctx context.Context, pt part) ([]arrow.Array, error) {
	cols := make([]arrow.Array, len(pt.cols))
	for i, c := range pt.cols {
		if c == nil {
			cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, p.fileSchema.Field(i).Type, int(pt.rows))
			continue
		}
		if d, ok := c.(*array.Dictionary); ok {
			// A dictionary of a part split from a batch of several
			// partitions still holds the whole batch's values: the file's
			// statistics would count values it does not hold.
			if p.dict[i] && !pt.split && worthDictionary(d, p.dictLimit) {
				c.Retain()
				cols[i] = c
				continue
			}
			dense, err := compute.CastArray(ctx, c, compute.SafeCastOptions(d.Dictionary().DataType()))
			if err != nil {
				releaseAll(cols)
				return nil, fmt.Errorf("column %s: %w", p.fileSchema.Field(i).Name, err)
			}
			defer dense.Release()
			c = dense
		}
		switch {
		case p.dict[i] && c.DataType().ID() == arrow.STRING:
			if d := dictionaryOf(c.(*array.String), p.dictLimit); d != nil {
				cols[i] = d
				continue
			}
		case p.dict[i] && c.DataType().ID() == arrow.DECIMAL128:
			if d := decimalDictionaryOf(c.(*array.Decimal128), p.width[i], p.dictLimit); d != nil {
				cols[i] = d
				continue
			}
		}
		c.Retain()
		cols[i] = c
	}
	return cols, nil
}

// worthDictionary applies dictionaryOf's limits to a dictionary array of
// plain strings.
func worthDictionary(d *array.Dictionary, limit int) bool {
	values, ok := d.Dictionary().(*array.String)
	if !ok || d.Len() == 0 || d.NullN() == d.Len() {
		return false
	}
	offs := values.ValueOffsets()
	return values.Len() <= d.Len()/4+16 && int(offs[len(offs)-1]-offs[0]) <= limit
}

// countingWriter counts the bytes written through it (the file size for
// the manifest). It is no io.Closer, so the Parquet writer leaves closing
// the file to writeFile.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// writeDataFilesIceberg writes rec with iceberg-go's writer: for tables
// the direct writer does not cover.
func writeDataFilesIceberg(ctx context.Context, tbl *table.Table, rec arrow.RecordBatch, commitID uuid.UUID) ([]iceberggo.DataFile, error) {
	rec, err := withoutDictionaries(ctx, rec)
	if err != nil {
		return nil, err
	}
	defer rec.Release()
	sc, err := withTableFieldIDs(tbl.Schema(), rec.Schema())
	if err != nil {
		return nil, err
	}
	batch := array.NewRecordBatch(sc, rec.Columns(), rec.NumRows()) // WriteRecords releases it
	records := func(yield func(arrow.RecordBatch, error) bool) { yield(batch, nil) }
	var files []iceberggo.DataFile
	var written int64
	for df, err := range table.WriteRecords(ctx, tbl, sc, records, table.WithWriteUUID(commitID)) {
		if err != nil {
			removeFiles(ctx, tbl, files)
			return nil, err
		}
		files = append(files, df)
		written += df.Count()
	}
	// iceberg-go v0.7.0 can end WriteRecords with neither the file nor an
	// error when a data file cannot be written (RollingDataWriter.sendError
	// drops the error when nobody is receiving). Committing that would move
	// the positions over rows that are nowhere.
	if written != rec.NumRows() {
		removeFiles(ctx, tbl, files)
		return nil, fmt.Errorf("data files hold %d of the batch's %d rows: a data file write failed without an error", written, rec.NumRows())
	}
	return files, nil
}

// withoutDictionaries returns rec with its dictionary columns as plain
// arrays of their values. The caller releases the result.
func withoutDictionaries(ctx context.Context, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	fields := rec.Schema().Fields()
	cols := slices.Clone(rec.Columns())
	var owned []arrow.Array
	defer func() { releaseAll(owned) }()
	for i, c := range cols {
		dt, ok := c.DataType().(*arrow.DictionaryType)
		if !ok {
			continue
		}
		dense, err := compute.CastArray(ctx, c, compute.SafeCastOptions(dt.ValueType))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", fields[i].Name, err)
		}
		owned = append(owned, dense)
		cols[i], fields[i].Type = dense, dt.ValueType
	}
	md := rec.Schema().Metadata()
	return array.NewRecordBatch(arrow.NewSchema(fields, &md), cols, rec.NumRows()), nil
}
