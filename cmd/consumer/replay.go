package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/replay"
)

const replayUsage = `consumer replay-dead-letters — send dead letters through the current decoder again.

Usage:
  consumer replay-dead-letters [flags]

Every dead-letter object (optionally only one shard's, or only those holding
a record that arrived since a time) is decoded and validated again. Records
that pass are committed to the table exactly once, through the same commit
as the stream: running it again adds nothing, and an interrupted run
resumes. Records that still fail stay in the dead-letter store, rewritten
with the reasons the current decoder gives.`

// replayConfig is the configuration of consumer replay-dead-letters.
type replayConfig struct {
	Catalog          iceberg.CatalogConfig
	DeadLetterPrefix string
	Shard            string
	Since            string
	LogLevel         string
	since            time.Time
}

func parseReplay(args []string, lookup func(string) (string, bool), stderr io.Writer) (replayConfig, error) {
	c := replayConfig{Catalog: iceberg.DefaultCatalogConfig(), DeadLetterPrefix: iceberg.DefaultDeadLetterPrefix, LogLevel: "warn"}
	fs := flag.NewFlagSet("consumer replay-dead-letters", flag.ContinueOnError)
	c.Catalog.RegisterFlags(fs)
	fs.Lookup("table").Usage = "Iceberg table as `NAMESPACE.NAME`; must exist (replay never creates it)"
	fs.StringVar(&c.DeadLetterPrefix, "dead-letter-prefix", c.DeadLetterPrefix, "folder under the warehouse for rejected records (NDJSON)")
	fs.StringVar(&c.Shard, "shard", "", "replay only this shard's dead letters (a stream shard id, or a file ingest source id)")
	fs.StringVar(&c.Since, "since", "", "replay only objects holding a record that arrived at or after this time (RFC 3339, or a date YYYY-MM-DD in UTC)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (logs go to standard error)")
	if err := parseFlags(fs, args, lookup, stderr, replayUsage); err != nil {
		return c, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q (replay-dead-letters takes flags only)", fs.Arg(0)))
	}
	if err := c.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Since != "" {
		var err error
		if c.since, err = parseSince(c.Since); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use an RFC 3339 time (2026-03-01T12:00:00Z) or a date (2026-03-01)", s)
}

// runReplay is "consumer replay-dead-letters".
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseReplay(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	log := textLogger(c.LogLevel, stderr)

	cat, ident, release, err := openTable(ctx, c.Catalog)
	if err != nil {
		return err
	}
	defer release()
	// Replay never creates the table: its dead letters belong to a table
	// that the stream or ingest-file made.
	if err := requireTable(ctx, cat, ident, c.Catalog, "replay"); err != nil {
		return err
	}
	store := iceberg.NewDeadLetter(c.Catalog.Warehouse, c.DeadLetterPrefix, ident, nil)
	start := time.Now()
	sum, err := replay.Run(ctx, replay.Config{
		Table: iceberg.NewSink(cat, ident, iceberg.SinkConfig{Logger: log}),
		Store: store, Shard: c.Shard, Since: c.since,
	})
	if errors.Is(err, replay.ErrUnknownShard) {
		return &usageError{fmt.Errorf("--shard: %w", err)}
	}
	writeReplaySummary(stdout, sum, time.Since(start), store.Dir())
	return err
}

// writeReplaySummary prints what a run did, also after a failure (what was
// committed stays committed).
func writeReplaySummary(w io.Writer, sum replay.Summary, elapsed time.Duration, dir string) {
	var b strings.Builder
	fmt.Fprintf(&b, "objects:         %d (under %s)\n", sum.Objects, dir)
	fmt.Fprintf(&b, "replayed:        %d records committed to the table\n", sum.Replayed)
	fmt.Fprintf(&b, "still rejected:  %d records (kept, with their current reasons)\n", sum.StillRejected)
	if sum.Resumed > 0 {
		fmt.Fprintf(&b, "resumed:         %d objects an interrupted run had committed\n", sum.Resumed)
	}
	reasons := slices.SortedFunc(maps.Keys(sum.Reasons), func(a, b string) int {
		if d := sum.Reasons[b] - sum.Reasons[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	if len(reasons) > 0 {
		b.WriteString("still rejected, by reason:\n")
	}
	for _, r := range reasons {
		fmt.Fprintf(&b, "  %6d  %s\n", sum.Reasons[r], r)
	}
	fmt.Fprintf(&b, "elapsed:         %s\n", elapsed.Round(time.Millisecond))
	_, _ = io.WriteString(w, b.String())
}
