// Command query runs SQL over the paystream Iceberg tables with an embedded
// DuckDB. Every table of the catalog is a view "namespace.table" over its
// current snapshot (or the one chosen with --snapshot / --as-of):
//
//	query "SELECT subscription_tier, COUNT(*), SUM(amount_usd) FROM netflix_revenue_raw.subscription_payments WHERE status = 'succeeded' GROUP BY subscription_tier"
//	query --tables
//	query --format csv --as-of 2024-05-01T12:00:00Z "SELECT count(*) FROM netflix_revenue_raw.subscription_payments"
//
// It is the only paystream binary built with cgo (DuckDB).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/sqlview"
)

const usageHeader = `Usage: query [flags] "SQL"
       query [flags] -            (SQL read from standard input)
       query [flags] --tables

Runs SQL over the Iceberg tables of the catalog with an embedded DuckDB. Each
table is a view named namespace.table, e.g.

  query "SELECT subscription_tier, COUNT(*), SUM(amount_usd) FROM netflix_revenue_raw.subscription_payments WHERE status = 'succeeded' GROUP BY subscription_tier"

Decimals are printed exactly; timestamps with time zone in RFC 3339 UTC.`

// exitUsage is the exit status for bad flags or arguments.
const exitUsage = 2

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "query:", err)
		fmt.Fprintln(os.Stderr, "Run query --help for the flags.")
		os.Exit(exitUsage)
	default:
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cat := iceberg.DefaultCatalogConfig()
	cat.RegisterFlags(fs)
	format := fs.String("format", string(sqlview.FormatTable), "output format: `table`, csv or json")
	snapshot := fs.Int64("snapshot", 0, "show the --table as of this snapshot `ID` (time travel; see --tables for the current one)")
	asOf := fs.String("as-of", "", "show every table as it was at this `TIME` (RFC 3339, e.g. 2024-05-01T12:00:00Z)")
	tables := fs.Bool("tables", false, "list the tables with their snapshot, data file and row counts instead of running SQL")
	fs.Usage = func() { flagenv.Usage(fs, stderr, usageHeader) }
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}

	f, err := sqlview.ParseFormat(*format)
	if err != nil {
		return usageError{fmt.Errorf("--format: %w", err)}
	}
	var opts sqlview.Options
	if *asOf != "" {
		t, err := time.Parse(time.RFC3339Nano, *asOf)
		if err != nil {
			return usageError{fmt.Errorf("--as-of %q: not an RFC 3339 time with a zone, e.g. 2024-05-01T12:00:00Z", *asOf)}
		}
		opts.AsOf = t
	}
	if *snapshot < 0 {
		return usageError{fmt.Errorf("--snapshot %d: snapshot ids are positive", *snapshot)}
	}
	if *snapshot != 0 {
		ident, err := iceberg.ParseIdentifier(cat.Table)
		if err != nil {
			return usageError{fmt.Errorf("--table: %w", err)}
		}
		opts.SnapshotTable, opts.SnapshotID = ident, *snapshot
	}
	if err := opts.Validate(); err != nil {
		return usageError{err}
	}
	if err := cat.Validate(); err != nil {
		return usageError{err}
	}
	query := strings.TrimSpace(strings.Join(fs.Args(), " "))
	switch {
	case *tables && query != "":
		return usageError{errors.New("give either --tables or SQL, not both")}
	case !*tables && query == "":
		return usageError{errors.New(`no SQL given: query [flags] "SELECT ..." (or - to read it from standard input, or --tables)`)}
	case query == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read SQL from standard input: %w", err)
		}
		if query = strings.TrimSpace(string(b)); query == "" {
			return usageError{errors.New("standard input holds no SQL")}
		}
	}

	c, err := iceberg.OpenCatalog(ctx, cat)
	if err != nil {
		return err
	}
	if cl, ok := c.(interface{ Close() error }); ok {
		defer func() { _ = cl.Close() }()
	}
	e, err := sqlview.Open(ctx, c, opts)
	if err != nil {
		return err
	}
	defer func() { _ = e.Close() }()
	if *tables {
		return sqlview.TablesResult(e.Tables()).Write(stdout, f)
	}
	_, err = e.Stream(ctx, query, stdout, f)
	return err
}
