package replay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/schema"
)

// ErrUnknownShard means Config.Shard names a shard with no dead letters.
var ErrUnknownShard = errors.New("no dead letters for this shard")

// Store is the dead-letter store replayed (*iceberg.DeadLetter).
type Store interface {
	Objects(ctx context.Context) ([]iceberg.DeadLetterObject, error)
	Replace(ctx context.Context, name string, recs []iceberg.DeadLetterRecord) error
}

// Config says what to replay and where to.
type Config struct {
	Table commit.Table // *iceberg.Sink
	Store Store
	// Shard, when set, limits the replay to the dead letters of that shard
	// (the stream shard id, or a file ingest source id).
	Shard string
	// Since, when set, limits the replay to objects holding a record that
	// arrived at or after it.
	Since time.Time
	// Now is the clock the decoder validates event times against; default
	// time.Now.
	Now func() time.Time
}

// Validate reports a Config that cannot work.
func (c Config) Validate() error {
	if c.Table == nil || c.Store == nil {
		return errors.New("replay: a table and a dead-letter store are required")
	}
	return nil
}

// Summary is what a run did.
type Summary struct {
	Objects       int // objects looked at (after --shard and --since)
	Replayed      int // records committed to the table by this run
	StillRejected int // records left in the store
	// Reasons counts the still rejected records by reason (a record with
	// two reasons counts under both).
	Reasons map[string]int
	// Resumed counts objects an earlier run had committed but not yet
	// rewritten.
	Resumed int
}

// Run replays the selected dead letters (see the package documentation).
// It stops at the first error; what it committed until then stays
// committed and a later run continues from there.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	sum := Summary{Reasons: map[string]int{}}
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	objs, err := cfg.Store.Objects(ctx)
	if err != nil {
		return sum, fmt.Errorf("read dead letters: %w", err)
	}
	objs, err = selectObjects(objs, cfg.Shard, cfg.Since)
	if err != nil {
		return sum, err
	}
	pos, err := cfg.Table.Positions(ctx)
	if err != nil {
		return sum, err
	}
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		return sum, err
	}
	step, err := commit.NewStep(commit.Config{Table: cfg.Table, Dedup: dd, Now: cfg.Now})
	if err != nil {
		return sum, err
	}
	r := &runner{cfg: cfg, step: step, pos: pos, sum: &sum}
	for _, o := range objs {
		if err := r.object(ctx, o); err != nil {
			return sum, fmt.Errorf("replay %s: %w", o.Location, err)
		}
	}
	return sum, nil
}

// selectObjects applies --shard and --since.
func selectObjects(objs []iceberg.DeadLetterObject, shard string, since time.Time) ([]iceberg.DeadLetterObject, error) {
	var out []iceberg.DeadLetterObject
	shards := map[string]bool{}
	for _, o := range objs {
		shards[o.Shard] = true
		if shard != "" && o.Shard != shard {
			continue
		}
		if !since.IsZero() && !slices.ContainsFunc(o.Records, func(r iceberg.DeadLetterRecord) bool { return !r.ArrivedAt.Before(since) }) {
			continue
		}
		out = append(out, o)
	}
	if shard != "" && !shards[shard] {
		known := make([]string, 0, len(shards))
		for s := range shards {
			known = append(known, s)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("%w: %s (shards with dead letters: %v)", ErrUnknownShard, shard, known)
	}
	return out, nil
}

type runner struct {
	cfg  Config
	step *commit.Step
	pos  map[string]string
	sum  *Summary
}

// object replays one dead-letter object: commit what now passes with the
// object's key moved to its last line, then rewrite it with what fails.
func (r *runner) object(ctx context.Context, o iceberg.DeadLetterObject) error {
	r.sum.Objects++
	sum := sha256.Sum256(o.Data)
	key := iceberg.ReplaySourcePrefix + hex.EncodeToString(sum[:16])
	last := strconv.Itoa(len(o.Records))
	rows, still := r.decode(o.Records)
	done := r.pos[key] == last
	if len(rows) > 0 && !done {
		part := commit.Part{Shard: key, After: r.pos[key], Last: last, Rows: rows}
		out, err := r.step.Commit(ctx, []commit.Part{part})
		var we *commit.WindowError
		if err != nil && !errors.As(err, &we) {
			return err
		}
		r.sum.Replayed += out.Kept[key]
	} else if len(rows) > 0 {
		r.sum.Resumed++
	}
	r.sum.StillRejected += len(still)
	for _, rec := range still {
		for _, reason := range rec.Reasons {
			r.sum.Reasons[reason]++
		}
	}
	data, err := iceberg.EncodeDeadLetters(still)
	if err != nil {
		return err
	}
	if len(rows) == 0 && bytes.Equal(data, o.Data) {
		return nil // nothing passes and the reasons are the same: leave it
	}
	return r.cfg.Store.Replace(ctx, o.Name, still)
}

// decode runs every record through the current decoder: the rows that
// pass (original lineage), and the records that fail with their reasons.
func (r *runner) decode(recs []iceberg.DeadLetterRecord) ([]schema.Row, []iceberg.DeadLetterRecord) {
	var rows []schema.Row
	var still []iceberg.DeadLetterRecord
	now := r.cfg.Now().UTC()
	for _, rec := range recs {
		raw, err := rec.RawBytes()
		var ev schema.Event
		if err == nil {
			ev, err = schema.Decode(raw, now)
		}
		if err != nil {
			rec.Reasons = schema.Reasons(err)
			still = append(still, rec)
			continue
		}
		rows = append(rows, schema.Row{Event: ev, ShardID: rec.Shard, SequenceNumber: rec.Sequence, SubSequence: subSequence(rec)})
	}
	return rows, still
}

// subSequence is rec's sub-sequence number for its row: -1 (NULL) for a
// plain record.
func subSequence(rec iceberg.DeadLetterRecord) int64 {
	if rec.SubSequence == nil {
		return -1
	}
	return *rec.SubSequence
}
