package iceberg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/fileingest"
)

// DefaultKeepSnapshots is how many of the newest snapshots Maintain keeps
// by default (the consumer's --keep-snapshots). With no SnapshotAge this
// bounds metadata.json whatever the commit rate.
const DefaultKeepSnapshots = 100

// MaintainOptions says what Maintain keeps.
type MaintainOptions struct {
	// KeepSnapshots newest snapshots are always kept. Default
	// DefaultKeepSnapshots.
	KeepSnapshots int
	// Snapshots beyond KeepSnapshots are expired once older than
	// SnapshotAge. Default 0: expire them at once, so that the table keeps
	// exactly KeepSnapshots. An age keeps every snapshot of that long:
	// metadata then grows with the commit rate (an hour at 5 commits/s is
	// 18,000 snapshots).
	SnapshotAge time.Duration
	// KeepAfter, when not nil, also keeps every snapshot of main's history
	// after the snapshot with this id, however many: those a dead-letter
	// sweep has not resolved (DeadLetterSweep.Head). 0, or an id no longer
	// in main's history, keeps main's whole history this round.
	KeepAfter *int64
	// OrphanAge, when > 0, also deletes files under the table location that
	// no snapshot or metadata file references and that are older than
	// OrphanAge: data files of killed writers, manifests of failed commits.
	// It lists the whole table location and reads every manifest, so run it
	// rarely (hourly), and keep OrphanAge well above the longest commit (a
	// writer's files look like orphans until its commit lands): hours.
	OrphanAge time.Duration
	// LiveShards, when set, lists the ids of the shards the stream still
	// has (the Kinesis shard list). Maintain then removes the position
	// properties of shards it does not list — closed shards aged out of
	// the stream's retention — in one compare-and-swap commit. Positions of
	// ingested files (fileingest.SourcePrefix) and of replayed dead letters
	// (ReplaySourcePrefix) are never removed. It is
	// called after the table is loaded, so a shard whose position a
	// concurrent commit adds after the call is never a candidate; an empty
	// list removes nothing.
	LiveShards func(ctx context.Context) ([]string, error)
	// Retention, when > 0, keeps one snapshot per hour for that long
	// beside the newest KeepSnapshots, for time travel: the maintainer
	// tags it (HourlyTagPrefix) with a max-ref-age of Retention, and expiry
	// drops the tag and its snapshot once older. The consumer's default is
	// DefaultRetention.
	Retention time.Duration
	// Compact says which small files compaction rewrites (see Compact);
	// the zero value compacts with the defaults, TargetSize < 0 disables.
	Compact CompactOptions
}

// MinOrphanAge is the smallest OrphanAge the consumer accepts
// (--orphan-age): a writer's data files look like orphans until its commit
// lands, and a commit with all its retries takes seconds to a minute.
const MinOrphanAge = time.Hour

// MaintainResult reports what Maintain removed.
type MaintainResult struct {
	TagsCreated      int
	Compaction       CompactResult
	SnapshotsExpired int
	OrphansRemoved   int
	// MetadataFilesRemoved counts the metadata.json files of refused
	// commit attempts removed (sweepMetadataFiles).
	MetadataFilesRemoved int
	// PositionsDropped are the shards whose positions were removed.
	PositionsDropped []string
}

// Maintain tags one snapshot per hour (Retention), compacts small files
// (Compact), expires old snapshots (deleting the manifests, manifest lists
// and data files only they used: the files compaction replaced), with
// LiveShards set removes the positions of shards that no longer exist,
// removes the metadata.json files of refused commit attempts
// (sweepMetadataFiles), and with OrphanAge set removes orphan files, in
// that order.
// The consumer calls it periodically from one worker, the maintainer
// (elected with a role lease, pkg/lease); its commits are compare-and-swap
// and retried on conflicts with concurrent commits, which they never make
// fail (an append that loses to one retries like after any conflict).
// Snapshot expiry keeps metadata.json and commit time flat under frequent
// commits (DESIGN §7). The result counts what was done before an error.
func (s *Sink) Maintain(ctx context.Context, opts MaintainOptions) (MaintainResult, error) {
	var res MaintainResult
	if opts.KeepSnapshots < 1 {
		opts.KeepSnapshots = DefaultKeepSnapshots
	}
	opts.SnapshotAge = max(opts.SnapshotAge, 0)
	// A failed compaction must not stop expiry, or metadata grows: its
	// error is returned after the other steps ran.
	shapeErr := s.maintainShape(ctx, opts, &res)
	if ctx.Err() != nil {
		return res, shapeErr
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := s.backoff.Wait(ctx, attempt-1); err != nil {
				return res, err
			}
		}
		tbl, err := s.cat.LoadTable(ctx, s.ident)
		if err != nil {
			return res, fmt.Errorf("load table for maintenance: %w", err)
		}
		before := len(tbl.Metadata().Snapshots())
		keep := opts.KeepSnapshots
		if opts.KeepAfter != nil {
			keep = max(keep, snapshotsAfter(tbl, *opts.KeepAfter))
		}
		txn := tbl.NewTransaction()
		if err := txn.ExpireSnapshots(table.WithRetainLast(keep), table.WithOlderThan(opts.SnapshotAge)); err != nil {
			return res, fmt.Errorf("expire snapshots: %w", err)
		}
		after, err := txn.Commit(ctx)
		if after != nil {
			// The catalog took the expiry. An error with it comes from
			// iceberg-go's removal of the files only expired snapshots
			// used, after the commit: a file already gone, or one the
			// orphan sweep removes later. The round goes on.
			if err != nil {
				s.log.Warn("snapshots expired; removing some of their files failed", "err", err)
			}
			res.SnapshotsExpired = before - len(after.Metadata().Snapshots())
			s.m.expired.Add(float64(res.SnapshotsExpired))
			break
		}
		if !isConflict(err) || attempt >= s.cfg.MaxRetries {
			return res, fmt.Errorf("expire snapshots: %w", err)
		}
	}
	if opts.LiveShards != nil {
		dropped, err := s.dropVanishedPositions(ctx, opts.LiveShards)
		res.PositionsDropped = dropped
		if err != nil {
			return res, fmt.Errorf("drop positions of vanished shards: %w", err)
		}
	}
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return res, fmt.Errorf("load table after maintenance: %w", err)
	}
	s.metadataSize(ctx, tbl)
	n, err := s.sweepMetadataFiles(ctx, tbl)
	res.MetadataFilesRemoved = n
	if err != nil {
		return res, errors.Join(shapeErr, err)
	}
	if opts.OrphanAge <= 0 {
		return res, shapeErr
	}
	out, err := tbl.DeleteOrphanFiles(ctx, table.WithFilesOlderThan(opts.OrphanAge))
	res.OrphansRemoved = len(out.DeletedFiles)
	s.m.orphans.Add(float64(res.OrphansRemoved))
	if err != nil {
		return res, errors.Join(shapeErr, fmt.Errorf("remove orphan files: %w", err))
	}
	return res, shapeErr
}

// maintainShape runs the hourly tagging and compaction steps of Maintain.
func (s *Sink) maintainShape(ctx context.Context, opts MaintainOptions, res *MaintainResult) error {
	if opts.Retention > 0 {
		n, err := s.tagHours(ctx, opts.Retention)
		res.TagsCreated = n
		if err != nil {
			return fmt.Errorf("tag hourly snapshots: %w", err)
		}
	}
	c, err := s.Compact(ctx, opts.Compact)
	res.Compaction = c
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	return nil
}

// metadataSize sets the metadata.json size gauge, best effort.
func (s *Sink) metadataSize(ctx context.Context, tbl *table.Table) {
	fs, err := tbl.FS(ctx)
	if err != nil {
		return
	}
	f, err := fs.Open(tbl.MetadataLocation())
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil {
		s.mm.metadataBytes.Set(float64(st.Size()))
	}
}

// dropVanishedPositions removes the position properties of shards that
// live does not list, and returns those shards. The candidates are taken
// from a table loaded before live is called: a shard that had a position
// then and is not listed afterwards has left the stream (Kinesis lists
// every shard still within retention, closed ones included), whereas a
// shard created after the list call can only gain a position after that
// load. File positions are never candidates. The removal pins main
// (AssertRefSnapshotID) on top of the catalog's own compare-and-swap, so it
// never overwrites a concurrent commit; on a conflict it reloads and
// retries, dropping only candidates still present, and touches no other
// property.
func (s *Sink) dropVanishedPositions(ctx context.Context, live func(context.Context) ([]string, error)) ([]string, error) {
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return nil, fmt.Errorf("load table: %w", err)
	}
	var candidates []string
	for shard := range TablePositions(tbl) {
		if !strings.HasPrefix(shard, fileingest.SourcePrefix) && !strings.HasPrefix(shard, ReplaySourcePrefix) {
			candidates = append(candidates, shard)
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	ids, err := live(ctx)
	if err != nil {
		return nil, fmt.Errorf("list live shards: %w", err)
	}
	if len(ids) == 0 {
		// A stream always has an open shard: an empty list is a wrong
		// stream or a broken lister, not a reason to forget positions.
		s.log.Warn("shard list is empty; positions kept")
		return nil, nil
	}
	listed := make(map[string]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
	}
	var gone []string
	for _, shard := range candidates {
		if !listed[shard] {
			gone = append(gone, shard)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	slices.Sort(gone)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := s.backoff.Wait(ctx, attempt-1); err != nil {
				return nil, err
			}
			if tbl, err = s.cat.LoadTable(ctx, s.ident); err != nil {
				return nil, fmt.Errorf("reload table: %w", err)
			}
		}
		props := tbl.Properties()
		var keys, shards []string
		for _, shard := range gone {
			if _, ok := props[PositionPropertyPrefix+shard]; ok {
				keys = append(keys, PositionPropertyPrefix+shard)
				shards = append(shards, shard)
			}
		}
		if len(keys) == 0 {
			return nil, nil
		}
		txn := tbl.NewTransaction()
		if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
			return nil, err
		}
		if err := txn.RemoveProperties(keys); err != nil {
			return nil, fmt.Errorf("stage removal: %w", err)
		}
		_, err := txn.Commit(ctx)
		if err == nil {
			for _, shard := range shards {
				s.log.Info("position of vanished shard dropped", "shard", shard, "position", props[PositionPropertyPrefix+shard])
			}
			s.m.dropped.Add(float64(len(shards)))
			return shards, nil
		}
		if !isConflict(err) || attempt >= s.cfg.MaxRetries {
			return nil, fmt.Errorf("commit removal of %d positions: %w", len(keys), err)
		}
	}
}

// maintMetrics are the table-shape and compaction metrics of Maintain and
// Compact.
type maintMetrics struct {
	filesRewritten, filesWritten, bytesRewritten, bytesWritten prometheus.Counter
	hotFiles, maxFiles, metadataBytes                          prometheus.Gauge
}

func newMaintMetrics(reg prometheus.Registerer) *maintMetrics {
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
	}
	return &maintMetrics{
		filesRewritten: counter("paystream_compaction_files_rewritten_total", "Small data files replaced by compaction commits that landed."),
		filesWritten:   counter("paystream_compaction_files_written_total", "Data files written by compaction commits that landed, in place of the small ones."),
		bytesRewritten: counter("paystream_compaction_bytes_rewritten_total", "Bytes of the data files replaced by compaction commits that landed."),
		bytesWritten:   counter("paystream_compaction_bytes_written_total", "Bytes of the data files written by compaction commits that landed."),
		hotFiles:       gauge("paystream_table_hot_partition_data_files", "Live data files in today's (UTC) partition, as of the maintainer's last compaction run."),
		maxFiles:       gauge("paystream_table_partition_data_files_max", "Live data files in the partition that has the most, as of the maintainer's last compaction run."),
		metadataBytes:  gauge("paystream_table_metadata_bytes", "Size of the table's current metadata.json, as of the maintainer's last run."),
	}
}

func (m *maintMetrics) compacted(r CompactResult) {
	m.filesRewritten.Add(float64(r.FilesRewritten))
	m.filesWritten.Add(float64(r.FilesWritten))
	m.bytesRewritten.Add(float64(r.BytesRewritten))
	m.bytesWritten.Add(float64(r.BytesWritten))
}

// partitionFiles sets the files-per-partition gauges from the live files.
func (m *maintMetrics) partitionFiles(files []liveFile, now time.Time) {
	counts := map[string]int{}
	hot, most := 0, 0
	today := dayOf(now)
	for _, f := range files {
		key, day := partitionKey(f.file.Partition())
		counts[key]++
		most = max(most, counts[key])
		if day == today {
			hot++
		}
	}
	m.hotFiles.Set(float64(hot))
	m.maxFiles.Set(float64(most))
}

// snapshotsAfter counts the snapshots of main's history after the snapshot
// id (newest first, down to it); when id is not in the history (0: there
// was no snapshot then), the whole history, so that nothing goes.
func snapshotsAfter(tbl *table.Table, id int64) int {
	history, _ := mainHistory(tbl)
	if i := slices.IndexFunc(history, func(s table.Snapshot) bool { return s.SnapshotID == id }); i >= 0 {
		return i
	}
	return len(history)
}
