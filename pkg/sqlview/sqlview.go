package sqlview

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver
	"golang.org/x/sync/errgroup"
)

// Errors callers branch on.
var (
	// ErrDeleteFiles: the selected snapshot of a table holds delete files,
	// which this engine cannot apply.
	ErrDeleteFiles = errors.New("table has delete files")
	// ErrNoSnapshot: the requested snapshot id or time matches no snapshot.
	ErrNoSnapshot = errors.New("no such snapshot")
	// ErrUnreadable: a table could not be loaded or planned (broken
	// metadata, missing files, unsupported column types).
	ErrUnreadable = errors.New("table cannot be read")
	// ErrQuery: DuckDB rejected or failed the SQL (syntax, unknown table or
	// column, type error, a refused table). The message is DuckDB's.
	ErrQuery = errors.New("query failed")
)

// Catalog is the part of an Iceberg catalog the engine uses.
type Catalog interface {
	ListNamespaces(ctx context.Context, parent table.Identifier) ([]table.Identifier, error)
	ListTables(ctx context.Context, namespace table.Identifier) iter.Seq2[table.Identifier, error]
	LoadTable(ctx context.Context, identifier table.Identifier) (*table.Table, error)
}

var _ Catalog = catalog.Catalog(nil)

// Options select what the views show.
type Options struct {
	// SnapshotTable and SnapshotID pin one table to one snapshot. Both or
	// neither are set.
	SnapshotTable table.Identifier
	SnapshotID    int64
	// AsOf, when not zero, shows every table as of its snapshot current at
	// that time (a table with no snapshot then is empty). It cannot be
	// combined with SnapshotID.
	AsOf time.Time
	// TempDir is where data files that are not local (s3://) are copied;
	// empty means os.TempDir().
	TempDir string
	// Threads caps DuckDB's worker threads; 0 keeps DuckDB's default (one
	// per core).
	Threads int
}

// Validate rejects contradictory options.
func (o Options) Validate() error {
	if o.SnapshotID != 0 && !o.AsOf.IsZero() {
		return errors.New("--snapshot and --as-of select the same thing; give one of them")
	}
	if (o.SnapshotID != 0) != (len(o.SnapshotTable) > 0) {
		return errors.New("a snapshot id needs the table it belongs to")
	}
	if o.Threads < 0 {
		return fmt.Errorf("threads is %d; use 0 for DuckDB's default or a positive number", o.Threads)
	}
	return nil
}

// Column is one column of a view.
type Column struct {
	Name string
	Type string // DuckDB type, e.g. DECIMAL(12,2)
}

// TableInfo describes one table as the engine shows it.
type TableInfo struct {
	Ident table.Identifier
	// Name is the table's name in SQL: namespace.table.
	Name string
	// SnapshotID is the snapshot the view shows, 0 when the table has none.
	SnapshotID int64
	// SnapshotTime is when that snapshot was committed (zero when none).
	SnapshotTime time.Time
	Rows         int64 // rows in the live data files
	Files        int   // live data files
	Bytes        int64 // their total size
	DeleteFiles  int   // delete files in the snapshot; > 0 means the table has no view
	Columns      []Column
	// Err, when not nil, is why the table could not be loaded or planned;
	// it has no view.
	Err error

	fieldIDs []int // Iceberg field id of each column
}

// Engine is an in-memory DuckDB with one view per catalog table.
type Engine struct {
	db     *sql.DB
	conn   *sql.Conn
	tables []TableInfo
	tmp    string // directory of copied remote files, "" when none
	copied int    // files copied into tmp so far
}

// Open plans every table of cat and creates its view. It fails when a
// table cannot be loaded or planned, or when the snapshot selected by opts
// does not exist.
func Open(ctx context.Context, cat Catalog, opts Options) (_ *Engine, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	idents, err := listTables(ctx, cat)
	if err != nil {
		return nil, err
	}
	if len(opts.SnapshotTable) > 0 && !slices.ContainsFunc(idents, func(id table.Identifier) bool {
		return slices.Equal(id, opts.SnapshotTable)
	}) {
		return nil, fmt.Errorf("table %s for --snapshot: %w", strings.Join(opts.SnapshotTable, "."), catalog.ErrNoSuchTable)
	}

	db, err := sql.Open("duckdb", "?autoinstall_known_extensions=false&autoload_known_extensions=false")
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	// One connection: views and settings live in the in-memory database,
	// and the engine is used by one goroutine.
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	e := &Engine{db: db, conn: conn}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	setup := []string{"SET TimeZone = 'UTC'"}
	if opts.Threads > 0 {
		setup = append(setup, "SET threads = "+strconv.Itoa(opts.Threads))
	}
	for _, q := range setup {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("configure duckdb (%s): %w", q, err)
		}
	}

	schemas := map[string]bool{}
	for _, ident := range idents {
		info, files, err := e.plan(ctx, cat, ident, opts)
		if err != nil {
			// One broken table must not make the others unqueryable; the
			// table asked for by --snapshot must be readable.
			if ctx.Err() != nil || errors.Is(err, ErrNoSnapshot) || slices.Equal(ident, opts.SnapshotTable) {
				return nil, err
			}
			info.Err = err
		}
		ns := namespaceName(ident)
		if !schemas[ns] {
			if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(ns)); err != nil {
				return nil, fmt.Errorf("create schema %s: %w", ns, err)
			}
			schemas[ns] = true
		}
		// A refused table gets no view: DuckDB's optimizer may skip an
		// error() planted in a view (a filter on a NULL column folds to
		// false), while a missing view fails every query that names it at
		// bind time; queryError turns that failure into the refusal.
		if info.DeleteFiles == 0 && info.Err == nil {
			if _, err := conn.ExecContext(ctx, viewSQL(info, files)); err != nil {
				return nil, fmt.Errorf("create view %s: %w", info.Name, err)
			}
		}
		e.tables = append(e.tables, info)
	}
	return e, nil
}

func listTables(ctx context.Context, cat Catalog) ([]table.Identifier, error) {
	nss, err := cat.ListNamespaces(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []table.Identifier
	for _, ns := range nss {
		for id, err := range cat.ListTables(ctx, ns) {
			if err != nil {
				return nil, fmt.Errorf("list tables of %s: %w", strings.Join(ns, "."), err)
			}
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b table.Identifier) int { return slices.Compare(a, b) })
	return out, nil
}

// plan resolves the snapshot of one table and lists its live data files as
// paths DuckDB can read.
func (e *Engine) plan(ctx context.Context, cat Catalog, ident table.Identifier, opts Options) (TableInfo, []string, error) {
	name := strings.Join(ident, ".")
	info := TableInfo{Ident: ident, Name: namespaceName(ident) + "." + catalog.TableNameFromIdent(ident)}
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		return info, nil, fmt.Errorf("load table %s: %w", name, err)
	}
	var scanOpts []table.ScanOption
	pinned := len(opts.SnapshotTable) > 0 && slices.Equal(ident, opts.SnapshotTable)
	switch {
	case pinned:
		scanOpts = append(scanOpts, table.WithSnapshotID(opts.SnapshotID))
	case !opts.AsOf.IsZero():
		scanOpts = append(scanOpts, table.WithSnapshotAsOf(opts.AsOf.UnixMilli()))
	}
	scan := tbl.Scan(scanOpts...)
	defer func() { _ = scan.Close() }()
	snap, err := scan.ResolveSnapshot()
	switch {
	case err != nil && pinned:
		return info, nil, fmt.Errorf("table %s has no snapshot %d (list them with --tables or the snapshots of the table): %w", name, opts.SnapshotID, ErrNoSnapshot)
	case err != nil && !opts.AsOf.IsZero():
		snap = nil // the table had no snapshot yet at that time: empty
	case err != nil:
		return info, nil, fmt.Errorf("resolve snapshot of %s: %w", name, err)
	}
	sch := tbl.Schema()
	if snap != nil && snap.SchemaID != nil {
		if s, ok := tbl.Schemas()[*snap.SchemaID]; ok {
			sch = s
		}
	}
	info.Columns, info.fieldIDs, err = columns(sch)
	if err != nil {
		return info, nil, fmt.Errorf("table %s: %w", name, err)
	}
	if snap == nil {
		return info, nil, nil
	}
	info.SnapshotID = snap.SnapshotID
	info.SnapshotTime = time.UnixMilli(snap.TimestampMs).UTC()
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		return info, nil, fmt.Errorf("plan files of %s at snapshot %d: %w", name, snap.SnapshotID, err)
	}
	paths := make([]string, 0, len(tasks))
	seenDeletes := map[string]bool{}
	for _, t := range tasks {
		for _, group := range [][]iceberggo.DataFile{t.DeleteFiles, t.EqualityDeleteFiles, t.DeletionVectorFiles} {
			for _, d := range group {
				seenDeletes[d.FilePath()] = true
			}
		}
		info.Rows += t.File.Count()
		info.Bytes += t.File.FileSizeBytes()
		paths = append(paths, t.File.FilePath())
	}
	info.Files = len(paths)
	info.DeleteFiles = len(seenDeletes)
	if info.DeleteFiles > 0 {
		return info, nil, nil
	}
	local, err := e.localize(ctx, tbl, paths, opts.TempDir)
	if err != nil {
		return info, nil, fmt.Errorf("table %s: %w", name, err)
	}
	return info, local, nil
}

// localize returns local paths for data files, copying remote ones.
func (e *Engine) localize(ctx context.Context, tbl *table.Table, paths []string, tempDir string) ([]string, error) {
	out := make([]string, len(paths))
	var remote []int
	for i, p := range paths {
		u, err := url.Parse(p)
		switch {
		case err == nil && u.Scheme == "file":
			out[i] = u.Path
		case err == nil && u.Scheme == "":
			out[i] = p
		default:
			remote = append(remote, i)
		}
	}
	if len(remote) == 0 {
		return out, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("open table storage: %w", err)
	}
	if e.tmp == "" {
		dir, err := os.MkdirTemp(tempDir, "paystream-query-")
		if err != nil {
			return nil, fmt.Errorf("temporary directory for remote data files: %w", err)
		}
		e.tmp = dir
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, i := range remote {
		e.copied++
		dst := filepath.Join(e.tmp, fmt.Sprintf("%06d.parquet", e.copied))
		out[i] = dst
		src := paths[i]
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			return copyFile(fs, src, dst)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func copyFile(fs icebergio.IO, src, dst string) error {
	in, err := fs.Open(src)
	if err != nil {
		return fmt.Errorf("read data file %s: %w", src, err)
	}
	defer func() { _ = in.Close() }()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy data file %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy data file %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy data file %s: %w", src, err)
	}
	return nil
}

// columns maps an Iceberg schema to view columns and their field ids.
func columns(s *iceberggo.Schema) ([]Column, []int, error) {
	var cols []Column
	var ids []int
	for _, f := range s.Fields() {
		t, err := duckType(f.Type)
		if err != nil {
			return nil, nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		cols = append(cols, Column{Name: f.Name, Type: t})
		ids = append(ids, f.ID)
	}
	return cols, ids, nil
}

func duckType(t iceberggo.Type) (string, error) {
	switch t := t.(type) {
	case iceberggo.BooleanType:
		return "BOOLEAN", nil
	case iceberggo.Int32Type:
		return "INTEGER", nil
	case iceberggo.Int64Type:
		return "BIGINT", nil
	case iceberggo.Float32Type:
		return "FLOAT", nil
	case iceberggo.Float64Type:
		return "DOUBLE", nil
	case iceberggo.DecimalType:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.Precision(), t.Scale()), nil
	case iceberggo.DateType:
		return "DATE", nil
	case iceberggo.TimeType:
		return "TIME", nil
	case iceberggo.TimestampType, iceberggo.TimestampNsType:
		return "TIMESTAMP", nil
	case iceberggo.TimestampTzType, iceberggo.TimestampTzNsType:
		return "TIMESTAMPTZ", nil
	case iceberggo.StringType:
		return "VARCHAR", nil
	case iceberggo.UUIDType:
		return "UUID", nil
	case iceberggo.BinaryType, iceberggo.FixedType:
		return "BLOB", nil
	default:
		return "", fmt.Errorf("type %s is not supported by query (only primitive columns are)", t)
	}
}

// viewSQL is the CREATE VIEW statement of one table. files is nil for an
// empty table. Refused tables get no view (see refusal).
func viewSQL(t TableInfo, files []string) string {
	var b strings.Builder
	b.WriteString("CREATE VIEW ")
	b.WriteString(quoteIdent(namespaceName(t.Ident)))
	b.WriteByte('.')
	b.WriteString(quoteIdent(catalog.TableNameFromIdent(t.Ident)))
	b.WriteString(" AS ")
	switch {
	case len(files) == 0:
		b.WriteString("SELECT ")
		for i, c := range t.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "CAST(NULL AS %s) AS %s", c.Type, quoteIdent(c.Name))
		}
		b.WriteString(" WHERE false")
	default:
		b.WriteString("SELECT * FROM read_parquet([")
		for i, f := range files {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteString(f))
		}
		b.WriteString("], hive_partitioning = false, schema = map {")
		for i, c := range t.Columns {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d: {name: %s, type: %s, default_value: NULL}", t.fieldIDs[i], quoteString(c.Name), quoteString(c.Type))
		}
		b.WriteString("})")
	}
	return b.String()
}

// refusal explains why a table has no view.
func refusal(t TableInfo) error {
	if t.Err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreadable, t.Name, t.Err)
	}
	return fmt.Errorf("%w: table %s cannot be queried: snapshot %d has %d delete file(s) and query reads only data files; "+
		"compact the table, or query an older snapshot with --snapshot or --as-of", ErrDeleteFiles, t.Name, t.SnapshotID, t.DeleteFiles)
}

// namespaceName is the DuckDB schema of a table: its namespace levels
// joined by "_" (the SQLite and Glue catalogs have one level).
func namespaceName(ident table.Identifier) string {
	return strings.Join(catalog.NamespaceFromIdent(ident), "_")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Tables describes every view, sorted by name.
func (e *Engine) Tables() []TableInfo { return slices.Clone(e.tables) }

// Close drops the database and the copied data files.
func (e *Engine) Close() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
	}
	if e.db != nil {
		errs = append(errs, e.db.Close())
	}
	if e.tmp != "" {
		errs = append(errs, os.RemoveAll(e.tmp))
	}
	return errors.Join(errs...)
}

// TablesResult lays out table descriptions as a result, for printing
// (query --tables).
func TablesResult(infos []TableInfo) *Result {
	r := &Result{Columns: []Column{
		{"table", "VARCHAR"}, {"snapshot_id", "BIGINT"}, {"snapshot_time", "TIMESTAMPTZ"},
		{"data_files", "BIGINT"}, {"rows", "BIGINT"}, {"bytes", "BIGINT"}, {"note", "VARCHAR"},
	}}
	num := func(n int64) Cell { return Cell{Text: strconv.FormatInt(n, 10), Kind: KindNumber} }
	for _, t := range infos {
		row := []Cell{{Text: t.Name, Kind: KindText}, {Kind: KindNull}, {Kind: KindNull}, num(int64(t.Files)), num(t.Rows), num(t.Bytes), {Kind: KindText}}
		if t.SnapshotID != 0 {
			row[1] = num(t.SnapshotID)
			row[2] = Cell{Text: t.SnapshotTime.Format(time.RFC3339Nano), Kind: KindText}
		} else {
			row[6] = Cell{Text: "no snapshot: empty", Kind: KindText}
		}
		if t.DeleteFiles > 0 {
			row[6] = Cell{Text: fmt.Sprintf("%d delete file(s): not queryable", t.DeleteFiles), Kind: KindText}
		}
		if t.Err != nil {
			row[6] = Cell{Text: "cannot be read: " + t.Err.Error(), Kind: KindText}
		}
		r.Rows = append(r.Rows, row)
	}
	return r
}
