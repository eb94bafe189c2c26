package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/schema"
)

// Sink is where batches are committed: the Iceberg table (*iceberg.Sink).
type Sink interface {
	// Commit appends the batch's rows and moves each range's shard position
	// in one table commit. iceberg.ErrPositionMoved means another writer
	// moved a position first and nothing was written; any other error
	// leaves nothing written that a later Commit could duplicate (the sink
	// checks unknown outcomes itself).
	Commit(ctx context.Context, b iceberg.Batch) (iceberg.CommitResult, error)
	// Positions returns each shard's last committed sequence number.
	Positions(ctx context.Context) (map[string]string, error)
	// RecentEventIDs returns the event ids committed for shard since a time,
	// to restore the dedup window.
	RecentEventIDs(ctx context.Context, shard string, since time.Time) ([]iceberg.IDAt, error)
}

// DeadLetters stores rejected records (*iceberg.DeadLetter).
type DeadLetters interface {
	Write(ctx context.Context, shard, firstSeq, lastSeq string, recs []iceberg.Rejected) (string, error)
}

// Hooks let the pipeline report progress to the lease owner. Both are
// called from the pipeline goroutine after a commit.
type Hooks struct {
	// Checkpoint records a shard's committed position in the lease table
	// (for visibility; the table is the truth).
	Checkpoint func(ctx context.Context, shard, seq string)
	// ShardEnded says a closed shard was read to its end and every record
	// of it is committed: its lease can be marked SHARD_END so its children
	// become eligible.
	ShardEnded func(ctx context.Context, shard string)
	// ShardFailed says a shard's reader stopped on an error it cannot retry
	// (after the SDK's and its own retries). The shard was removed and its
	// uncommitted rows dropped; give its lease back so that a worker takes
	// it again and reads from the table's position.
	ShardFailed func(ctx context.Context, shard string)
}

// PipelineConfig configures micro-batching.
type PipelineConfig struct {
	Stream        string
	FlushInterval time.Duration // flush at least this often (default 1 s)
	FlushRows     int           // flush when this many rows are pending (default 50,000)
	FlushBytes    int           // flush when this many raw bytes are pending (default 64 MiB)
	Initial       InitialPosition
	IdlePoll      time.Duration // wait between empty GetRecords calls (default 1 s)
	DedupWindow   time.Duration // how far back the dedup window is restored from the table
	// ChunkBuffer is how many GetRecords results may wait for the batcher
	// (default 64). Readers block when it is full.
	ChunkBuffer int
}

func (c *PipelineConfig) defaults() {
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.FlushRows <= 0 {
		c.FlushRows = 50_000
	}
	if c.FlushBytes <= 0 {
		c.FlushBytes = 64 << 20
	}
	if c.IdlePoll <= 0 {
		c.IdlePoll = time.Second
	}
	if c.ChunkBuffer <= 0 {
		c.ChunkBuffer = 64
	}
	if c.Initial.Type == "" {
		c.Initial.Type = ktypes.ShardIteratorTypeTrimHorizon
	}
}

// Pipeline reads the shards it is given, batches their records across
// shards and commits each batch to the sink in one commit. Shards are added
// (AddShard) when their lease is acquired and removed (RemoveShard) when it
// is lost. Run owns all state; the other methods talk to it over channels.
type Pipeline struct {
	cfg     PipelineConfig
	kin     kinesisAPI
	sink    Sink
	dl      DeadLetters
	dedup   *dedup.Filter
	hooks   Hooks
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	in     chan chunk
	cmds   chan pipelineCmd
	failed chan readerFailure

	// owned by Run
	shards   map[string]*shardState
	gen      uint64
	wg       sync.WaitGroup
	stopping bool
}

type readerFailure struct {
	shard string
	gen   uint64
}

type pipelineCmd struct {
	add     bool
	shard   string
	after   string
	parents []string
	done    chan struct{}
}

type shardState struct {
	id        string
	gen       uint64
	committed string // table position: the After of the next batch
	parents   []string
	cancel    context.CancelFunc
	done      chan struct{}

	rows     []schema.Row
	arrivals []time.Time
	rejected []iceberg.Rejected
	last     string // last sequence read, "" when nothing pending
	bytes    int
	end      bool
}

// NewPipeline returns a pipeline; Run starts it. dd may be nil (no
// de-duplication), dl may be nil only if no record is ever rejected.
func NewPipeline(cfg PipelineConfig, kin kinesisAPI, sink Sink, dl DeadLetters, dd *dedup.Filter, hooks Hooks, log *slog.Logger, m *Metrics) *Pipeline {
	cfg.defaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{
		cfg: cfg, kin: kin, sink: sink, dl: dl, dedup: dd, hooks: hooks, log: log, metrics: m,
		now:    time.Now,
		in:     make(chan chunk, cfg.ChunkBuffer),
		cmds:   make(chan pipelineCmd),
		failed: make(chan readerFailure),
		shards: map[string]*shardState{},
	}
}

// AddShard starts reading shard from the table's position for it (or the
// initial position; a shard with parents always starts at its beginning).
// It restores the shard's dedup window from the table first, with the ids
// its parents and their ancestors committed. Called by the lease owner when
// it acquires the shard's lease.
func (p *Pipeline) AddShard(ctx context.Context, shard string, parents []string) error {
	pos, err := p.sink.Positions(ctx)
	if err != nil {
		return fmt.Errorf("read table position of %s: %w", shard, err)
	}
	lineage, err := p.ancestors(ctx, parents)
	if err != nil {
		return fmt.Errorf("find the ancestors of %s: %w", shard, err)
	}
	if err := p.restoreWindow(ctx, shard, lineage); err != nil {
		return err
	}
	return p.send(ctx, pipelineCmd{add: true, shard: shard, after: pos[shard], parents: lineage})
}

// ancestors returns parents and, transitively, their parents (from the
// stream's shard list). Two reshards within the dedup window can put the
// copies of an event on a shard and its grandchild; the grandchild's
// window must hold what every ancestor committed, and the table's rows
// name only the shard they were read from.
func (p *Pipeline) ancestors(ctx context.Context, parents []string) ([]string, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	shards, err := KinesisShards{Client: p.kin, Stream: p.cfg.Stream}.ListShards(ctx)
	if err != nil {
		return nil, err
	}
	up := make(map[string][]string, len(shards))
	for _, s := range shards {
		up[s.ID] = s.Parents
	}
	var out []string
	seen := map[string]bool{}
	for todo := slices.Clone(parents); len(todo) > 0; {
		id := todo[0]
		todo = todo[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
		todo = append(todo, up[id]...)
	}
	return out, nil
}

// RemoveShard stops reading shard and drops its uncommitted rows without
// committing them (the lease was lost). It returns once the shard's reader
// has exited.
func (p *Pipeline) RemoveShard(ctx context.Context, shard string) error {
	return p.send(ctx, pipelineCmd{shard: shard})
}

func (p *Pipeline) send(ctx context.Context, c pipelineCmd) error {
	c.done = make(chan struct{})
	select {
	case p.cmds <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pipeline) restoreWindow(ctx context.Context, shard string, parents []string) error {
	if p.dedup == nil {
		return nil
	}
	since := p.now().Add(-p.cfg.DedupWindow)
	start := p.now()
	n := 0
	for _, s := range append([]string{shard}, parents...) {
		ids, err := p.sink.RecentEventIDs(ctx, s, since)
		if err != nil {
			return fmt.Errorf("restore dedup window of %s from the table: %w", shard, err)
		}
		n += len(ids)
		err = p.dedup.Seed(shard, func(yield func(string, time.Time) bool) {
			for _, x := range ids {
				if !yield(x.ID, x.At) {
					return
				}
			}
		})
		if err != nil {
			return fmt.Errorf("restore dedup window of %s: %w", shard, err)
		}
	}
	p.log.Debug("dedup window restored", "shard", shard, "ids", n, "took", p.now().Sub(start).String())
	return nil
}

// Run reads and commits until ctx ends, then stops the readers, commits
// what was read (bounded by shutdownTimeout) and returns. An error means the
// pipeline cannot go on (the caller exits; leases expire and move).
func (p *Pipeline) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	summary := time.NewTicker(time.Minute)
	defer summary.Stop()
	var failures int
	var retryAt time.Time
	for {
		in := p.in
		if p.pendingRows() >= 4*p.cfg.FlushRows || p.pendingBytes() >= 4*p.cfg.FlushBytes {
			in = nil // back-pressure: readers block until a flush succeeds
		}
		select {
		case <-ctx.Done():
			return p.shutdown(shutdownTimeout)
		case c := <-p.cmds:
			p.handle(readCtx, c)
		case f := <-p.failed:
			p.readerFailed(ctx, f)
			continue
		case c := <-in:
			p.accept(c)
			if p.pendingRows() < p.cfg.FlushRows && p.pendingBytes() < p.cfg.FlushBytes {
				continue
			}
		case <-tick.C:
		case <-summary.C:
			p.metrics.logSummary(p.log, p.now())
			if p.dedup != nil {
				// Commit expires only its own shard; idle shards shrink here.
				p.dedup.Expire(p.now())
			}
			continue
		}
		if p.now().Before(retryAt) {
			continue
		}
		if err := p.flush(ctx, readCtx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			failures++
			retryAt = p.now().Add(backoff(failures))
			p.metrics.flushFailed()
			p.log.Warn("flush failed; will retry", "err", err.Error(), "attempt", failures)
			continue
		}
		failures = 0
	}
}

func (p *Pipeline) handle(ctx context.Context, c pipelineCmd) {
	defer close(c.done)
	if !c.add {
		if s := p.shards[c.shard]; s != nil {
			p.removeShard(s)
			p.log.Info("shard removed; uncommitted rows dropped", "shard", c.shard)
		}
		p.metrics.reading(len(p.shards))
		return
	}
	if old := p.shards[c.shard]; old != nil {
		p.stopShard(old)
	}
	s := &shardState{id: c.shard, committed: c.after, parents: c.parents}
	p.shards[c.shard] = s
	p.startReader(ctx, s)
	p.metrics.reading(len(p.shards))
	p.log.Info("shard added", "shard", c.shard, "after", c.after)
}

func (p *Pipeline) startReader(ctx context.Context, s *shardState) {
	p.gen++
	s.gen = p.gen
	initial := p.cfg.Initial
	if len(s.parents) > 0 {
		initial = InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}
	}
	r := &shardReader{
		kin: p.kin, stream: p.cfg.Stream, shard: s.id, gen: s.gen, after: s.committed, initial: initial,
		out: p.in, log: p.log, now: p.now, metrics: p.metrics, idlePoll: p.cfg.IdlePoll,
	}
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.done = make(chan struct{})
	done := s.done
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		if err := r.run(rctx); err != nil && rctx.Err() == nil {
			p.log.Error("shard reader stopped; giving the shard up", "shard", r.shard, "err", err.Error())
			select {
			case p.failed <- readerFailure{shard: r.shard, gen: r.gen}:
			case <-rctx.Done():
			}
		}
	}()
}

// stopShard stops s's reader, waits for it and drops what it had pending.
func (p *Pipeline) stopShard(s *shardState) {
	s.cancel()
	for {
		select {
		case <-s.done:
			s.rows, s.arrivals, s.rejected, s.last, s.bytes, s.end = nil, nil, nil, "", 0, false
			return
		case c := <-p.in:
			// Unblock a reader stuck sending. Its own chunks are stale, but
			// other shards' are not: dropping one would let that shard's
			// position move past records that were never committed.
			if c.shard != s.id {
				p.accept(c)
			}
		}
	}
}

func (p *Pipeline) accept(c chunk) {
	s := p.shards[c.shard]
	if s == nil || s.gen != c.gen {
		return // from a reader that was stopped
	}
	p.metrics.behind(c.shard, c.behindMS)
	s.rows = append(s.rows, c.rows...)
	s.arrivals = append(s.arrivals, c.arrivals...)
	s.rejected = append(s.rejected, c.rejected...)
	if c.last != "" {
		s.last = c.last
	}
	s.bytes += c.bytes
	s.end = s.end || c.end
}

func (p *Pipeline) pendingRows() int {
	n := 0
	for _, s := range p.shards {
		n += len(s.rows) + len(s.rejected)
	}
	return n
}

func (p *Pipeline) pendingBytes() int {
	n := 0
	for _, s := range p.shards {
		n += s.bytes
	}
	return n
}

// flush commits everything pending in one Iceberg commit.
func (p *Pipeline) flush(ctx, readCtx context.Context) error {
	start := p.now()
	var (
		ranges   []iceberg.ShardRange
		batches  []*dedup.Batch
		kept     []*schema.Row
		arrived  []time.Time
		ended    []*shardState
		bytes    int
		dups     int
		perShard = map[string]int{}
		dupShard = map[string]int{}
	)
	abort := func() {
		for _, b := range batches {
			b.Abort()
		}
	}
	ingested := p.now().UTC()
	for _, s := range p.shards {
		if s.last == "" {
			if s.end {
				ended = append(ended, s) // nothing more after the committed position
			}
			continue
		}
		var db *dedup.Batch
		if p.dedup != nil {
			db = p.dedup.Begin(s.id)
			batches = append(batches, db)
		}
		for i := range s.rows {
			if db != nil && db.Check(s.rows[i].EventID) {
				dups++
				dupShard[s.id]++
				continue
			}
			s.rows[i].IngestedAt = ingested
			perShard[s.id]++
			kept = append(kept, &s.rows[i])
			arrived = append(arrived, s.arrivals[i])
		}
		if len(s.rejected) > 0 {
			if p.dl == nil {
				abort()
				return fmt.Errorf("shard %s has %d rejected records and no dead-letter store", s.id, len(s.rejected))
			}
			if _, err := p.dl.Write(ctx, s.id, s.rejected[0].Sequence, s.rejected[len(s.rejected)-1].Sequence, s.rejected); err != nil {
				abort()
				return fmt.Errorf("write dead letters of %s: %w", s.id, err)
			}
		}
		ranges = append(ranges, iceberg.ShardRange{Shard: s.id, After: s.committed, Last: s.last})
		bytes += s.bytes
		if s.end {
			ended = append(ended, s)
		}
	}
	if len(ranges) > 0 {
		rb := schema.NewRecordBuilder(nil)
		for _, r := range kept {
			rb.Append(r)
		}
		rec := rb.NewRecordBatch()
		rb.Release()
		res, err := p.sink.Commit(ctx, iceberg.Batch{Records: rec, Ranges: ranges})
		rec.Release()
		if errors.Is(err, iceberg.ErrPositionMoved) {
			abort()
			p.metrics.dropped()
			p.log.Warn("batch dropped: a shard position moved under us; re-reading from the table's position", "err", err.Error())
			return p.rereadMoved(ctx, readCtx, ranges)
		}
		if err != nil {
			abort()
			return err
		}
		committedAt := p.now()
		for _, b := range batches {
			if err := b.Commit(ingested); err != nil {
				p.log.Error("dedup window commit failed", "err", err.Error())
			}
		}
		p.metrics.committed(perShard, len(kept), bytes, committedAt, arrived, committedAt.Sub(start))
		p.metrics.duplicated(dupShard)
		p.log.Debug("batch committed", "rows", len(kept), "duplicates", dups, "shards", len(ranges),
			"snapshot", res.SnapshotID, "retries", res.Retries, "took", committedAt.Sub(start).String())
		for _, r := range ranges {
			s := p.shards[r.Shard]
			s.committed = r.Last
			s.rows, s.arrivals, s.rejected, s.last, s.bytes = s.rows[:0], s.arrivals[:0], nil, "", 0
			if p.hooks.Checkpoint != nil {
				p.hooks.Checkpoint(ctx, s.id, s.committed)
			}
		}
	}
	for _, s := range ended {
		p.log.Info("shard finished and committed", "shard", s.id, "last", s.committed)
		<-s.done
		delete(p.shards, s.id)
		p.metrics.forget(s.id)
		if p.hooks.ShardEnded != nil {
			p.hooks.ShardEnded(ctx, s.id)
		}
	}
	p.metrics.reading(len(p.shards))
	return nil
}

// errRetryFlush means a refused batch's moved shards were dropped and its
// other shards are still pending: flush again.
var errRetryFlush = errors.New("a shard of the batch was moved by another writer; flushing the other shards again")

// rereadMoved handles a batch refused because another writer moved the
// table position of some of its shards: those shards drop what they read
// and re-read from the table's position (not when stopping); the other
// shards keep their pending records for the next flush, so a shutdown
// still commits what they read.
func (p *Pipeline) rereadMoved(ctx, readCtx context.Context, ranges []iceberg.ShardRange) error {
	pos, err := p.sink.Positions(ctx)
	if err != nil {
		return fmt.Errorf("reload positions after a moved position: %w", err)
	}
	pending := false
	for _, r := range ranges {
		s := p.shards[r.Shard]
		if s == nil {
			continue
		}
		if pos[s.id] == r.After {
			pending = true
			continue
		}
		p.stopShard(s)
		s.committed = pos[s.id]
		if p.stopping {
			continue
		}
		if p.dedup != nil {
			// The window may hold ids another writer committed; rebuild it.
			p.dedup.Drop(s.id)
			if err := p.restoreWindow(ctx, s.id, s.parents); err != nil {
				return err
			}
		}
		p.startReader(readCtx, s)
	}
	if pending && p.stopping {
		return errRetryFlush
	}
	return nil
}

// shutdown stops every reader, takes what they had already sent, commits it
// within timeout and returns.
func (p *Pipeline) shutdown(timeout time.Duration) error {
	p.stopping = true
	for _, s := range p.shards {
		s.cancel()
	}
	// Readers blocked on a full channel exit on cancel; keep taking chunks
	// already read until all have exited.
	all := make(chan struct{})
	go func() { p.wg.Wait(); close(all) }()
	for waiting := true; waiting; {
		select {
		case c := <-p.in:
			p.accept(c)
		case <-all:
			waiting = false
		}
	}
	for drained := false; !drained; {
		select {
		case c := <-p.in:
			p.accept(c)
		default:
			drained = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		if err = p.flush(ctx, ctx); err == nil || ctx.Err() != nil {
			break
		}
		p.log.Warn("final flush failed; retrying", "err", err.Error())
		if sleep(ctx, backoff(attempt)) != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("final flush within %s: %w", timeout, err)
	}
	p.log.Info("pipeline stopped; everything read was committed")
	return nil
}

// readerFailed removes a shard whose reader stopped on an error it could not
// retry, dropping its uncommitted rows, and reports it so its lease is given
// back; otherwise the lease would stay held and renewed while nothing reads
// the shard.
func (p *Pipeline) readerFailed(ctx context.Context, f readerFailure) {
	s := p.shards[f.shard]
	if s == nil || s.gen != f.gen {
		return // already stopped or restarted
	}
	p.removeShard(s)
	p.metrics.readerFailed()
	p.metrics.reading(len(p.shards))
	if p.hooks.ShardFailed != nil {
		p.hooks.ShardFailed(ctx, s.id)
	}
}

// removeShard stops s's reader, drops its uncommitted rows and its dedup
// window, and forgets it.
func (p *Pipeline) removeShard(s *shardState) {
	p.stopShard(s)
	delete(p.shards, s.id)
	if p.dedup != nil {
		p.dedup.Drop(s.id)
	}
	p.metrics.forget(s.id)
}
