package iceberg

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
)

// Prepared is a batch whose data files are written but not committed: what
// a worker stages for the table's committer (pkg/ingest, commit mode
// "single"), and what the committer commits with other prepared batches in
// one snapshot (CommitPrepared). It holds everything needed to add the
// files without reading them again.
type Prepared struct {
	CommitID string
	Ranges   []commit.ShardRange
	Files    []FileRecord
	// Written is when the files (or the batch's dead letters) were first
	// written; CommitPrepared refuses the batch once it is older than
	// SinkConfig.MaxFileAge.
	Written time.Time
	// DeadLetters: the batch staged dead letters under CommitID, so it is
	// subject to MaxFileAge even with no data files.
	DeadLetters bool
}

// FileRecord is one written data file as iceberg-go's DataFile describes
// it, in plain fields so that it can be encoded (Marshal) and the DataFile
// rebuilt against the table's partition spec.
type FileRecord struct {
	Path        string
	Format      string
	SpecID      int32
	Partition   map[int]any
	Count, Size int64
	ColumnSizes map[int]int64
	ValueCounts map[int]int64
	NullCounts  map[int]int64
	NaNCounts   map[int]int64
	Lower       map[int][]byte
	Upper       map[int][]byte
	Splits      []int64
	SortOrderID *int
}

func init() {
	// Partition values are the iceberg-go literal types a transform
	// produces (day: Date); gob needs their concrete types.
	gob.Register(iceberggo.Date(0))
	gob.Register(iceberggo.Time(0))
	gob.Register(iceberggo.Timestamp(0))
	gob.Register(iceberggo.TimestampNano(0))
	gob.Register(uuid.UUID{})
}

// Rows returns the number of rows in p's files.
func (p Prepared) Rows() int64 {
	var n int64
	for _, f := range p.Files {
		n += f.Count
	}
	return n
}

// Bytes returns the size of p's files.
func (p Prepared) Bytes() int64 {
	var n int64
	for _, f := range p.Files {
		n += f.Size
	}
	return n
}

// Marshal encodes p (for a staged item).
func (p Prepared) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(p); err != nil {
		return nil, fmt.Errorf("encode prepared batch %s: %w", p.CommitID, err)
	}
	return buf.Bytes(), nil
}

// UnmarshalPrepared decodes what Prepared.Marshal encoded.
func UnmarshalPrepared(data []byte) (Prepared, error) {
	var p Prepared
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&p); err != nil {
		return Prepared{}, fmt.Errorf("decode prepared batch: %w", err)
	}
	return p, nil
}

// Prepare writes b's data files without committing them, as Commit does
// before its commit loop: it loads the table, refuses the batch at once if
// a shard's position is not its After (commit.ErrPositionMoved, nothing
// written), validates the records and writes one file per partition.
func (s *Sink) Prepare(ctx context.Context, b commit.Batch) (Prepared, error) {
	if err := commit.ValidateRanges(b.Ranges); err != nil {
		return Prepared{}, err
	}
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return Prepared{}, fmt.Errorf("load table to write a batch: %w", err)
	}
	if err := checkPositions(tbl, b.Ranges); err != nil {
		s.m.moved.Inc()
		return Prepared{}, err
	}
	id, err := batchCommitID(b)
	if err != nil {
		return Prepared{}, err
	}
	p := Prepared{CommitID: id.String(), Ranges: slices.Clone(b.Ranges), Written: time.Now(), DeadLetters: !b.Staged.IsZero()}
	if p.DeadLetters && b.Staged.Before(p.Written) {
		p.Written = b.Staged
	}
	if b.Records == nil || b.Records.NumRows() == 0 {
		return p, nil
	}
	if err := validateRecords(tbl.Schema(), b.Records); err != nil {
		return Prepared{}, err
	}
	files, err := writeDataFiles(ctx, tbl, b.Records, id)
	if err != nil {
		return Prepared{}, fmt.Errorf("write data files: %w", err)
	}
	for _, f := range files {
		p.Files = append(p.Files, fileRecord(f))
	}
	return p, nil
}

func fileRecord(f iceberggo.DataFile) FileRecord {
	return FileRecord{
		Path: f.FilePath(), Format: string(f.FileFormat()), SpecID: f.SpecID(),
		Partition: maps.Clone(f.Partition()), Count: f.Count(), Size: f.FileSizeBytes(),
		ColumnSizes: f.ColumnSizes(), ValueCounts: f.ValueCounts(), NullCounts: f.NullValueCounts(),
		NaNCounts: f.NaNValueCounts(), Lower: f.LowerBoundValues(), Upper: f.UpperBoundValues(),
		Splits: f.SplitOffsets(), SortOrderID: f.SortOrderID(),
	}
}

// dataFile rebuilds r as a DataFile of tbl's partition spec.
func (r FileRecord) dataFile(tbl *table.Table) (iceberggo.DataFile, error) {
	spec := tbl.Spec()
	if int32(spec.ID()) != r.SpecID {
		return nil, fmt.Errorf("data file %s was written for partition spec %d, the table's is %d", r.Path, r.SpecID, spec.ID())
	}
	b, err := iceberggo.NewDataFileBuilder(spec, iceberggo.EntryContentData, r.Path, iceberggo.FileFormat(r.Format),
		r.Partition, partitionLogicalTypes(tbl), nil, r.Count, r.Size)
	if err != nil {
		return nil, fmt.Errorf("rebuild data file %s: %w", r.Path, err)
	}
	b.ColumnSizes(r.ColumnSizes).ValueCounts(r.ValueCounts).NullValueCounts(r.NullCounts).
		NaNValueCounts(r.NaNCounts).LowerBoundValues(r.Lower).UpperBoundValues(r.Upper).SplitOffsets(r.Splits)
	if r.SortOrderID != nil {
		b.SortOrderID(*r.SortOrderID)
	}
	return b.Build(), nil
}

// partitionLogicalTypes names the Avro logical type of each partition
// field's value, as iceberg-go's writer does when it builds a DataFile
// (table/internal: day → date, hour/identity of a timestamp → micros, …).
func partitionLogicalTypes(tbl *table.Table) map[int]string {
	out := map[int]string{}
	spec := tbl.Spec()
	for _, f := range spec.Fields() {
		src, ok := tbl.Schema().FindFieldByID(f.SourceID())
		if !ok {
			continue
		}
		switch f.Transform.ResultType(src.Type).(type) {
		case iceberggo.DateType:
			out[f.FieldID] = "date"
		case iceberggo.TimeType:
			out[f.FieldID] = "time-micros"
		case iceberggo.TimestampType, iceberggo.TimestampTzType:
			out[f.FieldID] = "timestamp-micros"
		case iceberggo.DecimalType:
			out[f.FieldID] = "decimal"
		case iceberggo.UUIDType:
			out[f.FieldID] = "uuid"
		}
	}
	return out
}

// RemovePrepared deletes p's data files: for a batch that is certainly not
// in the table. Best effort; leftovers are orphans.
func (s *Sink) RemovePrepared(ctx context.Context, p Prepared) {
	tbl, err := s.cat.LoadTable(ctx, s.ident)
	if err != nil {
		return
	}
	removePaths(ctx, tbl, filePaths(p))
}

func filePaths(p Prepared) []string {
	out := make([]string, len(p.Files))
	for i, f := range p.Files {
		out[i] = f.Path
	}
	return out
}

// commitIDs returns the ids of the commits a snapshot holds: one per batch
// (CommitIDProperty is a comma-separated list when a committer committed
// several batches in one snapshot).
func commitIDs(snap table.Snapshot) []string {
	if snap.Summary == nil || snap.Summary.Properties[CommitIDProperty] == "" {
		return nil
	}
	return strings.Split(snap.Summary.Properties[CommitIDProperty], ",")
}

// ErrRivalBatch means another prepared batch for the same shard range was
// chosen (CommitPrepared takes the first in its argument's order). Nothing
// of the refused batch was committed; its files were removed.
var ErrRivalBatch = fmt.Errorf("%w: another batch for the same shard range was committed instead", commit.ErrPositionMoved)

// PreparedOutcome is what CommitPrepared did with one batch.
type PreparedOutcome struct {
	// Landed: the batch is in the table, in snapshot SnapshotID. Already:
	// it was found there before this call committed anything (an earlier
	// committer landed it).
	Landed, Already bool
	SnapshotID      int64
	// Refused says why the batch was not committed and never will be as
	// it is: commit.ErrPositionMoved (a shard's position is not its
	// After; ErrRivalBatch for a rival), ErrFilesTooOld. Nil when landed
	// or undecided (the call's error).
	Refused error
	// Removed: the refused batch's files were deleted; it certainly is not
	// in the table. A refused batch that might be (its positions are at or
	// past its Last, its commit no longer findable) keeps its files for
	// the orphan sweep.
	Removed bool
	Retries int
}

// CommitPrepared commits the prepared batches in one Iceberg commit that
// adds all their files and moves every shard's position, fenced as Commit
// is: the snapshot is pinned to the one the positions were checked on; a
// conflict reloads, re-checks and retries; an unknown outcome looks for the
// commit before retrying. The snapshot's CommitIDProperty lists every
// batch's id. Before that, each batch is classified on the loaded table:
// found by its commit id (landed earlier: nothing to do), a shard's
// position not its After (refused), older than MaxFileAge (refused), or a
// rival of an earlier batch in the slice for a shard (refused): earlier
// batches win. Only the committer of the table calls it (pkg/ingest).
//
// It returns one outcome per batch. The error, if any, concerns the
// batches left undecided (neither landed nor refused): their commit failed
// after MaxRetries or ctx ended, and they may have landed only if
// errors.Is(err, ErrOutcomeUnknown).
func (s *Sink) CommitPrepared(ctx context.Context, batches []Prepared) ([]PreparedOutcome, error) {
	start := time.Now()
	defer func() { s.m.duration.Observe(time.Since(start).Seconds()) }()
	c := &multiCommit{s: s, batches: batches, out: make([]PreparedOutcome, len(batches))}
	return c.out, c.run(ctx)
}

// ErrOutcomeUnknown means a commit attempt may still have landed (a timeout,
// a lost connection): look for the batch's commit id before anything else.
var ErrOutcomeUnknown = commit.ErrOutcomeUnknown

// multiCommit is one CommitPrepared call.
type multiCommit struct {
	s       *Sink
	batches []Prepared
	out     []PreparedOutcome
	// unknown: an attempt may still land; never delete files of the
	// batches it carried.
	unknown bool
	// maybeLanded: the last attempt was refused as a conflict, which can
	// mean it landed (Glue's SDK resent an UpdateTable that had applied).
	// Its staged manifests (staged) are removed only once the table shows
	// none of its batches (tried).
	maybeLanded bool
	staged      []string
	tried       []int
	attempted   map[int]bool // batches carried by an attempt
	// base is main's snapshot under the first attempt that may have
	// landed (baseSet): a commit missing from a history that no longer
	// reaches it may have landed and been expired (historyReaches).
	base    int64
	baseSet bool
}

func (c *multiCommit) run(ctx context.Context) error {
	c.attempted = map[int]bool{}
	var lastErr error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			c.s.m.retries.Inc()
			if err := c.s.backoff.Wait(ctx, attempt-1); err != nil {
				return c.final(ctx, fmt.Errorf("%w (last attempt: %w)", err, lastErr))
			}
		}
		tbl, err := c.s.cat.LoadTable(ctx, c.s.ident)
		if err != nil {
			lastErr = fmt.Errorf("load table for commit: %w", err)
			if attempt >= c.s.cfg.MaxRetries {
				return c.final(ctx, lastErr)
			}
			continue
		}
		accepted := c.classify(ctx, tbl, attempt)
		if len(accepted) == 0 {
			return nil
		}
		done, err := c.try(ctx, tbl, accepted, attempt)
		if done || err == nil {
			return err
		}
		lastErr = err
		if attempt >= c.s.cfg.MaxRetries {
			return c.final(ctx, fmt.Errorf("gave up after %d attempts: %w", attempt+1, err))
		}
	}
}

// classify decides every undecided batch it can on tbl and returns the
// indexes of those to commit now.
func (c *multiCommit) classify(ctx context.Context, tbl *table.Table, attempt int) []int {
	landed := landedCommits(tbl)
	if c.maybeLanded && !c.unknown && !c.triedLanded(landed) && historyReaches(tbl, c.base) {
		removePaths(ctx, tbl, c.staged) // the refused attempt's manifests: it did not land
	}
	c.maybeLanded, c.staged, c.tried = false, nil, nil
	pos := TablePositions(tbl)
	taken := map[string]bool{}
	var accepted []int
	for i, b := range c.batches {
		o := &c.out[i]
		if o.Landed || o.Refused != nil {
			continue
		}
		o.Retries = attempt
		if snap, ok := landed[b.CommitID]; ok {
			o.Landed, o.Already, o.SnapshotID = true, !c.attempted[i], snap
			continue
		}
		if err := c.refusal(tbl, b, taken); err != nil {
			c.refuse(ctx, tbl, i, err, pos)
			continue
		}
		for _, r := range b.Ranges {
			taken[r.Shard] = true
		}
		accepted = append(accepted, i)
	}
	return accepted
}

// triedLanded reports whether the last attempt's snapshot is in the table:
// it carried every batch of c.tried, so one of them found is all found.
func (c *multiCommit) triedLanded(landed map[string]int64) bool {
	for _, i := range c.tried {
		if _, ok := landed[c.batches[i].CommitID]; ok {
			return true
		}
	}
	return false
}

// refusal reports why b cannot be committed on tbl, or nil.
func (c *multiCommit) refusal(tbl *table.Table, b Prepared, taken map[string]bool) error {
	if err := checkPositions(tbl, b.Ranges); err != nil {
		return err
	}
	for _, r := range b.Ranges {
		if taken[r.Shard] {
			return fmt.Errorf("%w (shard %s after %s)", ErrRivalBatch, r.Shard, orNone(r.After))
		}
	}
	if age := time.Since(b.Written); (len(b.Files) > 0 || b.DeadLetters) && age > c.s.cfg.MaxFileAge {
		return fmt.Errorf("%w: written %s ago, limit %s", ErrFilesTooOld, age.Round(time.Second), c.s.cfg.MaxFileAge)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// refuse records batch i's refusal and removes its files when it is
// certainly not in the table: no attempt of this call that may still land
// carried it, and some shard's position is before its Last (a landed
// batch moves every position to its Last, and positions only move on).
func (c *multiCommit) refuse(ctx context.Context, tbl *table.Table, i int, err error, pos map[string]string) {
	o := &c.out[i]
	o.Refused = err
	if errors.Is(err, commit.ErrPositionMoved) {
		c.s.m.moved.Inc()
	}
	if c.unknown && c.attempted[i] {
		return
	}
	b := c.batches[i]
	for _, r := range b.Ranges {
		if commit.CompareSeq(pos[r.Shard], r.Last) < 0 {
			removePaths(ctx, tbl, filePaths(b))
			o.Removed = true
			return
		}
	}
}

// try commits the accepted batches on tbl. done: stop (landed, or failed
// for good with err); otherwise err is the attempt's error, to retry.
func (c *multiCommit) try(ctx context.Context, tbl *table.Table, accepted []int, attempt int) (bool, error) {
	files, ranges, ids, err := c.gather(tbl, accepted)
	if err != nil {
		return true, err
	}
	for _, i := range accepted {
		c.attempted[i] = true
	}
	if !c.baseSet {
		c.base = headID(tbl)
	}
	snapID, manifests, err := c.s.tryCommit(ctx, tbl, files, ranges, strings.Join(ids, ","))
	c.baseSet = c.baseSet || err != nil // this attempt may have landed
	switch {
	case err == nil:
		c.landed(accepted, snapID)
		return true, nil
	case isClockSkew(err):
		c.s.m.clockSkew.Inc()
		return true, fmt.Errorf("%w (check NTP on every worker): %w", ErrClockSkew, err)
	case isConflict(err):
		c.s.m.conflicts.Inc()
		c.maybeLanded, c.staged, c.tried = true, manifests, accepted
	case ctx.Err() != nil:
		c.unknown = true
		return true, c.final(ctx, err)
	default:
		c.unknown = true
		c.s.log.Warn("commit outcome unknown, will check and retry", "attempt", attempt, "batches", len(accepted), "err", err)
	}
	return false, err
}

// gather collects the accepted batches' files (rebuilt against tbl's
// spec), ranges and commit ids.
func (c *multiCommit) gather(tbl *table.Table, accepted []int) ([]iceberggo.DataFile, []commit.ShardRange, []string, error) {
	var (
		files  []iceberggo.DataFile
		ranges []commit.ShardRange
		ids    []string
	)
	for _, i := range accepted {
		b := c.batches[i]
		for _, r := range b.Files {
			df, err := r.dataFile(tbl)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("batch %s: %w", b.CommitID, err)
			}
			files = append(files, df)
		}
		ranges = append(ranges, b.Ranges...)
		ids = append(ids, b.CommitID)
	}
	return files, ranges, ids, nil
}

func (c *multiCommit) landed(accepted []int, snapID int64) {
	c.s.m.commits.Inc()
	for _, i := range accepted {
		o := &c.out[i]
		o.Landed, o.SnapshotID = true, snapID
		c.s.m.rows.Add(float64(c.batches[i].Rows()))
		c.s.m.files.Add(float64(len(c.batches[i].Files)))
		c.s.m.bytes.Add(float64(c.batches[i].Bytes()))
	}
}

// final returns err after looking, when an attempt's outcome is unknown,
// for the attempted batches in the table (with a detached context if ctx
// is done).
func (c *multiCommit) final(ctx context.Context, err error) error {
	if !c.unknown && !c.maybeLanded {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	tbl, lerr := c.s.cat.LoadTable(cctx, c.s.ident)
	if lerr != nil {
		return fmt.Errorf("%w (reload failed: %w): %w", ErrOutcomeUnknown, lerr, err)
	}
	landed := landedCommits(tbl)
	for i, b := range c.batches {
		if snap, ok := landed[b.CommitID]; ok && c.attempted[i] && !c.out[i].Landed {
			c.out[i].Landed, c.out[i].SnapshotID = true, snap
		}
	}
	if c.unknown {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}

// landedCommits maps the commit id of every batch in a snapshot the table
// keeps to that snapshot.
func landedCommits(tbl *table.Table) map[string]int64 {
	out := map[string]int64{}
	for _, snap := range tbl.Metadata().Snapshots() {
		for _, id := range commitIDs(snap) {
			out[id] = snap.SnapshotID
		}
	}
	return out
}
