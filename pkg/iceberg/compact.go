package iceberg

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"
	"github.com/google/uuid"
)

// Compaction defaults (the consumer's --compact-target-size,
// --compact-min-files and --compact-min-age).
const (
	// DefaultCompactTargetSize is the size compaction packs small files
	// into: large enough that a day of one task's data is a handful of
	// files, small enough that one file is one reader's unit of work.
	DefaultCompactTargetSize int64 = 128 << 20
	// DefaultCompactMinFiles is how many small files a partition needs
	// before it is rewritten. Each rewrite of a partition rereads its
	// small files, so the threshold bounds the write amplification.
	DefaultCompactMinFiles = 16
	// DefaultCompactMinAge is how old (since the commit that added it) a
	// file must be to be compacted: the hot partition's newest files are
	// left to accumulate, so a rewrite is not rereading files every run.
	DefaultCompactMinAge = 5 * time.Minute
)

// settleAge is how long a past day's partition must have received no file
// before its small files are packed whole (planCompaction): late events
// arrive for a while after midnight, and packing whole on each of them
// would rewrite the day's compacted file every run.
const settleAge = time.Hour

// CompactionIDProperty is the snapshot-summary property carrying the id of
// one partition's rewrite, to find it after an unknown outcome.
const CompactionIDProperty = "paystream.compaction-id"

// errRewriteStale means a file the rewrite replaces is no longer in the
// table (another compaction replaced it first): the rewrite is dropped.
var errRewriteStale = errors.New("a file to rewrite is no longer in the table")

// errRewriteStarved means every attempt of a rewrite lost to an append:
// appends win, the rewrite is dropped and the next run tries again.
var errRewriteStarved = errors.New("every attempt lost to a concurrent commit")

// CompactOptions says which files compaction rewrites. The zero value
// takes the defaults above; Compact does nothing when TargetSize < 0.
type CompactOptions struct {
	// TargetSize is the size output files aim at; files of at least 75%
	// of it are left alone. Default DefaultCompactTargetSize; negative
	// disables compaction.
	TargetSize int64
	// MinFiles: a partition with fewer small files is left alone.
	// Default DefaultCompactMinFiles; at least 2.
	MinFiles int
	// MinAge: files added less than this ago are not rewritten yet.
	// Default DefaultCompactMinAge; negative means no age limit.
	MinAge time.Duration
	// SkipHot leaves today's (UTC) partition alone.
	SkipHot bool

	at time.Time // the time compaction plans for (tests); zero: now
}

func (o CompactOptions) withDefaults() CompactOptions {
	if o.TargetSize == 0 {
		o.TargetSize = DefaultCompactTargetSize
	}
	if o.MinFiles == 0 {
		o.MinFiles = DefaultCompactMinFiles
	}
	o.MinFiles = max(o.MinFiles, 2)
	if o.MinAge == 0 {
		o.MinAge = DefaultCompactMinAge
	}
	return o
}

// CompactResult counts what compaction did.
type CompactResult struct {
	Partitions     int   // partitions rewritten
	FilesRewritten int   // small files replaced
	FilesWritten   int   // files written in their place
	BytesRewritten int64 // size of the replaced files
	BytesWritten   int64 // size of the files written
}

func (r *CompactResult) add(o CompactResult) {
	r.Partitions += o.Partitions
	r.FilesRewritten += o.FilesRewritten
	r.FilesWritten += o.FilesWritten
	r.BytesRewritten += o.BytesRewritten
	r.BytesWritten += o.BytesWritten
}

// partitionPlan is one partition's compaction: its bins and its order.
type partitionPlan struct {
	key    string
	order  int64 // the day for day(event_ts); sorts oldest first
	groups []table.CompactionTaskGroup
}

// Compact bin-packs the small data files of every partition into files of
// about TargetSize, oldest partition first, one rewrite commit per
// partition. Rows are copied unchanged (every column, same count: checked
// before committing).
//
// A rewrite never fails an append: it touches no position property, and an
// append that loses the race to it is refused as a conflict, reloads, finds
// its positions unchanged and retries (Sink.Commit). The rewrite itself is
// pinned to the snapshot it was staged on; on a conflict it reloads,
// checks that every file it replaces is still live (appends only add
// files) and re-stages the same output files on the new head. A rewrite
// that does not land removes its output files, unless an attempt's outcome
// is unknown, when they are left for the orphan sweep. The replaced files
// stay until the last snapshot referencing them expires; expiry then
// deletes them (ExpireSnapshots' post-commit clean-up).
//
// Called by Maintain (the maintainer) and by "consumer maintain". The
// result counts the partitions committed before an error.
func (s *Sink) Compact(ctx context.Context, opts CompactOptions) (CompactResult, error) {
	var res CompactResult
	opts = opts.withDefaults()
	if opts.TargetSize < 0 {
		return res, nil
	}
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return res, fmt.Errorf("load table for compaction: %w", err)
	}
	files, err := liveFiles(ctx, tbl)
	if err != nil {
		return res, err
	}
	now := opts.at
	if now.IsZero() {
		now = time.Now()
	}
	s.mm.partitionFiles(files, now)
	plans, err := planCompaction(files, opts, now)
	if err != nil {
		return res, err
	}
	for _, p := range plans {
		pres, err := s.compactPartition(ctx, tbl, p, opts.TargetSize)
		res.add(pres)
		if err != nil {
			return res, fmt.Errorf("compact partition %s: %w", p.key, err)
		}
	}
	s.mm.compacted(res)
	return res, nil
}

// planCompaction keeps the live data files old enough (by the commit that
// added them) and bins each partition's small files with iceberg-go's
// planner (table/compaction). A partition still being written — today's,
// a later one, or an older one that received a file within settleAge —
// has its small files chosen by tiered, so a file compaction wrote is not
// rewritten on every run. A settled partition (a past day, nothing added
// for settleAge) has all its small files packed once there are two: it
// ends as one file per target size.
func planCompaction(files []liveFile, opts CompactOptions, now time.Time) ([]partitionPlan, error) {
	today := dayOf(now)
	byPart := map[string]*partitionPlan{}
	tasks := map[string][]table.FileScanTask{}
	newest := map[string]time.Time{} // the last file added to each partition
	for _, f := range files {
		key, order := partitionKey(f.file.Partition())
		if f.added.After(newest[key]) {
			newest[key] = f.added
		}
		if opts.MinAge > 0 && now.Sub(f.added) < opts.MinAge {
			continue
		}
		if opts.SkipHot && order == today {
			continue
		}
		if byPart[key] == nil {
			byPart[key] = &partitionPlan{key: key, order: order}
		}
		tasks[key] = append(tasks[key], table.FileScanTask{File: f.file, Start: 0, Length: f.file.FileSizeBytes()})
	}
	cfg := compaction.DefaultConfig()
	cfg.TargetFileSizeBytes = opts.TargetSize
	cfg.MinFileSizeBytes = opts.TargetSize * 3 / 4
	cfg.MaxFileSizeBytes = opts.TargetSize * 9 / 5
	cfg.MinInputFiles = uint(opts.MinFiles)
	settled := cfg
	settled.MinInputFiles = 2
	var out []partitionPlan
	for key, p := range byPart {
		pcfg := cfg
		if p.order < today && now.Sub(newest[key]) >= settleAge {
			pcfg = settled
		} else {
			tasks[key] = tiered(tasks[key], cfg.MinFileSizeBytes)
		}
		plan, err := pcfg.PlanCompaction(tasks[key])
		if err != nil {
			return nil, fmt.Errorf("plan compaction: %w", err)
		}
		for _, g := range plan.Groups {
			p.groups = append(p.groups, table.CompactionTaskGroup{PartitionKey: key, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes})
		}
		if len(p.groups) > 0 {
			out = append(out, *p)
		}
	}
	slices.SortFunc(out, func(a, b partitionPlan) int {
		return cmp.Or(cmp.Compare(a.order, b.order), cmp.Compare(a.key, b.key))
	})
	return out, nil
}

// tiered keeps of tasks the files a rewrite of a partition still being
// written should take. The files compaction writes there stay below the
// target size, so they are small again at the next run; taking every
// small file would reread all of the day's compacted data on every run,
// work growing with the square of the day. Instead, sorted by rows, it
// takes the longest run from the fewest rows up whose largest file holds
// at most twice the rows of the others together: every file taken is then
// at most two thirds of the output, so each rewrite of a row puts it in a
// file with at least 1.5 times as many, a row is rewritten at most
// log1.5(rows of the day / rows of a commit) times, and the files left
// unmerged grow geometrically — a few per tier. (A small file with fewer
// rows than the rest, a batch cut at midnight, does not stop the run.) Rows, not bytes: a commit's file is mostly Parquet
// footer and page overhead (≈ 10 KB for 50 rows), so by bytes a few
// seconds of commits outweigh a compacted file of the whole day's rows,
// and a soak that tiered by bytes still rewrote its growing file every
// run. Files of at least minSmall bytes are not candidates anyway and
// pass unchanged. Order: the chosen small files by rows, then the rest.
func tiered(tasks []table.FileScanTask, minSmall int64) []table.FileScanTask {
	var small, rest []table.FileScanTask
	for _, t := range tasks {
		if t.File.FileSizeBytes() < minSmall {
			small = append(small, t)
		} else {
			rest = append(rest, t)
		}
	}
	slices.SortStableFunc(small, func(a, b table.FileScanTask) int {
		return cmp.Compare(a.File.Count(), b.File.Count())
	})
	var sum int64 // rows of small[:i]
	n := min(len(small), 1)
	for i, t := range small {
		if rows := t.File.Count(); i > 0 && rows <= 2*sum {
			n = i + 1
		}
		sum += t.File.Count()
	}
	return append(small[:n], rest...)
}

// liveFile is a data file of the current snapshot and when the commit that
// added it was made (zero when that snapshot has expired: old).
type liveFile struct {
	file  iceberggo.DataFile
	added time.Time
}

// liveFiles reads the manifests of tbl's current snapshot. It refuses a
// table with delete files: paystream's table is append-only, and a
// rewrite that ignored deletes would bring deleted rows back.
func liveFiles(ctx context.Context, tbl *table.Table) ([]liveFile, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, err
	}
	mans, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("read manifest list: %w", err)
	}
	var out []liveFile
	for _, m := range mans {
		if m.ManifestContent() != iceberggo.ManifestContentData {
			return nil, fmt.Errorf("table has delete files (%s); compaction supports append-only tables", m.FilePath())
		}
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("read manifest %s: %w", m.FilePath(), err)
			}
			var added time.Time
			if s := tbl.SnapshotByID(e.SnapshotID()); s != nil {
				added = time.UnixMilli(s.TimestampMs)
			}
			out = append(out, liveFile{file: e.DataFile(), added: added})
		}
	}
	return out, nil
}

// dayOf is t's day since the epoch (UTC), the value of day(event_ts).
func dayOf(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// partitionKey renders a partition tuple for logs and grouping; order is
// its first integer value (the day of day(event_ts)).
func partitionKey(p map[int]any) (string, int64) {
	ids := slices.Sorted(maps.Keys(p))
	key, order := "", int64(0)
	for i, id := range ids {
		if i > 0 {
			key += ","
		}
		key += fmt.Sprint(p[id])
		if i == 0 {
			switch v := p[id].(type) {
			case iceberggo.Date:
				order = int64(v)
			case int32:
				order = int64(v)
			case int64:
				order = v
			case int:
				order = int64(v)
			}
		}
	}
	return key, order
}

// What a rewrite holds in memory. iceberg-go's defaults read GOMAXPROCS
// files at once, each as one Arrow batch per row group, and queue up to 64
// batches for the writer: the read side held a whole partition of small
// files, so a maintainer's heap grew with the partition it compacted
// (BenchmarkCompactionHeap: 371 MiB at 1.6 M rows). One file at a time, in
// 8 Ki-row batches, two queued, bound it by the writer's row group instead.
const (
	compactScanFiles     = 1
	compactBatchRows     = 8192
	compactQueuedBatches = 2
)

// compactPartition writes p's bins as new files and commits them in place
// of the old ones.
func (s *Sink) compactPartition(ctx context.Context, tbl *table.Table, p partitionPlan, target int64) (CompactResult, error) {
	var oldFiles, newFiles []iceberggo.DataFile
	var rowsIn, rowsOut int64
	for _, g := range p.groups {
		gr, err := table.ExecuteCompactionGroup(ctx, tbl, g, table.WithCompactionTargetFileSize(target),
			table.WithCompactionScanConcurrency(compactScanFiles), table.WithCompactionArrowBatchSize(compactBatchRows),
			table.WithCompactionRecordBatchBufferSize(compactQueuedBatches))
		newFiles = append(newFiles, gr.NewDataFiles...)
		if err != nil {
			removeFiles(context.WithoutCancel(ctx), tbl, newFiles)
			return CompactResult{}, fmt.Errorf("write: %w", err)
		}
		oldFiles = append(oldFiles, gr.OldDataFiles...)
	}
	res := CompactResult{Partitions: 1, FilesRewritten: len(oldFiles), FilesWritten: len(newFiles)}
	for _, f := range oldFiles {
		rowsIn += f.Count()
		res.BytesRewritten += f.FileSizeBytes()
	}
	for _, f := range newFiles {
		rowsOut += f.Count()
		res.BytesWritten += f.FileSizeBytes()
	}
	if rowsIn != rowsOut {
		// Like WriteRecords, the rewrite can lose a file without an error.
		removeFiles(context.WithoutCancel(ctx), tbl, newFiles)
		return CompactResult{}, fmt.Errorf("rewritten files hold %d rows, the originals %d: not committed", rowsOut, rowsIn)
	}
	if err := s.commitRewrite(ctx, tbl, oldFiles, newFiles); err != nil {
		if errors.Is(err, errRewriteStale) || errors.Is(err, errRewriteStarved) {
			s.log.Warn("partition compaction dropped, the next run retries", "partition", p.key, "err", err.Error())
			return CompactResult{}, nil
		}
		return CompactResult{}, err
	}
	s.log.Info("partition compacted", "partition", p.key, "files_rewritten", res.FilesRewritten,
		"files_written", res.FilesWritten, "bytes_written", res.BytesWritten)
	return res, nil
}

// commitRewrite commits the replacement of oldFiles by newFiles, rebasing
// it on every conflict (see Compact). It removes newFiles when the rewrite
// certainly did not land, and the manifests of attempts that certainly did
// not land.
//
// A conflict can mean the attempt landed (Glue's SDK resends an
// UpdateTable whose first request applied, and hears the second refused),
// so after one the rewrite is looked for by its id before anything else,
// like an append (Sink.commitFiles): found, it is done; not found while
// main's history still reaches the snapshot the first such attempt was
// made on, it did not land and its staged manifests are removed; not
// found in a history cut above that snapshot, nobody can tell, and
// nothing of it is removed.
func (s *Sink) commitRewrite(ctx context.Context, tbl *table.Table, oldFiles, newFiles []iceberggo.DataFile) error {
	r := rewrite{s: s, id: uuid.NewString(), newFiles: newFiles}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := s.backoff.Wait(ctx, attempt-1); err != nil {
				return r.failed(ctx, tbl, fmt.Errorf("%w (last attempt: %w)", err, lastErr))
			}
			fresh, err := s.cat.LoadTable(ctx, s.ident)
			if err != nil {
				lastErr = fmt.Errorf("reload table: %w", err)
				if attempt >= s.cfg.MaxRetries {
					return r.failed(ctx, tbl, lastErr)
				}
				continue
			}
			tbl = fresh
			if r.landed(ctx, tbl) {
				return nil
			}
			if err := stillLive(ctx, tbl, oldFiles); err != nil {
				return r.failed(ctx, tbl, err)
			}
		}
		if !r.baseSet {
			r.base = headID(tbl)
		}
		staged, err := tryRewrite(ctx, tbl, oldFiles, newFiles, r.id)
		if err == nil {
			return nil
		}
		lastErr = err
		r.baseSet = true
		switch {
		case isConflict(err):
			s.log.Debug("compaction conflict, rebasing", "attempt", attempt, "err", err)
			r.maybeLanded, r.staged = true, staged
		case ctx.Err() != nil:
			r.unknown = true
			return r.failed(ctx, tbl, err)
		default:
			r.unknown = true
			s.log.Warn("compaction commit outcome unknown, will check and retry", "attempt", attempt, "err", err)
		}
		if attempt >= s.cfg.MaxRetries {
			if !r.unknown && isConflict(err) {
				err = fmt.Errorf("%w (%d attempts): %w", errRewriteStarved, attempt+1, err)
			}
			return r.failed(ctx, tbl, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// rewrite is what commitRewrite knows of its attempts.
type rewrite struct {
	s        *Sink
	id       string // the CompactionIDProperty of every attempt
	newFiles []iceberggo.DataFile
	// unknown: an attempt may still land (a timeout); never delete its
	// files. maybeLanded: the last attempt was refused as a conflict,
	// which can mean it landed; staged are its manifests.
	unknown, maybeLanded bool
	staged               []string
	// base is main's snapshot under the first attempt that may have
	// landed (baseSet).
	base    int64
	baseSet bool
}

// landed looks for the rewrite in tbl after an attempt that may have
// landed, and removes the last attempt's manifests once tbl shows it did
// not.
func (r *rewrite) landed(ctx context.Context, tbl *table.Table) bool {
	if !r.unknown && !r.maybeLanded {
		return false
	}
	if findSummary(tbl, CompactionIDProperty, r.id) != nil {
		return true
	}
	if !historyReaches(tbl, r.base) {
		r.unknown = true // landed and expired, or not: never delete its files
	} else if r.maybeLanded && !r.unknown {
		removePaths(ctx, tbl, r.staged)
	}
	r.maybeLanded, r.staged = false, nil
	return false
}

// failed returns err after removing the rewrite's files when it certainly
// did not land: with no attempt that may have, or, after one, when a fresh
// load (detached context) shows it absent from a history that reaches
// back to the first such attempt. It returns nil when the load finds it
// landed. Otherwise its files are left to the orphan sweep.
func (r *rewrite) failed(ctx context.Context, tbl *table.Table, err error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if !r.unknown && !r.maybeLanded {
		removeFiles(cctx, tbl, r.newFiles)
		return err
	}
	fresh, lerr := r.s.cat.LoadTable(cctx, r.s.ident)
	if lerr != nil {
		return fmt.Errorf("compaction outcome unknown (reload failed: %w): %w", lerr, err)
	}
	if r.landed(cctx, fresh) {
		return nil
	}
	if !r.unknown {
		removeFiles(cctx, fresh, r.newFiles)
	}
	return err
}

// tryRewrite stages and commits the replacement on tbl, main pinned to
// tbl's head. On a conflict it returns the manifests the attempt wrote.
func tryRewrite(ctx context.Context, tbl *table.Table, oldFiles, newFiles []iceberggo.DataFile, id string) ([]string, error) {
	txn := tbl.NewTransaction()
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return nil, err
	}
	rw := txn.NewRewrite(iceberggo.Properties{CompactionIDProperty: id})
	for _, f := range oldFiles {
		rw.DeleteFile(f)
	}
	for _, f := range newFiles {
		rw.AddDataFile(f)
	}
	if err := rw.Commit(ctx); err != nil {
		return nil, fmt.Errorf("stage rewrite: %w", err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		if isConflict(err) {
			return stagedManifests(ctx, tbl, txn), err
		}
		return nil, err
	}
	return nil, nil
}

// stillLive returns errRewriteStale unless every file is in tbl's current
// snapshot.
func stillLive(ctx context.Context, tbl *table.Table, files []iceberggo.DataFile) error {
	live, err := liveFiles(ctx, tbl)
	if err != nil {
		return err
	}
	paths := make(map[string]bool, len(live))
	for _, f := range live {
		paths[f.file.FilePath()] = true
	}
	for _, f := range files {
		if !paths[f.FilePath()] {
			return fmt.Errorf("%w: %s", errRewriteStale, f.FilePath())
		}
	}
	return nil
}

// findSummary returns the newest snapshot whose summary has key = value.
func findSummary(tbl *table.Table, key, value string) *table.Snapshot {
	snaps := tbl.Metadata().Snapshots()
	for i := len(snaps) - 1; i >= 0; i-- {
		if sum := snaps[i].Summary; sum != nil && sum.Properties[key] == value {
			return &snaps[i]
		}
	}
	return nil
}
