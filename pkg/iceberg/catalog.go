package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers s3:// for warehouses on S3
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// DefaultTable is the table every binary uses unless --table says otherwise.
// It matches the original Glue/Athena deployment so its queries run unchanged.
const DefaultTable = "netflix_revenue_raw.subscription_payments"

// catalogName is the name the embedded SQLite catalog stores its rows under.
// Every binary opens the catalog with this name, so they see the same tables.
const catalogName = "paystream"

// Catalog kinds accepted by --catalog.
const (
	catalogPrefixSQLite = "sqlite:"
	catalogGlue         = "glue"
)

// CatalogConfig says where the table lives. It is shared by every binary
// (consumer, producer, query) through RegisterFlags.
type CatalogConfig struct {
	// Catalog is "sqlite:PATH" (embedded catalog in a SQLite file), "glue"
	// (AWS Glue Data Catalog, AWS settings from the standard SDK chain) or
	// the http(s):// URL of an Iceberg REST catalog.
	Catalog string
	// Warehouse is where data and metadata files go: "file:///abs/dir" or
	// "s3://bucket/prefix". For a REST catalog it is passed to the server as
	// the warehouse and may be a name the server understands.
	Warehouse string
	// Table is "NAMESPACE.NAME".
	Table string
}

// DefaultCatalogConfig returns the embedded default: a SQLite catalog in
// ./data/catalog.db and a local-filesystem warehouse in ./data/warehouse
// (made absolute against the working directory at call time).
func DefaultCatalogConfig() CatalogConfig {
	wh, err := filepath.Abs(filepath.Join("data", "warehouse"))
	if err != nil {
		wh = filepath.Join("data", "warehouse")
	}
	return CatalogConfig{
		Catalog:   catalogPrefixSQLite + "./data/catalog.db",
		Warehouse: fileURL(wh),
		Table:     DefaultTable,
	}
}

// fileURL turns an absolute local path into a file:// URL.
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// RegisterFlags adds --catalog, --warehouse and --table to fs, with c's
// current values as defaults. Bind the environment with internal/flagenv
// (PAYSTREAM_CATALOG, PAYSTREAM_WAREHOUSE, PAYSTREAM_TABLE).
func (c *CatalogConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Catalog, "catalog", c.Catalog,
		"Iceberg catalog: `sqlite:PATH` (embedded, local), glue (AWS Glue Data Catalog; region, "+
			"credentials and AWS_ENDPOINT_URL from the standard AWS SDK chain) or the http(s):// URL of a REST catalog")
	fs.StringVar(&c.Warehouse, "warehouse", c.Warehouse,
		"where table data and metadata files are written: file:///abs/dir or s3://bucket/prefix "+
			"(required s3:// with --catalog=glue); dead letters go under it too")
	fs.StringVar(&c.Table, "table", c.Table,
		"Iceberg table as `NAMESPACE.NAME`; created on first use when absent")
}

// Validate rejects a configuration that cannot work, naming the flag.
func (c CatalogConfig) Validate() error {
	var errs []error
	kind := ""
	switch {
	case strings.HasPrefix(c.Catalog, catalogPrefixSQLite):
		kind = "sqlite"
		if strings.TrimPrefix(c.Catalog, catalogPrefixSQLite) == "" {
			errs = append(errs, fmt.Errorf("--catalog %q: sqlite needs a file path, e.g. sqlite:./data/catalog.db", c.Catalog))
		}
	case c.Catalog == catalogGlue:
		kind = "glue"
	case strings.HasPrefix(c.Catalog, "http://") || strings.HasPrefix(c.Catalog, "https://"):
		kind = "rest"
		if u, err := url.Parse(c.Catalog); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("--catalog %q: not a valid REST catalog URL", c.Catalog))
		}
	case c.Catalog == "":
		errs = append(errs, errors.New("--catalog is empty: use sqlite:PATH, glue or an http(s):// REST catalog URL"))
	default:
		errs = append(errs, fmt.Errorf("--catalog %q: unknown catalog; use sqlite:PATH, glue or an http(s):// REST catalog URL", c.Catalog))
	}

	switch wh := c.Warehouse; {
	case wh == "" && kind != "rest":
		errs = append(errs, errors.New("--warehouse is empty: use file:///abs/dir or s3://bucket/prefix"))
	case kind == "rest":
		// The REST server decides what a warehouse is.
	case strings.HasPrefix(wh, "s3://"):
		if u, err := url.Parse(wh); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("--warehouse %q: an s3 warehouse needs a bucket: s3://bucket/prefix", wh))
		}
	case strings.HasPrefix(wh, "file://"):
		if kind == "glue" {
			errs = append(errs, fmt.Errorf("--warehouse %q: with --catalog=glue the warehouse must be s3://bucket/prefix (Athena reads only S3)", wh))
		} else if u, err := url.Parse(wh); err != nil || !filepath.IsAbs(filepath.FromSlash(u.Path)) || (u.Host != "" && u.Host != "localhost") {
			errs = append(errs, fmt.Errorf("--warehouse %q: a local warehouse must be an absolute file:///path", wh))
		}
	default:
		errs = append(errs, fmt.Errorf("--warehouse %q: must start with file:// or s3://", wh))
	}

	if ident, err := ParseIdentifier(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("--table: %w", err))
	} else if kind == "glue" && len(ident) != 2 {
		errs = append(errs, fmt.Errorf("--table %q: Glue has one namespace level (database.table)", c.Table))
	}
	return errors.Join(errs...)
}

var identPart = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// ParseIdentifier splits "namespace.name" (or "a.b.name" for nested
// namespaces) into a table identifier. Each part is letters, digits,
// underscores and hyphens; Athena and Glue want lowercase, so use it.
func ParseIdentifier(s string) (table.Identifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("table %q: want NAMESPACE.NAME, e.g. %s", s, DefaultTable)
	}
	for _, p := range parts {
		if !identPart.MatchString(p) {
			return nil, fmt.Errorf("table %q: part %q must be letters, digits, '_' or '-' (want NAMESPACE.NAME)", s, p)
		}
	}
	return table.Identifier(parts), nil
}

// OpenCatalog opens the catalog c names. It validates c first. The caller
// closes the result when it implements catalog.Closer (all three kinds do;
// for SQLite, Close also closes the database file).
//
// SQLite uses the pure-Go driver (modernc.org/sqlite via bun's sqliteshim)
// with WAL and a busy timeout, so several writers in one or more processes
// can share the file. Glue and S3 take region, credentials and endpoints
// from the standard AWS SDK chain (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3,
// AWS_REGION, …); an endpoint override switches S3 to path-style addressing
// so local emulators work.
func OpenCatalog(ctx context.Context, c CatalogConfig) (catalog.Catalog, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(c.Catalog, catalogPrefixSQLite):
		return openSQLite(ctx, strings.TrimPrefix(c.Catalog, catalogPrefixSQLite), c.Warehouse)
	case c.Catalog == catalogGlue:
		return openGlue(ctx, c.Warehouse)
	default:
		return openREST(ctx, c.Catalog, c.Warehouse)
	}
}

// sqliteCatalog closes the database handle it opened along with the catalog.
type sqliteCatalog struct {
	*sqlcat.Catalog
	db *sql.DB
}

func (s *sqliteCatalog) Close() error {
	return errors.Join(s.Catalog.Close(), s.db.Close())
}

func openSQLite(ctx context.Context, path, warehouse string) (catalog.Catalog, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("--catalog sqlite:%s: create directory: %w", path, err)
		}
	}
	var dsn string
	switch sqliteshim.DriverName() {
	case "sqlite3": // mattn/go-sqlite3 (cgosqlite build tag)
		dsn = "file:" + path + "?_busy_timeout=30000&_journal_mode=WAL&_txlock=immediate"
	default: // modernc.org/sqlite
		dsn = "file:" + path + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	}
	db, err := sql.Open(sqliteshim.ShimName, dsn)
	if err != nil {
		return nil, fmt.Errorf("--catalog sqlite:%s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("--catalog sqlite:%s: open: %w", path, err)
	}
	props := storageProps()
	props["warehouse"] = warehouse
	cat, err := sqlcat.NewCatalog(catalogName, db, sqlcat.SQLite, props)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("--catalog sqlite:%s: %w", path, err)
	}
	return &sqliteCatalog{Catalog: cat, db: db}, nil
}

func openGlue(ctx context.Context, warehouse string) (catalog.Catalog, error) {
	// glue.* properties are read only by catalog.Load; with NewCatalog the
	// AWS config is ours, from the standard chain (DESIGN §7).
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("--catalog glue: load AWS config: %w", err)
	}
	props := storageProps()
	props["warehouse"] = warehouse
	cat, err := glue.NewCatalog(glue.WithAwsConfig(cfg), glue.WithAwsProperties(glue.AwsProperties(props)))
	if err != nil {
		return nil, fmt.Errorf("--catalog glue: %w", err)
	}
	return cat, nil
}

func openREST(ctx context.Context, uri, warehouse string) (catalog.Catalog, error) {
	opts := []rest.Option{rest.WithAdditionalProps(storageProps())}
	if warehouse != "" {
		opts = append(opts, rest.WithWarehouseLocation(warehouse))
	}
	cat, err := rest.NewCatalog(ctx, catalogName, uri, opts...)
	if err != nil {
		return nil, fmt.Errorf("--catalog %s: %w", uri, err)
	}
	return cat, nil
}

// storageProps are the FileIO properties every table and the dead-letter
// store use. Credentials and region come from the standard AWS chain inside
// iceberg-go's S3 IO; only an endpoint override needs passing on, because
// iceberg-go picks path-style addressing (needed by emulators) only when it
// is given an explicit endpoint.
func storageProps() iceberggo.Properties {
	props := iceberggo.Properties{}
	if ep := s3EndpointOverride(); ep != "" {
		props[icebergio.S3EndpointURL] = ep
	}
	return props
}

// s3EndpointOverride returns the S3 endpoint the standard chain would use
// when one is configured through the environment, or "".
func s3EndpointOverride() string {
	if v, _ := os.LookupEnv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"); strings.EqualFold(v, "true") {
		return ""
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}
