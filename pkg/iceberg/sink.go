package iceberg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// PositionPropertyPrefix starts the table property that holds a shard's
// position: "paystream.position.<shard>" = last committed sequence number.
// It is written in the same commit as the rows it covers.
const PositionPropertyPrefix = "paystream.position."

// CommitIDProperty is the snapshot-summary property carrying the id of the
// Sink.Commit call that made the snapshot, or, comma-separated, the ids of
// the batches a committer committed together (CommitPrepared). After an
// unknown outcome the sink looks for it to learn whether its commit landed.
const CommitIDProperty = "paystream.commit-id"

// ShardsProperty is the snapshot-summary property listing, comma-separated,
// the shards (and ingested files) whose positions the commit moved, so that
// ShardLastCommits can tell when each last committed.
const ShardsProperty = "paystream.shards"

// ShardLastCommits returns, for every shard named by a snapshot the table
// still keeps, the time of the newest such snapshot. Shards whose last
// commit was expired are absent.
func ShardLastCommits(tbl *table.Table) map[string]time.Time {
	out := map[string]time.Time{}
	for _, snap := range tbl.Metadata().Snapshots() {
		if snap.Summary == nil || snap.Summary.Properties[ShardsProperty] == "" {
			continue
		}
		at := time.UnixMilli(snap.TimestampMs)
		for shard := range strings.SplitSeq(snap.Summary.Properties[ShardsProperty], ",") {
			if at.After(out[shard]) {
				out[shard] = at
			}
		}
	}
	return out
}

// SinkConfig tunes a Sink. The zero value works.
type SinkConfig struct {
	// MaxRetries bounds the attempts after the first, for conflicts with
	// commits for other shards and for unknown outcomes. Default 10;
	// negative means no retries.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the jittered exponential wait between
	// attempts. Defaults 25ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// MaxFileAge bounds how long after writing its data files a Commit may
	// still commit them (default DefaultMaxFileAge). The orphan sweep
	// deletes unreferenced files older than its age (at least MinOrphanAge):
	// a writer paused past that age must not commit files the sweep may
	// have deleted, so it drops them and fails instead (the caller re-reads
	// and writes them again).
	MaxFileAge time.Duration
	// Registerer receives the sink's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger receives conflict and recovery messages; nil discards them.
	Logger *slog.Logger
}

// DefaultMaxFileAge is SinkConfig.MaxFileAge's default: well below
// MinOrphanAge, far above the longest commit with all its retries.
const DefaultMaxFileAge = 15 * time.Minute

// ErrFilesTooOld means a commit's data files were written more than
// SinkConfig.MaxFileAge ago (the writer was paused or the catalog slow for
// that long): they may have been swept as orphans, so they were dropped and
// nothing was committed. Read the records again.
var ErrFilesTooOld = errors.New("data files written too long ago to commit safely; batch dropped")

// ErrClockSkew means iceberg-go refused the commit's snapshot as stamped
// more than a minute before the table's last snapshot or update: this
// host's clock is behind, or the clock of the host that wrote that
// snapshot is ahead. Nothing was committed; fix the clocks (NTP on every
// worker).
var ErrClockSkew = errors.New("snapshot refused: clocks disagree by more than a minute")

// isClockSkew recognises iceberg-go's refusal of an old timestamp
// (table/metadata.go: "invalid snapshot timestamp", "invalid update
// timestamp … before last snapshot log entry"). It is raised while the new
// metadata is built, before it is written or swapped in, so the attempt
// certainly did not land.
func isClockSkew(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "invalid snapshot timestamp") || strings.Contains(msg, "invalid update timestamp")
}

// Sink commits batches to one Iceberg table with exactly-once shard
// positions. It holds no table handle between calls: every commit reloads
// the table from the catalog (DESIGN §7). Safe for concurrent use; several
// sinks in several processes may commit to the same table.
type Sink struct {
	cat   catalog.Catalog
	ident table.Identifier
	cfg   SinkConfig
	// backoff is MinBackoff doubling to MaxBackoff, equal jitter; attempt
	// n+1 waits Delay(n).
	backoff retry.Backoff
	log     *slog.Logger
	m       *sinkMetrics
	mm      *maintMetrics
}

// NewSink returns a sink for the table ident in cat. The table must exist
// (see EnsureTable). It starts no goroutines.
func NewSink(cat catalog.Catalog, ident table.Identifier, cfg SinkConfig) *Sink {
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 10
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 25 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(2*time.Second, cfg.MinBackoff)
	}
	if cfg.MaxFileAge <= 0 {
		cfg.MaxFileAge = DefaultMaxFileAge
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		cat:     cat,
		ident:   ident,
		cfg:     cfg,
		backoff: retry.Backoff{Base: cfg.MinBackoff, Cap: cfg.MaxBackoff},
		log:     log.With("table", strings.Join(ident, ".")),
		m:       newSinkMetrics(cfg.Registerer),
		mm:      newMaintMetrics(cfg.Registerer),
	}
}

// Commit appends b.Records and moves every shard of b.Ranges from After to
// Last in one Iceberg commit, or does nothing.
//
// Protocol (DESIGN.md beside this file): load the table; if any shard's
// position is not its After, return commit.ErrPositionMoved; write the Parquet data
// files once; then commit a snapshot (always a new snapshot, even with no
// rows, so the pinned main-branch assertion fences every position change)
// that adds the files and sets the position properties. A conflict with a
// commit for other shards reloads, re-checks the positions and retries with
// jittered backoff, reusing the data files. An unknown outcome (timeout,
// lost connection) reloads and looks for this call's commit id in the
// snapshot summaries before retrying.
//
// Errors: commit.ErrPositionMoved (nothing appended; drop the batch and re-read),
// commit.ErrInvalidBatch (caller bug), otherwise the last attempt's error after
// MaxRetries — in that case the outcome was checked and the commit did not
// land, unless ctx ended first, when the outcome may be unknown: a restarted
// worker resumes from Positions, which is always consistent with the rows.
func (s *Sink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	start := time.Now()
	defer func() { s.m.duration.Observe(time.Since(start).Seconds()) }()

	if err := commit.ValidateRanges(b.Ranges); err != nil {
		return commit.Result{}, err
	}
	rows := int64(0)
	if b.Records != nil {
		rows = b.Records.NumRows()
	}

	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return commit.Result{}, fmt.Errorf("load table for commit: %w", err)
	}
	if err := checkPositions(tbl, b.Ranges); err != nil {
		s.m.moved.Inc()
		return commit.Result{}, err
	}

	commitID, err := batchCommitID(b)
	if err != nil {
		return commit.Result{}, err
	}
	written := time.Now() // before the files exist: their age is at most since then
	if !b.Staged.IsZero() && b.Staged.Before(written) {
		written = b.Staged // dead letters staged for the batch age alike
	}
	var files []iceberggo.DataFile
	if rows > 0 {
		if err := validateRecords(tbl.Schema(), b.Records); err != nil {
			return commit.Result{}, err
		}
		files, err = writeDataFiles(ctx, tbl, b.Records, commitID)
		if err != nil {
			return commit.Result{}, fmt.Errorf("write data files: %w", err)
		}
	}

	res, err := s.commitFiles(ctx, tbl, files, written, !b.Staged.IsZero(), b.Ranges, commitID.String())
	if err != nil {
		return res, err
	}
	s.m.commits.Inc()
	s.m.rows.Add(float64(res.Rows))
	s.m.files.Add(float64(res.DataFiles))
	s.m.bytes.Add(float64(res.Bytes))
	return res, nil
}

// batchCommitID returns b.CommitID, or a new id when it is empty.
func batchCommitID(b commit.Batch) (uuid.UUID, error) {
	if b.CommitID == "" {
		return uuid.New(), nil
	}
	id, err := uuid.Parse(b.CommitID)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("%w: commit id %q is not a UUID", commit.ErrInvalidBatch, b.CommitID)
	}
	return id, nil
}

// commitFiles runs the commit loop. tbl is the freshly loaded table the
// files were written against; it is used for the first attempt only.
func (s *Sink) commitFiles(ctx context.Context, tbl *table.Table, files []iceberggo.DataFile, written time.Time, dlStaged bool, ranges []commit.ShardRange, commitID string) (commit.Result, error) {
	res := commit.Result{DataFiles: len(files)}
	for _, f := range files {
		res.Rows += f.Count()
		res.Bytes += f.FileSizeBytes()
	}

	var (
		unknown bool // an attempt may still land (a timeout): never delete what it wrote
		// maybeLanded: the last attempt was refused as a conflict, which can
		// mean it landed (the SDK resent an UpdateTable that had applied).
		// Look for it before anything else; if it is absent, its staged
		// manifests are ours alone.
		maybeLanded bool
		staged      []string
		lastErr     error
		// base is main's snapshot under the first attempt that may have
		// landed (baseSet): while main's history still reaches it, a
		// commit not found in the history did not land; once expiry has
		// cut the history above it, nobody can tell.
		base    int64
		baseSet bool
	)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			res.Retries = attempt
			s.m.retries.Inc()
			if err := s.backoff.Wait(ctx, attempt-1); err != nil {
				return s.finalCheck(ctx, res, commitID, unknown || maybeLanded, fmt.Errorf("%w (last attempt: %w)", err, lastErr))
			}
			var err error
			if tbl, err = s.cat.LoadTable(ctx, s.ident); err != nil {
				lastErr = fmt.Errorf("reload table: %w", err)
				if attempt >= s.cfg.MaxRetries {
					return s.finalCheck(ctx, res, commitID, unknown || maybeLanded, lastErr)
				}
				continue
			}
		}

		lost := false // an attempt may have landed and its snapshot been expired
		if unknown || maybeLanded {
			if snap := findCommit(tbl, commitID); snap != nil {
				s.log.Info("commit landed despite error", "commit_id", commitID, "snapshot_id", snap.SnapshotID, "err", lastErr)
				res.SnapshotID = snap.SnapshotID
				return res, nil
			}
			lost = !historyReaches(tbl, base)
		}
		if maybeLanded && !unknown && !lost {
			removePaths(ctx, tbl, staged) // the refused attempt's manifests
		}
		maybeLanded, staged = false, nil
		if err := s.refuse(ctx, tbl, files, written, dlStaged, ranges, unknown || lost); err != nil {
			if lost {
				// Landed and expired, or refused for another writer's
				// commit: nothing of it is deleted, and the caller must
				// not discard its dead letters.
				s.log.Warn("commit outcome unknown: its attempt's snapshot may have expired", "commit_id", commitID, "err", err)
				err = fmt.Errorf("%w: %w", commit.ErrOutcomeUnknown, err)
			}
			return commit.Result{}, err
		}
		if !baseSet {
			base = headID(tbl)
		}
		snapID, manifests, err := s.tryCommit(ctx, tbl, files, ranges, commitID)
		if err == nil {
			res.SnapshotID = snapID
			return res, nil
		}
		lastErr = err
		baseSet = true // this attempt may have landed
		switch {
		case isClockSkew(err):
			s.m.clockSkew.Inc()
			if !unknown {
				removeFiles(ctx, tbl, files)
			}
			return commit.Result{}, fmt.Errorf("%w (check NTP on every worker): %w", ErrClockSkew, err)
		case isConflict(err):
			s.m.conflicts.Inc()
			s.log.Debug("commit conflict", "attempt", attempt, "err", err)
			maybeLanded, staged = true, manifests
		case ctx.Err() != nil:
			return s.finalCheck(ctx, res, commitID, true, err)
		default:
			unknown = true
			s.log.Warn("commit outcome unknown, will check and retry", "attempt", attempt, "commit_id", commitID, "err", err)
		}
		if attempt >= s.cfg.MaxRetries {
			return s.finalCheck(ctx, res, commitID, unknown || maybeLanded, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// refuse reports why files must not be committed on tbl: a shard's
// position moved (ErrPositionMoved) or the files (or the batch's staged
// dead letters) were written more than MaxFileAge ago (ErrFilesTooOld).
// Refused files are removed — certainly not committed, they are ours
// alone — unless an earlier attempt's outcome is unknown.
func (s *Sink) refuse(ctx context.Context, tbl *table.Table, files []iceberggo.DataFile, written time.Time, staged bool, ranges []commit.ShardRange, unknown bool) error {
	err := checkPositions(tbl, ranges)
	if err != nil {
		s.m.moved.Inc()
	} else if age := time.Since(written); (len(files) > 0 || staged) && age > s.cfg.MaxFileAge {
		err = fmt.Errorf("%w: written %s ago, limit %s", ErrFilesTooOld, age.Round(time.Second), s.cfg.MaxFileAge)
	}
	if err != nil && !unknown {
		removeFiles(ctx, tbl, files)
	}
	return err
}

// tryCommit builds and commits one transaction on tbl. When the catalog
// refuses it as a conflict it also returns the manifests the attempt wrote,
// for the caller to remove once it has seen that the attempt did not land.
func (s *Sink) tryCommit(ctx context.Context, tbl *table.Table, files []iceberggo.DataFile, ranges []commit.ShardRange, commitID string) (int64, []string, error) {
	txn := tbl.NewTransaction()
	// Pin main to the snapshot we checked the positions on: any commit that
	// moved a position since made a snapshot, so this fails instead of
	// being replayed by iceberg-go's refresh-and-replay.
	if err := txn.AssertRefSnapshotID(table.MainBranch); err != nil {
		return 0, nil, err
	}
	shards := make([]string, len(ranges))
	for i, r := range ranges {
		shards[i] = r.Shard
	}
	summary := iceberggo.Properties{CommitIDProperty: commitID, ShardsProperty: strings.Join(shards, ",")}
	var err error
	if len(files) > 0 {
		err = txn.AddDataFiles(ctx, files, summary, table.WithoutDuplicateCheck())
	} else {
		err = txn.AddFiles(ctx, nil, summary, true) // an empty append snapshot
	}
	if err != nil {
		return 0, nil, fmt.Errorf("stage append: %w", err)
	}
	pos := make(iceberggo.Properties, len(ranges))
	for _, r := range ranges {
		pos[PositionPropertyPrefix+r.Shard] = r.Last
	}
	if err := txn.SetProperties(pos); err != nil {
		return 0, nil, fmt.Errorf("stage positions: %w", err)
	}
	committed, err := txn.Commit(ctx)
	if err != nil {
		if isConflict(err) {
			return 0, stagedManifests(ctx, tbl, txn), err
		}
		return 0, nil, err
	}
	if snap := committed.CurrentSnapshot(); snap != nil {
		return snap.SnapshotID, nil, nil
	}
	return 0, nil, nil
}

// finalCheck decides what to return when the loop stops with err: after an
// unknown outcome it looks (with a short, detached context if ctx is done)
// for the commit before reporting failure.
func (s *Sink) finalCheck(ctx context.Context, res commit.Result, commitID string, unknown bool, err error) (commit.Result, error) {
	if !unknown {
		return commit.Result{}, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tbl, lerr := s.cat.LoadTable(cctx, s.ident)
	if lerr != nil {
		return commit.Result{}, fmt.Errorf("commit outcome unknown (reload failed: %w): %w", lerr, err)
	}
	if snap := findCommit(tbl, commitID); snap != nil {
		res.SnapshotID = snap.SnapshotID
		return res, nil
	}
	return commit.Result{}, err
}

// Positions returns every shard's last committed sequence number, read from
// the table's properties. Shards never committed are absent. Called on
// start-up and on lease take-over to resume; also used by file ingest,
// whose "shards" are source files.
func (s *Sink) Positions(ctx context.Context) (map[string]string, error) {
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return nil, fmt.Errorf("load table for positions: %w", err)
	}
	return TablePositions(tbl), nil
}

// TablePositions extracts the shard positions from a loaded table.
func TablePositions(tbl *table.Table) map[string]string {
	out := map[string]string{}
	for k, v := range tbl.Properties() {
		if shard, ok := strings.CutPrefix(k, PositionPropertyPrefix); ok {
			out[shard] = v
		}
	}
	return out
}

// checkPositions returns commit.ErrPositionMoved, naming the first shard whose
// table position is not the range's After.
func checkPositions(tbl *table.Table, ranges []commit.ShardRange) error {
	props := tbl.Properties()
	for _, r := range ranges {
		cur, ok := props[PositionPropertyPrefix+r.Shard]
		switch {
		case r.After == "" && !ok:
		case ok && r.After != "" && commit.CompareSeq(cur, r.After) == 0:
		default:
			if !ok {
				cur = "none"
			}
			after := r.After
			if after == "" {
				after = "none"
			}
			return fmt.Errorf("%w: shard %s is at %s in the table, batch starts after %s", commit.ErrPositionMoved, r.Shard, cur, after)
		}
	}
	return nil
}

// validateRecords rejects rows that would be stored wrongly: a NULL in a
// column the table requires is silently written as "" by iceberg-go
// (DESIGN §7), and an empty event_id can never be de-duplicated.
func validateRecords(sc *iceberggo.Schema, rec arrow.RecordBatch) error {
	rs := rec.Schema()
	for _, f := range sc.Fields() {
		idx := rs.FieldIndices(f.Name)
		if len(idx) == 0 {
			if f.Required {
				return fmt.Errorf("%w: required column %s is missing from the records", commit.ErrInvalidBatch, f.Name)
			}
			continue
		}
		col := rec.Column(idx[0])
		if f.Required && col.NullN() > 0 {
			return fmt.Errorf("%w: %d NULL values in required column %s", commit.ErrInvalidBatch, col.NullN(), f.Name)
		}
	}
	idx := rs.FieldIndices(schema.ColEventID)
	if len(idx) == 0 {
		return fmt.Errorf("%w: column %s is missing", commit.ErrInvalidBatch, schema.ColEventID)
	}
	ids, ok := rec.Column(idx[0]).(*array.String)
	if !ok {
		return fmt.Errorf("%w: column %s is %s, want string", commit.ErrInvalidBatch, schema.ColEventID, rec.Column(idx[0]).DataType())
	}
	for i := range ids.Len() {
		if ids.IsNull(i) || ids.Value(i) == "" {
			return fmt.Errorf("%w: row %d has an empty %s", commit.ErrInvalidBatch, i, schema.ColEventID)
		}
	}
	return nil
}

func withTableFieldIDs(tsc *iceberggo.Schema, in *arrow.Schema) (*arrow.Schema, error) {
	fields := make([]arrow.Field, in.NumFields())
	for i, f := range in.Fields() {
		tf, ok := tsc.FindFieldByName(f.Name)
		if !ok {
			return nil, fmt.Errorf("%w: column %s is not in the table (run EnsureTable to add it)", commit.ErrInvalidBatch, f.Name)
		}
		f.Metadata = arrow.NewMetadata([]string{"PARQUET:field_id"}, []string{strconv.Itoa(tf.ID)})
		fields[i] = f
	}
	md := in.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// findCommit returns the snapshot made by the commit with id commitID
// (alone or with other batches of a committer).
func findCommit(tbl *table.Table, commitID string) *table.Snapshot {
	snaps := tbl.Metadata().Snapshots()
	for i := len(snaps) - 1; i >= 0; i-- {
		if slices.Contains(commitIDs(snaps[i]), commitID) {
			return &snaps[i]
		}
	}
	return nil
}

// headID is main's snapshot id in tbl (0: none).
func headID(tbl *table.Table) int64 {
	if cur := tbl.CurrentSnapshot(); cur != nil {
		return cur.SnapshotID
	}
	return 0
}

// mainHistory is main's history in tbl, newest first (iceberg-go's
// AncestorsOfChecked): complete when it ends at the first snapshot, not at
// a parent expiry removed.
func mainHistory(tbl *table.Table) (history []table.Snapshot, complete bool) {
	meta := tbl.Metadata()
	return table.AncestorsOfChecked(headID(tbl), func(id int64) *table.Snapshot { return meta.SnapshotByID(id) })
}

// historyReaches reports whether main's history in tbl still holds every
// snapshot after id (0: every snapshot since the first): it reaches id
// (or, for 0, the first snapshot) before a parent that expiry removed. A
// snapshot added on top of id is then in the history if it is in the
// table at all.
func historyReaches(tbl *table.Table, id int64) bool {
	history, complete := mainHistory(tbl)
	if id == 0 {
		return complete || tbl.CurrentSnapshot() == nil
	}
	return slices.ContainsFunc(history, func(s table.Snapshot) bool { return s.SnapshotID == id })
}

// isConflict reports a clean optimistic-concurrency failure: nothing was
// committed and a retry after reloading is safe. iceberg-go reports a stale
// base as a plain "requirement failed: …" error, not ErrCommitFailed
// (DESIGN §7); catalogs report a lost compare-and-swap as ErrCommitFailed.
func isConflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) ||
		strings.Contains(strings.ToLower(err.Error()), "requirement failed")
}

// removeFiles deletes data files that were written but certainly not
// committed. Best effort: leftovers are orphans that no snapshot references.
func removeFiles(ctx context.Context, tbl *table.Table, files []iceberggo.DataFile) {
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.FilePath()
	}
	removePaths(ctx, tbl, paths)
}

// stagedManifests returns the manifest list and the manifests that txn
// wrote and base does not use: what a refused attempt leaves behind. Nil
// when they cannot be told apart from shared ones.
func stagedManifests(ctx context.Context, base *table.Table, txn *table.Transaction) []string {
	staged, err := txn.StagedTable()
	if err != nil {
		return nil
	}
	snap := staged.CurrentSnapshot()
	if snap == nil {
		return nil
	}
	old := base.CurrentSnapshot()
	if old != nil && old.SnapshotID == snap.SnapshotID {
		return nil
	}
	fs, err := base.FS(ctx)
	if err != nil {
		return nil
	}
	keep := map[string]bool{}
	if old != nil {
		ms, err := old.Manifests(fs)
		if err != nil {
			return nil // cannot tell ours from shared ones: leave them
		}
		for _, m := range ms {
			keep[m.FilePath()] = true
		}
	}
	ms, err := snap.Manifests(fs)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		if !keep[m.FilePath()] {
			out = append(out, m.FilePath())
		}
	}
	if snap.ManifestList != "" {
		out = append(out, snap.ManifestList)
	}
	return out
}

// removePaths deletes files of the table's file system, best effort.
func removePaths(ctx context.Context, tbl *table.Table, paths []string) {
	if len(paths) == 0 {
		return
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return
	}
	for _, p := range paths {
		_ = fs.Remove(p)
	}
}

type sinkMetrics struct {
	commits, conflicts, retries, moved, rows, files, bytes, expired, orphans, metadataFiles, dropped, clockSkew prometheus.Counter
	duration                                                                                                    prometheus.Histogram
}

func newSinkMetrics(reg prometheus.Registerer) *sinkMetrics {
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	return &sinkMetrics{
		commits:       counter("paystream_sink_commits_total", "Iceberg commits that landed."),
		conflicts:     counter("paystream_sink_commit_conflicts_total", "Commit attempts rejected because another writer committed first (retried)."),
		retries:       counter("paystream_sink_commit_retries_total", "Commit attempts after the first, for conflicts and unknown outcomes."),
		moved:         counter("paystream_sink_position_moved_total", "Batches dropped because a shard's position in the table moved (zombie writer fenced)."),
		rows:          counter("paystream_sink_rows_committed_total", "Rows appended by commits that landed."),
		files:         counter("paystream_sink_data_files_total", "Parquet data files added by commits that landed."),
		bytes:         counter("paystream_sink_data_bytes_total", "Bytes of Parquet data files added by commits that landed."),
		expired:       counter("paystream_sink_snapshots_expired_total", "Snapshots expired by maintenance."),
		orphans:       counter("paystream_sink_orphan_files_removed_total", "Unreferenced files removed by maintenance's orphan sweep."),
		metadataFiles: counter("paystream_sink_metadata_files_removed_total", "metadata.json files of commit attempts the catalog refused, removed by maintenance."),
		dropped:       counter("paystream_sink_positions_dropped_total", "Position properties of shards gone from the stream removed by maintenance."),
		clockSkew:     counter("paystream_sink_clock_skew_total", "Commits refused because this host's clock is more than a minute behind the table's last snapshot (or its writer's clock ahead)."),
		duration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "paystream_sink_commit_duration_seconds",
			Help: "Time of Sink.Commit calls, including writing data files and retries.",
			// 5 ms to 41 s in steps of √2: a median read from doubling
			// buckets could be off by a fifth, as much as the soak's
			// p50 target allows.
			Buckets: prometheus.ExponentialBuckets(0.005, math.Sqrt2, 27),
		})),
	}
}

// register registers c on reg, reusing an identical collector already
// registered there (several sinks sharing one registry). nil reg: no-op.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register metric: %v", err))
	}
	return c
}
