package commit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// Table is the Iceberg table a Step commits to (*iceberg.Sink).
type Table interface {
	// Commit appends b.Records and moves every range's shard position in
	// one table commit, or does nothing. ErrPositionMoved: another writer
	// moved a position first and nothing was written — unless
	// ErrOutcomeUnknown comes with it (an earlier attempt may have landed,
	// its snapshot since expired). Any other error
	// leaves nothing written that a later Commit could duplicate.
	Commit(ctx context.Context, b Batch) (Result, error)
	// Positions returns each shard's last committed sequence number.
	Positions(ctx context.Context) (map[string]string, error)
}

// DeadLetters stores rejected records (*iceberg.DeadLetter) in two stages,
// so that a record is readable exactly once whatever happens to the
// commits: Stage writes an attempt's rejects where no reader looks, keyed
// by the attempt's commit id; Publish makes a landed attempt's objects
// readable under names that depend only on their content; Discard removes
// the objects of an attempt that certainly did not land. Objects of an
// attempt whose outcome is unknown are resolved later by the table's
// maintainer, which looks the commit id up in the table.
type DeadLetters interface {
	Stage(ctx context.Context, commitID, shard, firstSeq, lastSeq string, recs []Rejected) (string, error)
	Publish(ctx context.Context, commitID string) (int, error)
	Discard(ctx context.Context, commitID string) error
}

// Part is one shard's share of a batch: the records read after the table's
// position After, up to and including Last.
type Part struct {
	Shard string
	After string // the table's position the part starts after ("" for none)
	Last  string // the last sequence number read (rows or rejects)
	// Rows are the valid events, in order; ShardID and SequenceNumber set.
	// The step sets IngestedAt.
	Rows []schema.Row
	// Arrivals, when set, holds when each row was read (parallel to Rows);
	// the outcome returns those of the rows kept, for freshness metrics.
	Arrivals []time.Time
	// Columns, when set, holds the part's valid events instead of Rows,
	// already in the columns of a record batch (file ingest builds them
	// so: no Row per event). A part with Columns is committed alone. The
	// step drops their duplicates in place and takes the batch: after
	// Commit returns, committed or not, Columns is empty — unless Commit
	// refused the parts themselves (another part beside it, Rows too, or
	// columns of another shard).
	Columns  *schema.EventColumns
	Rejected []Rejected
}

// Outcome describes a committed batch.
type Outcome struct {
	Result
	IngestedAt time.Time      // the rows' ingested_at, also the dedup commit time
	Kept       map[string]int // rows appended, per shard
	Duplicates map[string]int // rows dropped as repeated event_ids, per shard
	Rejected   map[string]int // records sent to the dead-letter store, per shard
	Arrivals   []time.Time    // Part.Arrivals of the rows appended
	Ranges     []ShardRange   // the positions the commit moved
	// PublishErr is set when the batch committed but its dead letters
	// could not be published yet: they are safe in the pending area and
	// the maintainer's sweep publishes them.
	PublishErr error
}

// MovedError is returned when the table's position of some of the batch's
// shards is not the part's After: another writer committed them. Moved maps
// each such shard to the table's position now ("" for none). Nothing was
// appended; parts of shards not in Moved are still good and can be
// committed again unchanged. errors.Is(err, ErrPositionMoved) holds.
type MovedError struct {
	Moved map[string]string
	Err   error // the table's refusal
}

func (e *MovedError) Error() string {
	shards := slices.Sorted(maps.Keys(e.Moved))
	return fmt.Sprintf("shards %s moved by another writer: %v", strings.Join(shards, ", "), e.Err)
}

// Unwrap returns ErrPositionMoved and the table's error.
func (e *MovedError) Unwrap() []error { return []error{ErrPositionMoved, e.Err} }

// Config wires a Step.
type Config struct {
	Table       Table
	DeadLetters DeadLetters   // required only if a part has rejects
	Dedup       *dedup.Filter // nil: no de-duplication
	// Now is the clock for ingested_at; default time.Now.
	Now func() time.Time
	// Mem allocates the Arrow record batch; default memory.DefaultAllocator.
	Mem memory.Allocator
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Table == nil {
		return errors.New("commit step: no table")
	}
	return nil
}

// Step commits batches. It holds no state between calls; one goroutine
// calls Commit at a time per shard (dedup batches of a shard must commit in
// the order they began).
type Step struct {
	cfg Config
	// builders holds record builders between commits: a builder keeps
	// what it learned of the last batch (its size, the capacity of its
	// dictionary maps), so the next batch's columns are sized at once.
	// The batches themselves never share memory (each gets new buffers);
	// a builder goes back only once its batch was taken.
	builders sync.Pool
}

// NewStep checks cfg and returns a Step.
func NewStep(cfg Config) (*Step, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Mem == nil {
		cfg.Mem = memory.DefaultAllocator
	}
	s := &Step{cfg: cfg}
	s.builders.New = func() any { return schema.NewDictionaryRecordBuilder(cfg.Mem) }
	return s, nil
}

// Commit de-duplicates, dead-letters and commits parts in one table commit
// (see the package documentation for the order). Parts must have distinct
// shards and a Last. Errors: a *MovedError (ErrPositionMoved), or the
// dead-letter store's or the table's error; in every error case no dedup
// window was changed and nothing was appended that a retry could duplicate.
func (s *Step) Commit(ctx context.Context, parts []Part) (Outcome, error) {
	out := Outcome{
		IngestedAt: s.cfg.Now().UTC(),
		Kept:       make(map[string]int, len(parts)),
		Duplicates: map[string]int{},
		Rejected:   map[string]int{},
		Ranges:     make([]ShardRange, 0, len(parts)),
	}
	windows := make([]*dedup.Batch, 0, len(parts))
	committed := false
	defer func() {
		if !committed {
			for _, w := range windows {
				w.Abort()
			}
		}
	}()

	if err := checkColumnParts(parts); err != nil {
		return Outcome{}, err
	}
	commitID := uuid.NewString()
	var staged time.Time // when the first dead letter was staged; zero: none
	// Dictionary columns: the table's data file writer hands them to the
	// Parquet encoder without hashing every value again.
	rb := s.builders.Get().(*schema.RecordBuilder)
	taken := false
	defer func() {
		if taken {
			s.builders.Put(rb)
		} else { // rows of a failed attempt: never reuse them
			rb.Release()
		}
	}()
	for i := range parts {
		rb.Grow(parts[i].Rows)
	}
	for i := range parts {
		p := &parts[i]
		var w *dedup.Batch
		if s.cfg.Dedup != nil {
			w = s.cfg.Dedup.Begin(p.Shard)
			windows = append(windows, w)
			// Room for the part's ids at once, not by doubling as they come.
			w.Reserve(max(len(p.Rows), p.Columns.Len()))
		}
		if p.Columns != nil {
			keepColumns(p, w, &out)
		} else {
			s.keep(p, w, rb, &out)
		}
		if err := s.deadLetter(ctx, commitID, p, &staged); err != nil {
			if p.Columns != nil {
				p.Columns.NewRecordBatch(out.IngestedAt).Release()
			}
			return Outcome{}, err
		}
		out.Rejected[p.Shard] = len(p.Rejected)
		out.Ranges = append(out.Ranges, ShardRange{Shard: p.Shard, After: p.After, Last: p.Last})
	}

	var rec arrow.RecordBatch
	if len(parts) == 1 && parts[0].Columns != nil {
		rec = parts[0].Columns.NewRecordBatch(out.IngestedAt)
	} else {
		rec = rb.NewRecordBatch()
	}
	taken = true // (a columns part leaves rb unused)
	defer rec.Release()
	res, err := s.cfg.Table.Commit(ctx, Batch{Records: rec, Ranges: out.Ranges, CommitID: commitID, Staged: staged})
	if errors.Is(err, ErrPositionMoved) {
		if !staged.IsZero() && !errors.Is(err, ErrOutcomeUnknown) {
			// Certainly not landed: the staged objects are ours alone (their
			// names hold our commit id). Left behind, the sweep removes them.
			// When an attempt may have landed, the sweep decides.
			_ = s.cfg.DeadLetters.Discard(ctx, commitID)
		}
		return Outcome{}, s.moved(ctx, out.Ranges, err)
	}
	if err != nil {
		return Outcome{}, err
	}
	committed = true
	out.Result = res
	if !staged.IsZero() {
		if _, perr := s.cfg.DeadLetters.Publish(ctx, commitID); perr != nil {
			out.PublishErr = fmt.Errorf("publish dead letters of commit %s: %w", commitID, perr)
		}
	}
	var werr error
	for _, w := range windows {
		// The rows are in the table: a window that cannot take them only
		// lets a later copy through, it loses nothing.
		werr = errors.Join(werr, w.Commit(out.IngestedAt))
	}
	if werr != nil {
		return out, &WindowError{Err: werr}
	}
	return out, nil
}

// WindowError is returned with a committed Outcome when a dedup window
// refused the batch's ids (a caller bug: batches out of order). The rows
// are in the table; only de-duplication of later copies is affected.
type WindowError struct{ Err error }

func (e *WindowError) Error() string {
	return "batch committed, but the dedup window refused it: " + e.Err.Error()
}

// Unwrap returns the window's error.
func (e *WindowError) Unwrap() error { return e.Err }

// keepGroup is how many ids checkIDs hands the dedup window at a time.
const keepGroup = 64

// keep appends p's rows that are not duplicates to rb (checkIDs: the
// first copy of a repeated id is the one kept).
func (s *Step) keep(p *Part, w *dedup.Batch, rb *schema.RecordBuilder, out *Outcome) {
	kept := 0
	checkIDs(w, len(p.Rows), func(i int) string { return p.Rows[i].EventID }, func(start int, dup []bool) {
		for i, d := range dup {
			if d {
				out.Duplicates[p.Shard]++
				continue
			}
			r := &p.Rows[start+i]
			r.IngestedAt = out.IngestedAt
			rb.Append(r)
			kept++
			if p.Arrivals != nil {
				out.Arrivals = append(out.Arrivals, p.Arrivals[start+i])
			}
		}
	})
	out.Kept[p.Shard] = kept
}

// checkIDs checks the event_ids id(0), …, id(n-1) against w keepGroup at
// a time (dedup.Batch.CheckAll: the window's cache misses overlap), in
// row order, so the first copy of a repeated id is the one kept; it calls
// group with each group's first row and duplicate flags (all false when
// w is nil: no de-duplication).
func checkIDs(w *dedup.Batch, n int, id func(int) string, group func(start int, dup []bool)) {
	var (
		ids  [keepGroup]string
		dups [keepGroup]bool
	)
	for start := 0; start < n; start += keepGroup {
		m := min(keepGroup, n-start)
		dup := dups[:m]
		if w != nil {
			for i := range m {
				ids[i] = id(start + i)
			}
			w.CheckAll(ids[:m], dup)
		}
		group(start, dup)
	}
}

// checkColumnParts reports a part with Columns committed beside another
// part, or whose Columns hold another shard's rows.
func checkColumnParts(parts []Part) error {
	for _, p := range parts {
		switch {
		case p.Columns == nil:
		case len(parts) > 1:
			return fmt.Errorf("commit step: the part of %s has columns and is not committed alone (%d parts)", p.Shard, len(parts))
		case len(p.Rows) > 0:
			return fmt.Errorf("commit step: the part of %s has both rows and columns", p.Shard)
		case p.Columns.Shard() != p.Shard:
			return fmt.Errorf("commit step: the part of %s has columns of shard %s", p.Shard, p.Columns.Shard())
		}
	}
	return nil
}

// keepColumns is keep for a part whose events are in Columns: the
// duplicates checkIDs finds are dropped from the columns.
func keepColumns(p *Part, w *dedup.Batch, out *Outcome) {
	cols := p.Columns
	n := cols.Len()
	var drop []bool // made at the first duplicate
	if w != nil {
		checkIDs(w, n, cols.EventID, func(start int, dup []bool) {
			for i, d := range dup {
				if d {
					if drop == nil {
						drop = make([]bool, n)
					}
					drop[start+i] = true
				}
			}
		})
	}
	if drop != nil {
		out.Duplicates[p.Shard] += cols.Drop(drop)
	}
	out.Kept[p.Shard] = cols.Len()
}

// deadLetter stages p's rejects under the attempt's commitID before the
// commit (once the position moves past them they are never read again)
// and sets *staged to when the first object was staged.
func (s *Step) deadLetter(ctx context.Context, commitID string, p *Part, staged *time.Time) error {
	if len(p.Rejected) == 0 {
		return nil
	}
	if s.cfg.DeadLetters == nil {
		return fmt.Errorf("shard %s has %d rejected records and no dead-letter store", p.Shard, len(p.Rejected))
	}
	if staged.IsZero() {
		*staged = time.Now()
	}
	first, last := p.Rejected[0].Position(), p.Rejected[len(p.Rejected)-1].Position()
	if _, err := s.cfg.DeadLetters.Stage(ctx, commitID, p.Shard, first, last, p.Rejected); err != nil {
		return fmt.Errorf("write dead letters of %s (%s-%s): %w", p.Shard, first, last, err)
	}
	return nil
}

// moved finds which shards' positions moved after the table refused the
// batch.
func (s *Step) moved(ctx context.Context, ranges []ShardRange, refusal error) error {
	pos, err := s.cfg.Table.Positions(ctx)
	if err != nil {
		return fmt.Errorf("reload positions after a moved position (%w): %w", refusal, err)
	}
	me := &MovedError{Moved: map[string]string{}, Err: refusal}
	for _, r := range ranges {
		if cur := pos[r.Shard]; CompareSeq(cur, r.After) != 0 {
			me.Moved[r.Shard] = cur
		}
	}
	if len(me.Moved) == 0 {
		// The position moved back between the refusal and the reload: not
		// possible for a table that only moves forward; treat every shard
		// as moved so its reader re-reads from the table.
		for _, r := range ranges {
			me.Moved[r.Shard] = pos[r.Shard]
		}
	}
	return me
}
