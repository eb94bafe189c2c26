package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/paystream/paystream/internal/units"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/fileingest"
	"github.com/paystream/paystream/pkg/iceberg"
)

const ingestFileUsage = `consumer ingest-file — load NDJSON payment events into the Iceberg table.

Usage:
  consumer ingest-file [flags] PATH|- [PATH ...]

Each line goes through the same decode, validation, de-duplication and
exactly-once commit as the stream. Invalid lines go to the dead-letter store
with their reasons. A file's identity is the hash of its content (standard
input too), and its committed line number is kept in the table: running it
again adds nothing, and an interrupted run resumes where it stopped.`

// ingestStdin is standard input; tests replace it.
var ingestStdin io.Reader = os.Stdin

// ingestFileConfig is the configuration of consumer ingest-file.
type ingestFileConfig struct {
	Catalog          iceberg.CatalogConfig
	DeadLetterPrefix string
	BatchRows        int
	Dedup            bool
	DedupWindow      time.Duration
	DedupMaxIDs      int
	Progress         string
	LogLevel         string
	Paths            []string
}

func parseIngestFile(args []string, lookup func(string) (string, bool), stderr io.Writer) (ingestFileConfig, error) {
	c := ingestFileConfig{
		Catalog:          iceberg.DefaultCatalogConfig(),
		DeadLetterPrefix: iceberg.DefaultDeadLetterPrefix,
		BatchRows:        fileingest.DefaultBatchRows,
		Dedup:            true,
		DedupWindow:      dedup.DefaultWindow,
		DedupMaxIDs:      dedup.DefaultMaxIDs,
		Progress:         "auto",
		LogLevel:         "warn",
	}
	fs := flag.NewFlagSet("consumer ingest-file", flag.ContinueOnError)
	c.Catalog.RegisterFlags(fs)
	fs.StringVar(&c.DeadLetterPrefix, "dead-letter-prefix", c.DeadLetterPrefix, "folder under the warehouse for rejected records (NDJSON)")
	fs.IntVar(&c.BatchRows, "batch-rows", c.BatchRows, "lines per commit")
	fs.BoolVar(&c.Dedup, "dedup", c.Dedup, "drop lines whose event_id already appeared in the same input")
	fs.DurationVar(&c.DedupWindow, "dedup-window", c.DedupWindow, "how long a committed event_id is remembered to drop later copies")
	fs.IntVar(&c.DedupMaxIDs, "dedup-max-ids", c.DedupMaxIDs, "most event_ids remembered per input (bounds memory; oldest evicted first)")
	fs.StringVar(&c.Progress, "progress", c.Progress, "progress bar on standard error: auto (when it is a terminal), always or never")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (logs go to standard error)")
	if err := parseFlags(fs, args, lookup, stderr, ingestFileUsage); err != nil {
		return c, err
	}
	c.Paths = fs.Args()
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, errors.New("ingest-file needs at least one PATH (or - for standard input)"))
	}
	stdins := 0
	for _, p := range c.Paths {
		if p == "-" {
			stdins++
		}
	}
	if stdins > 1 {
		errs = append(errs, errors.New("- (standard input) can be given once"))
	}
	if err := c.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchRows < 1 {
		errs = append(errs, fmt.Errorf("--batch-rows %d: must be at least 1", c.BatchRows))
	}
	if err := (dedup.Config{Window: c.DedupWindow, MaxIDs: c.DedupMaxIDs}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Progress != "auto" && c.Progress != "always" && c.Progress != "never" {
		errs = append(errs, fmt.Errorf("--progress %q: use auto, always or never", c.Progress))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

// runIngestFile is "consumer ingest-file": it loads NDJSON inputs through
// decode → validate → dedup → commit and prints a summary on stdout.
func runIngestFile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseIngestFile(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	log := textLogger(c.LogLevel, stderr)

	if err := ensureLocalDirs(c.Catalog); err != nil {
		return err
	}
	cat, ident, release, err := openTable(ctx, c.Catalog)
	if err != nil {
		return err
	}
	defer release()
	if _, err := iceberg.EnsureTable(ctx, cat, ident, c.Catalog.Warehouse); err != nil {
		return fmt.Errorf("table %s: %w", c.Catalog.Table, err)
	}
	dl := iceberg.NewDeadLetter(c.Catalog.Warehouse, c.DeadLetterPrefix, ident, nil)
	cfg := fileingest.Config{
		Table:       iceberg.NewSink(cat, ident, iceberg.SinkConfig{Logger: log}),
		DeadLetters: dl,
		BatchRows:   c.BatchRows,
		Logger:      log,
	}
	if c.Dedup {
		filter, err := dedup.New(dedup.Config{Window: c.DedupWindow, MaxIDs: c.DedupMaxIDs})
		if err != nil {
			return &usageError{err}
		}
		cfg.Dedup = filter
	}
	if c.Progress == "always" || (c.Progress == "auto" && isTerminal(stderr)) {
		cfg.Progress = stderr
	}
	f, err := fileingest.New(cfg)
	if err != nil {
		return err
	}

	start := time.Now()
	var all []fileingest.Stats
	var runErr error
	for _, p := range c.Paths {
		st, err := f.IngestPath(ctx, p, ingestStdin)
		all = append(all, st)
		if err != nil {
			runErr = err
			break
		}
	}
	writeIngestSummary(stdout, all, time.Since(start), dl.Dir())
	return runErr
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeIngestSummary prints what a run did, also after a failure (what was
// committed stays committed).
func writeIngestSummary(w io.Writer, all []fileingest.Stats, elapsed time.Duration, deadLetterDir string) {
	var tot fileingest.Stats
	for _, st := range all {
		tot.Bytes += st.Bytes
		tot.Lines += st.Lines
		tot.Skipped += st.Skipped
		tot.Rows += st.Rows
		tot.Rejected += st.Rejected
		tot.Duplicates += st.Duplicates
		tot.Blank += st.Blank
		tot.Commits += st.Commits
	}
	n := units.Count
	var b strings.Builder
	for _, st := range all {
		fmt.Fprintf(&b, "%s  %s  %s rows, %s rejected, %s duplicates, %s lines already committed\n",
			st.Name, st.Source, n(st.Rows), n(st.Rejected), n(st.Duplicates), n(st.Skipped))
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(tot.Rows) / s
	}
	fmt.Fprintf(&b, "rows committed:  %s in %s commits\n", n(tot.Rows), n(int64(tot.Commits)))
	fmt.Fprintf(&b, "rejected:        %s", n(tot.Rejected))
	if tot.Rejected > 0 {
		fmt.Fprintf(&b, " (dead letters under %s)", deadLetterDir)
	}
	fmt.Fprintf(&b, "\nduplicates:      %s\n", n(tot.Duplicates))
	fmt.Fprintf(&b, "already loaded:  %s lines (committed by an earlier run)\n", n(tot.Skipped))
	fmt.Fprintf(&b, "files:           %d\n", len(all))
	fmt.Fprintf(&b, "bytes:           %s (%s lines, %s blank)\n", units.Bytes(tot.Bytes), n(tot.Lines), n(tot.Blank))
	fmt.Fprintf(&b, "elapsed:         %s\n", elapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "rate:            %s rows/s\n", n(int64(rate)))
	_, _ = io.WriteString(w, b.String())
}
