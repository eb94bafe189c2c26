package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/internal/units"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
)

const maintainUsage = `consumer maintain — run every table maintenance step once, now.

Usage:
  consumer maintain [flags]

In order: publish the staged dead letters of commits that landed (and remove
those of commits that never did, once older than --orphan-age), tag one
snapshot per hour for --retention, compact the small data
files of every partition (today's too, unless --skip-hot), expire snapshots
(keeping the newest --keep-snapshots and the hourly ones; the data files only
expired snapshots used are deleted), drop the positions of shards gone from
--stream (when given), and sweep orphan files older than --orphan-age. Safe
while consumers commit: every step is a compare-and-swap commit that never
makes theirs fail. Prints what it did.

Exit status: 0 done; 2 bad flags; 1 a step failed (the steps before it are
committed, the failed one left the table as it was).`

// compactFlags are the compaction and retention settings of the service
// and of consumer maintain.
type compactFlags struct {
	Retention  time.Duration
	TargetSize int64
	MinFiles   int
	MinAge     time.Duration
}

func defaultCompactFlags() compactFlags {
	return compactFlags{
		Retention:  iceberg.DefaultRetention,
		TargetSize: iceberg.DefaultCompactTargetSize,
		MinFiles:   iceberg.DefaultCompactMinFiles,
		MinAge:     iceberg.DefaultCompactMinAge,
	}
}

func (c *compactFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.Retention, "retention", c.Retention, "keep one snapshot per hour this long for time travel (tags hourly-YYYYMMDDHH), beside --keep-snapshots; each is about 1 KiB of metadata and keeps the data files it references (0 disables)")
	fs.Int64Var(&c.TargetSize, "compact-target-size", c.TargetSize, "compaction packs each partition's small data files into files of about this many bytes; files of 75% of it or more are left alone (0 disables compaction)")
	fs.IntVar(&c.MinFiles, "compact-min-files", c.MinFiles, "a partition is compacted once it has at least this many small files (at least 2; higher rewrites less often)")
	fs.DurationVar(&c.MinAge, "compact-min-age", c.MinAge, "files younger than this (since their commit) are not compacted yet, so the hot partition is rewritten in batches")
}

func (c compactFlags) validate() error {
	var errs []error
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("--retention %s: must not be negative (0 disables)", c.Retention))
	}
	if c.TargetSize != 0 && c.TargetSize < 1<<20 {
		errs = append(errs, fmt.Errorf("--compact-target-size %d: must be at least 1048576 (1 MiB), or 0 to disable compaction", c.TargetSize))
	}
	if c.MinFiles < 2 {
		errs = append(errs, fmt.Errorf("--compact-min-files %d: must be at least 2", c.MinFiles))
	}
	if c.MinAge < 0 {
		errs = append(errs, fmt.Errorf("--compact-min-age %s: must not be negative", c.MinAge))
	}
	return errors.Join(errs...)
}

// options maps the flags onto Maintain's options.
func (c compactFlags) options(o *iceberg.MaintainOptions) {
	o.Retention = c.Retention
	o.Compact = iceberg.CompactOptions{TargetSize: c.TargetSize, MinFiles: c.MinFiles, MinAge: c.MinAge}
	if c.TargetSize == 0 {
		o.Compact.TargetSize = -1
	}
	if c.MinAge == 0 {
		o.Compact.MinAge = -1
	}
}

type maintainConfig struct {
	Catalog          iceberg.CatalogConfig
	DeadLetterPrefix string
	Stream           string
	KeepSnapshots    int
	SnapshotAge      time.Duration
	OrphanAge        time.Duration
	SkipHot          bool
	Compact          compactFlags
}

func parseMaintain(args []string, lookup func(string) (string, bool), stderr io.Writer) (maintainConfig, error) {
	def := defaultServiceConfig()
	c := maintainConfig{Catalog: def.Catalog, DeadLetterPrefix: def.DeadLetterPrefix, KeepSnapshots: def.KeepSnapshots, SnapshotAge: def.SnapshotAge, OrphanAge: def.OrphanAge, Compact: defaultCompactFlags()}
	fs := flag.NewFlagSet("consumer maintain", flag.ContinueOnError)
	c.Catalog.RegisterFlags(fs)
	fs.Lookup("table").Usage = "the Iceberg table to maintain as `NAMESPACE.NAME` (never created)"
	fs.StringVar(&c.DeadLetterPrefix, "dead-letter-prefix", c.DeadLetterPrefix, "folder under the warehouse for rejected records, whose staged objects are published or removed first")
	fs.StringVar(&c.Stream, "stream", c.Stream, "Kinesis stream the table's consumers read: drop the positions of its shards gone from the stream (empty: keep every position)")
	fs.IntVar(&c.KeepSnapshots, "keep-snapshots", c.KeepSnapshots, "snapshot expiry always keeps this many newest snapshots")
	fs.DurationVar(&c.SnapshotAge, "snapshot-age", c.SnapshotAge, "also keep every snapshot younger than this")
	fs.DurationVar(&c.OrphanAge, "orphan-age", c.OrphanAge, "delete unreferenced files under the table location older than this (at least 1h; 0 skips the sweep)")
	fs.BoolVar(&c.SkipHot, "skip-hot", false, "leave today's (UTC) partition out of compaction")
	c.Compact.register(fs)
	if err := parseFlags(fs, args, lookup, stderr, maintainUsage); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, &usageError{fmt.Errorf("maintain takes no arguments, got %q", fs.Arg(0))}
	}
	errs := []error{c.Catalog.Validate(), c.Compact.validate()}
	if c.KeepSnapshots < 1 {
		errs = append(errs, fmt.Errorf("--keep-snapshots %d: must be at least 1", c.KeepSnapshots))
	}
	if c.SnapshotAge < 0 {
		errs = append(errs, fmt.Errorf("--snapshot-age %s: must not be negative", c.SnapshotAge))
	}
	if c.OrphanAge != 0 && c.OrphanAge < iceberg.MinOrphanAge {
		errs = append(errs, fmt.Errorf("--orphan-age %s: must be at least %s (a commit's files look like orphans until it lands), or 0 to skip the sweep", c.OrphanAge, iceberg.MinOrphanAge))
	}
	if err := errors.Join(errs...); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

// runMaintain is "consumer maintain".
func runMaintain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseMaintain(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	cat, ident, release, err := openTable(ctx, c.Catalog)
	if err != nil {
		return err
	}
	defer release()
	if err := requireTable(ctx, cat, ident, c.Catalog, "maintain"); err != nil {
		return err
	}
	opts := iceberg.MaintainOptions{KeepSnapshots: c.KeepSnapshots, SnapshotAge: c.SnapshotAge, OrphanAge: c.OrphanAge}
	c.Compact.options(&opts)
	opts.Compact.SkipHot = c.SkipHot
	if c.Stream != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("load AWS configuration: %w", err)
		}
		shards := ingest.KinesisShards{Client: kinesis.NewFromConfig(awsCfg), Stream: c.Stream}
		opts.LiveShards = func(ctx context.Context) ([]string, error) {
			list, err := shards.ListShards(ctx)
			ids := make([]string, len(list))
			for i, s := range list {
				ids[i] = s.ID
			}
			return ids, err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{Logger: log})
	start := time.Now()
	dl := iceberg.NewDeadLetter(c.Catalog.Warehouse, c.DeadLetterPrefix, ident, nil)
	sw, err := sink.SweepDeadLetters(ctx, dl, c.OrphanAge)
	fmt.Fprintf(stdout, "dead letters:         %d objects published, %d of commits that never landed removed, %d waiting\n", sw.Published, sw.Removed, sw.Waiting)
	if err != nil {
		return fmt.Errorf("maintain %s: dead-letter sweep (nothing else done): %w", c.Catalog.Table, err)
	}
	// Snapshots the sweep may not have resolved stay (DeadLetterSweep.Head).
	opts.KeepAfter = &sw.Head
	res, err := sink.Maintain(ctx, opts)
	printMaintain(stdout, res, c.OrphanAge > 0, time.Since(start))
	if err != nil {
		return fmt.Errorf("maintain %s: %w", c.Catalog.Table, err)
	}
	return nil
}

func printMaintain(w io.Writer, r iceberg.MaintainResult, swept bool, took time.Duration) {
	c := r.Compaction
	fmt.Fprintf(w, "hourly tags created:  %d\n", r.TagsCreated)
	fmt.Fprintf(w, "compaction:           %d partitions, %d files (%s) rewritten into %d files (%s)\n",
		c.Partitions, c.FilesRewritten, units.Bytes(c.BytesRewritten), c.FilesWritten, units.Bytes(c.BytesWritten))
	fmt.Fprintf(w, "snapshots expired:    %d\n", r.SnapshotsExpired)
	dropped := "none"
	if len(r.PositionsDropped) > 0 {
		dropped = strings.Join(r.PositionsDropped, ", ")
	}
	fmt.Fprintf(w, "positions dropped:    %s\n", dropped)
	fmt.Fprintf(w, "metadata removed:     %d files of refused commits\n", r.MetadataFilesRemoved)
	if swept {
		fmt.Fprintf(w, "orphans removed:      %d\n", r.OrphansRemoved)
	} else {
		fmt.Fprintln(w, "orphans removed:      (sweep skipped: --orphan-age 0)")
	}
	fmt.Fprintf(w, "took:                 %s\n", took.Round(time.Millisecond))
}
