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

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// Sink is the Iceberg table the pipeline commits to (*iceberg.Sink): the
// commit step's table, plus the event ids a shard committed recently, to
// rebuild its dedup window.
type Sink interface {
	commit.Table
	// RecentEventIDs calls add for each event id committed for shards (a
	// shard and its ancestors, in one scan) since a time; id is valid only
	// during the call.
	RecentEventIDs(ctx context.Context, shards []string, since time.Time, add func(shard, id string, at time.Time)) error
}

// Hooks let the pipeline report progress to the lease owner. Both are
// called from the pipeline goroutine after a commit.
type Hooks struct {
	// Checkpoint records a shard's committed position in the lease table
	// (for visibility; the table is the truth), in the KCL's form: after
	// a whole KPL aggregate, "SEQ:SUB" with SUB its last user record.
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

// PipelineConfig configures micro-batching. Start from
// DefaultPipelineConfig; the consumer's flags fill it.
type PipelineConfig struct {
	Stream        string
	FlushInterval time.Duration // flush at least this often (--flush-interval)
	FlushRows     int           // flush when this many rows are pending (--flush-rows)
	FlushBytes    int           // flush when this many raw bytes are pending (--flush-bytes)
	Initial       InitialPosition
	IdlePoll      time.Duration // wait between empty GetRecords calls (--idle-poll)
	DedupWindow   time.Duration // how far back the dedup window is restored from the table
	// ChunkBuffer is how many GetRecords results may wait for the batcher.
	// Readers block when it is full.
	ChunkBuffer int
	// CommitTimeout (no flag; default 30s) bounds one flush's commit: dead
	// letters, data files and the table commit with the sink's own
	// retries. A hung catalog or object store call then fails the flush,
	// which is retried, instead of holding every shard's commits for good.
	CommitTimeout time.Duration
	// ReadTimeout (no flag; default 10s) bounds one Kinesis call of a shard
	// reader (GetShardIterator, GetRecords). A call whose connection went
	// silent is abandoned and retried instead of keeping the shard unread
	// while its reader looks alive.
	ReadTimeout time.Duration
	// ReadMode (--read-mode) is ReadPolling (GetRecords; "" means the
	// same) or ReadEFO (enhanced fan-out with SubscribeToShard, efo.go).
	ReadMode string
	// ConsumerName names the stream consumer of read mode efo (the
	// consumer's --app-name): every worker of the application shares it.
	ConsumerName string
}

// DefaultPipelineConfig returns the defaults of every setting but Stream.
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{
		FlushInterval: time.Second,
		FlushRows:     50_000,
		FlushBytes:    64 << 20,
		Initial:       InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon},
		IdlePoll:      time.Second,
		DedupWindow:   dedup.DefaultWindow,
		ChunkBuffer:   64,
		CommitTimeout: 30 * time.Second,
		ReadTimeout:   10 * time.Second,
	}
}

// Validate rejects settings that cannot work, naming the flag.
func (c PipelineConfig) Validate() error {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("--stream is required (or PAYSTREAM_STREAM)"))
	}
	if c.FlushInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--flush-interval %s: must be at least 10ms", c.FlushInterval))
	}
	if c.FlushRows < 1 {
		errs = append(errs, fmt.Errorf("--flush-rows %d: must be at least 1", c.FlushRows))
	}
	if c.FlushBytes < 1024 {
		errs = append(errs, fmt.Errorf("--flush-bytes %d: must be at least 1024", c.FlushBytes))
	}
	if c.IdlePoll < minGetRecordsInterval {
		errs = append(errs, fmt.Errorf("--idle-poll %s: must be at least %s (Kinesis allows 5 reads per second per shard)", c.IdlePoll, minGetRecordsInterval))
	}
	if c.Initial.Type == "" {
		errs = append(errs, errors.New("--initial-position is not set"))
	}
	if c.DedupWindow < 0 {
		errs = append(errs, fmt.Errorf("--dedup-window %s: must not be negative", c.DedupWindow))
	}
	if c.CommitTimeout < time.Second {
		errs = append(errs, fmt.Errorf("pipeline commit timeout %s: must be at least 1s", c.CommitTimeout))
	}
	if c.ReadTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("pipeline read timeout %s: must be at least 100ms", c.ReadTimeout))
	}
	switch c.ReadMode {
	case "", ReadPolling:
	case ReadEFO:
		if !consumerNameRE.MatchString(c.ConsumerName) {
			errs = append(errs, fmt.Errorf("--app-name %q: with --read-mode efo it names the Kinesis stream consumer, which takes 1 to 128 of a-z, A-Z, 0-9, _ . -", c.ConsumerName))
		}
	default:
		errs = append(errs, fmt.Errorf("--read-mode %q: use %s (GetRecords, the default) or %s (enhanced fan-out: records pushed with SubscribeToShard)", c.ReadMode, ReadPolling, ReadEFO))
	}
	if c.ChunkBuffer < 1 {
		errs = append(errs, fmt.Errorf("pipeline chunk buffer %d: must be at least 1", c.ChunkBuffer))
	}
	return errors.Join(errs...)
}

// PipelineDeps are the parts a Pipeline talks to.
type PipelineDeps struct {
	Kinesis kinesisAPI
	Sink    Sink
	// DeadLetters may be nil only if no record is ever rejected.
	DeadLetters commit.DeadLetters
	Dedup       *dedup.Filter // nil: no de-duplication
	Hooks       Hooks
	Logger      *slog.Logger // nil discards
	Metrics     *Metrics     // nil records nothing
	// FlushLead, when set, aligns the timed flushes to the wall clock:
	// each starts FlushLead() (asked before every flush; below
	// FlushInterval) before a multiple of FlushInterval (slot.go). Commit
	// mode single sets it so that a worker's batch is staged just before
	// the committer's round, which starts on those multiples.
	FlushLead func() time.Duration
}

// Pipeline reads the shards it is given, batches their records across
// shards and commits each batch through the commit step in one table
// commit. Shards are added (AddShard) when their lease is acquired and
// removed (RemoveShard) when it is lost. Run owns all state; the other
// methods talk to it over channels. DESIGN.md beside this file draws its
// goroutines, channels and the shard state machine.
type Pipeline struct {
	cfg       PipelineConfig
	kin       kinesisAPI
	sink      Sink
	step      *commit.Step
	dedup     *dedup.Filter
	hooks     Hooks
	log       *slog.Logger
	metrics   *Metrics
	now       func() time.Time
	flushLead func() time.Duration // nil: flush on the ticker's own phase
	health    *healthBoard         // published for the worker's stall watchdog
	// efo is the Kinesis client in read mode efo (nil when polling);
	// consumerARN is its stream consumer, set by prepareReads and, once
	// readers run, under consumerMu by renewConsumer.
	efo         efoAPI
	consumerMu  sync.Mutex
	consumerARN string

	in        chan chunk
	cmds      chan pipelineCmd
	failed    chan readerFailure
	recovered chan recovery

	// owned by Run
	shards   map[string]*shardState
	gen      uint64
	wg       sync.WaitGroup
	stopping bool
}

// readerFailure says a shard's reader (generation gen) stopped on an error
// it cannot retry.
type readerFailure struct {
	shard string
	gen   uint64
}

// recovery says a fenced shard's dedup window was rebuilt (err nil) or
// could not be (err set), for generation gen.
type recovery struct {
	shard string
	gen   uint64
	err   error
}

type pipelineCmd struct {
	add     bool
	shard   string
	after   string
	parents []string
	done    chan struct{}
}

// shardState is one owned shard. A shard is reading (a reader goroutine
// sends its chunks) or recovering (its batch was fenced; a goroutine
// rebuilds its dedup window before a new reader starts). Both goroutines
// are started by spawn, which sets cancel and done.
type shardState struct {
	id         string
	gen        uint64
	committed  string // table position: the After of the next batch
	parents    []string
	recovering bool
	cancel     context.CancelFunc
	done       chan struct{}

	rows     []schema.Row
	arrivals []time.Time
	rejected []commit.Rejected
	last     string // last position read, "" when nothing pending
	// checkpoint is last as the lease checkpoint writes it (see
	// chunk.checkpoint).
	checkpoint string
	bytes      int
	end        bool
	// waitingSince: start of the first flush attempt that carried the
	// pending records and did not commit them (zero: none yet).
	waitingSince time.Time
}

// clearPending drops what s read and has not committed.
func (s *shardState) clearPending() {
	clear(s.rows)
	s.rows, s.arrivals, s.rejected, s.last, s.checkpoint, s.bytes = s.rows[:0], s.arrivals[:0], nil, "", "", 0
	s.waitingSince = time.Time{}
}

// NewPipeline checks cfg and returns a pipeline; Run starts it.
func NewPipeline(cfg PipelineConfig, d PipelineDeps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Kinesis == nil || d.Sink == nil {
		return nil, errors.New("pipeline: Kinesis client and sink are required")
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var efo efoAPI
	if cfg.ReadMode == ReadEFO {
		var ok bool
		if efo, ok = d.Kinesis.(efoAPI); !ok {
			return nil, errors.New("pipeline: --read-mode efo needs a Kinesis client that can SubscribeToShard")
		}
	}
	step, err := commit.NewStep(commit.Config{Table: d.Sink, DeadLetters: d.DeadLetters, Dedup: d.Dedup})
	if err != nil {
		return nil, err
	}
	return &Pipeline{
		cfg: cfg, kin: d.Kinesis, efo: efo, sink: d.Sink, step: step, dedup: d.Dedup, hooks: d.Hooks, log: log, metrics: d.Metrics,
		now:       time.Now,
		flushLead: d.FlushLead,
		health:    newHealthBoard(),
		in:        make(chan chunk, cfg.ChunkBuffer),
		cmds:      make(chan pipelineCmd),
		failed:    make(chan readerFailure),
		recovered: make(chan recovery),
		shards:    map[string]*shardState{},
	}, nil
}

// setInitial replaces where a shard with no table position starts. Only
// before Run: the readers Run starts read it.
func (p *Pipeline) setInitial(pos InitialPosition) { p.cfg.Initial = pos }

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

// restoreWindow seeds shard's dedup window with the ids the table holds for
// it and for its ancestors within the dedup window, in one scan whose ids
// stream into the window. It scans the table: called from the lease event
// loop and from recovery goroutines, never from Run. If the scan fails, the
// partly seeded window is dropped.
func (p *Pipeline) restoreWindow(ctx context.Context, shard string, parents []string) error {
	if p.dedup == nil {
		return nil
	}
	since := p.now().Add(-p.cfg.DedupWindow)
	start := p.now()
	n := 0
	var scanErr error
	err := p.dedup.Seed(shard, func(yield func(string, time.Time) bool) {
		scanErr = p.sink.RecentEventIDs(ctx, append([]string{shard}, parents...), since, func(_, id string, at time.Time) {
			n++
			yield(id, at)
		})
	})
	if scanErr != nil {
		p.dedup.Drop(shard)
		return fmt.Errorf("restore dedup window of %s from the table: %w", shard, scanErr)
	}
	if err != nil {
		return fmt.Errorf("restore dedup window of %s: %w", shard, err)
	}
	p.log.Debug("dedup window restored", "shard", shard, "ids", n, "took", p.now().Sub(start).String())
	return nil
}

// Run reads and commits until ctx ends, then stops the readers, commits
// what was read (bounded by shutdownTimeout) and returns. An error means the
// pipeline cannot go on (the caller exits; leases expire and move).
func (p *Pipeline) Run(ctx context.Context, shutdownTimeout time.Duration) error {
	if err := p.prepareReads(ctx); err != nil {
		return err
	}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	tick := time.NewTicker(p.cfg.FlushInterval)
	defer tick.Stop()
	if p.flushLead != nil {
		tick.Reset(untilFlush(p.now(), p.cfg.FlushInterval, p.flushLead()))
	}
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
		case r := <-p.recovered:
			p.recoveryDone(ctx, readCtx, r)
			continue
		case c := <-in:
			p.accept(c)
			if p.pendingRows() < p.cfg.FlushRows && p.pendingBytes() < p.cfg.FlushBytes {
				continue
			}
		case <-tick.C:
			if p.flushLead != nil {
				tick.Reset(untilFlush(p.now(), p.cfg.FlushInterval, p.flushLead()))
			}
			p.acceptWaiting()
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
			retryAt = p.now().Add(backoff.Delay(failures))
			p.metrics.flushFailed()
			p.log.Warn("flush failed; will retry", "err", err.Error(), "class", retry.Classify(err).String(), "attempt", failures)
			continue
		}
		failures = 0
	}
}

// acceptWaiting accepts the chunks already waiting on in (up to the
// back-pressure limit), so the flush a tick starts carries them. Without
// it, after a flush longer than the interval the waiting tick won the
// select against the waiting chunks half of the time: each flush then
// carried a chunk or two and the rest waited for later flushes, several
// intervals behind a slow commit.
func (p *Pipeline) acceptWaiting() {
	for range len(p.in) {
		if p.pendingRows() >= 4*p.cfg.FlushRows || p.pendingBytes() >= 4*p.cfg.FlushBytes {
			return
		}
		select {
		case c := <-p.in:
			p.accept(c)
		default:
			return
		}
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

// spawn runs fn for s in a goroutine of a new generation, with a context
// that stopShard cancels and a done channel it waits for.
func (p *Pipeline) spawn(ctx context.Context, s *shardState, fn func(ctx context.Context, gen uint64)) {
	p.gen++
	s.gen = p.gen
	gen := s.gen
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.done = make(chan struct{})
	done := s.done
	id := s.id
	p.health.started(id, gen)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(done)
		defer p.health.exited(id, gen)
		fn(rctx, gen)
	}()
}

func (p *Pipeline) startReader(ctx context.Context, s *shardState) {
	s.recovering = false
	initial := p.cfg.Initial
	if len(s.parents) > 0 {
		initial = InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}
	}
	p.spawn(ctx, s, func(ctx context.Context, gen uint64) {
		r := &shardReader{
			kin: p.kin, stream: p.cfg.Stream, shard: s.id, gen: gen, after: s.committed, initial: initial, maxRows: p.cfg.FlushRows,
			out: p.in, log: p.log, now: p.now, metrics: p.metrics, idlePoll: p.cfg.IdlePoll,
			callTimeout: p.cfg.ReadTimeout,
		}
		if err := p.read(ctx, r); err != nil && ctx.Err() == nil {
			p.log.Error("shard reader stopped; giving the shard up", "shard", r.shard, "err", err.Error())
			select {
			case p.failed <- readerFailure{shard: r.shard, gen: gen}:
			case <-ctx.Done():
			}
		}
	})
}

// stopShard stops s's goroutine, waits for it and drops what s had pending.
func (p *Pipeline) stopShard(s *shardState) {
	s.cancel()
	for {
		select {
		case <-s.done:
			s.clearPending()
			s.end = false
			p.health.publish(s)
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
		s.last, s.checkpoint = c.last, c.checkpoint
	}
	s.bytes += c.bytes
	if c.end && !s.end {
		s.end = true
		p.health.publish(s)
	}
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

// flush commits everything pending in one table commit, then retires the
// shards that were read to their end.
func (p *Pipeline) flush(ctx, readCtx context.Context) error {
	start := p.now()
	parts, bytes, ended := p.collect()
	if len(parts) > 0 {
		out, err := p.commit(ctx, parts, start)
		var werr *commit.WindowError
		var moved *commit.MovedError
		switch {
		case errors.As(err, &werr):
			p.log.Error("dedup window commit failed", "err", err.Error())
		case errors.As(err, &moved):
			p.metrics.dropped()
			p.log.Warn("batch dropped: a shard position moved under us; re-reading from the table's position", "err", err.Error())
			return p.recoverMoved(readCtx, parts, moved)
		case err != nil:
			return err
		}
		if out.PublishErr != nil {
			p.log.Warn("dead letters staged but not yet published; the maintainer's sweep publishes them", "err", out.PublishErr.Error())
		}
		p.committed(ctx, out, bytes, start)
	}
	for _, s := range ended {
		p.retire(ctx, s)
	}
	p.metrics.reading(len(p.shards))
	return nil
}

// commit runs the commit step on parts within CommitTimeout, publishing
// the attempt for the stall watchdog: each shard carried waits from the
// first attempt that did not commit it.
func (p *Pipeline) commit(ctx context.Context, parts []commit.Part, start time.Time) (commit.Outcome, error) {
	for _, part := range parts {
		if s := p.shards[part.Shard]; s.waitingSince.IsZero() {
			s.waitingSince = start
			p.health.publish(s)
		}
	}
	p.health.flush(start)
	defer p.health.flush(time.Time{})
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CommitTimeout)
	defer cancel()
	return p.step.Commit(cctx, parts)
}

// collect returns one commit part per shard with something pending, the
// raw bytes they hold, and the shards read to their end (whose last part,
// if any, is among parts).
func (p *Pipeline) collect() (parts []commit.Part, bytes int, ended []*shardState) {
	for _, s := range p.shards {
		if s.end {
			ended = append(ended, s)
		}
		if s.last == "" {
			continue
		}
		parts = append(parts, commit.Part{
			Shard: s.id, After: s.committed, Last: s.last,
			Rows: s.rows, Arrivals: s.arrivals, Rejected: s.rejected,
		})
		bytes += s.bytes
	}
	return parts, bytes, ended
}

// committed records a landed batch: metrics, each shard's new position and
// its lease checkpoint.
func (p *Pipeline) committed(ctx context.Context, out commit.Outcome, bytes int, start time.Time) {
	at := p.now()
	kept, dups := 0, 0
	for _, n := range out.Kept {
		kept += n
	}
	for _, n := range out.Duplicates {
		dups += n
	}
	p.metrics.committed(out.Kept, kept, bytes, at, out.Arrivals, at.Sub(start))
	p.metrics.duplicated(out.Duplicates)
	oldest := at
	for _, a := range out.Arrivals {
		if a.Before(oldest) {
			oldest = a
		}
	}
	p.log.Debug("batch committed", "rows", kept, "duplicates", dups, "shards", len(out.Ranges),
		"snapshot", out.SnapshotID, "retries", out.Retries, "took", at.Sub(start).String(),
		"oldest_s", at.Sub(oldest).Seconds())
	for _, r := range out.Ranges {
		s := p.shards[r.Shard]
		s.committed = r.Last
		cp := s.checkpoint
		if cp == "" {
			cp = s.committed
		}
		s.clearPending()
		p.health.publish(s)
		if p.hooks.Checkpoint != nil {
			p.hooks.Checkpoint(ctx, s.id, cp)
		}
	}
}

// retire forgets a shard read to its end whose records are all committed,
// and reports it so its lease is marked finished.
func (p *Pipeline) retire(ctx context.Context, s *shardState) {
	if s.last != "" {
		return // its last part was not committed
	}
	if _, _, whole, err := commit.ParsePosition(s.committed); s.committed != "" && (err != nil || !whole) {
		// A shard is finished only at a whole position: the reader's last
		// chunk ends with the shard's last record, so this is a bug.
		p.log.Error("shard read to its end but committed only part of its last aggregate; not finished", "shard", s.id, "position", s.committed)
		return
	}
	p.log.Info("shard finished and committed", "shard", s.id, "last", s.committed)
	<-s.done
	delete(p.shards, s.id)
	p.health.forget(s.id)
	p.metrics.forget(s.id)
	if p.hooks.ShardEnded != nil {
		p.hooks.ShardEnded(ctx, s.id)
	}
}

// errRetryFlush means a refused batch's moved shards were dropped and its
// other shards are still pending: flush again.
var errRetryFlush = errors.New("a shard of the batch was moved by another writer; flushing the other shards again")

// recoverMoved handles a batch refused because another writer moved the
// table position of some of its shards. Those shards drop what they read,
// take the table's position, and recover in the background: their dedup
// window is rebuilt from the table (a scan) while the other shards go on
// committing; a new reader starts when it is done (recoveryDone). Not when
// stopping: then they are only dropped. The other shards keep their pending
// records for the next flush, so a shutdown still commits what they read.
func (p *Pipeline) recoverMoved(readCtx context.Context, parts []commit.Part, moved *commit.MovedError) error {
	pending := false
	for _, part := range parts {
		s := p.shards[part.Shard]
		pos, ok := moved.Moved[part.Shard]
		if s == nil {
			continue
		}
		if !ok {
			pending = true
			continue
		}
		p.stopShard(s)
		s.committed = pos
		if p.stopping {
			continue
		}
		p.startRecovery(readCtx, s)
	}
	if pending && p.stopping {
		return errRetryFlush
	}
	return nil
}

// recoveryAttempts bounds the rebuilds of a fenced shard's dedup window
// before the shard is given up (its lease released, so that a worker takes
// it again from the table).
const recoveryAttempts = 5

// startRecovery rebuilds s's dedup window in the background: the window
// may hold ids the other writer committed, or miss some.
func (p *Pipeline) startRecovery(ctx context.Context, s *shardState) {
	s.recovering = true
	p.spawn(ctx, s, func(ctx context.Context, gen uint64) {
		var err error
		if p.dedup != nil {
			for attempt := range recoveryAttempts {
				if attempt > 0 && backoff.Wait(ctx, attempt) != nil {
					break
				}
				p.dedup.Drop(s.id)
				if err = p.restoreWindow(ctx, s.id, s.parents); err == nil || ctx.Err() != nil {
					break
				}
				p.log.Warn("dedup window of a fenced shard not rebuilt; retrying", "shard", s.id, "err", err.Error(), "attempt", attempt+1)
			}
		}
		select {
		case p.recovered <- recovery{shard: s.id, gen: gen, err: err}:
		case <-ctx.Done():
		}
	})
}

// recoveryDone starts the reader of a recovered shard, or gives the shard
// up when its window could not be rebuilt.
func (p *Pipeline) recoveryDone(ctx, readCtx context.Context, r recovery) {
	s := p.shards[r.shard]
	if s == nil || s.gen != r.gen || !s.recovering {
		return // removed or restarted meanwhile
	}
	<-s.done
	if r.err != nil {
		p.log.Error("fenced shard not recovered; giving the shard up", "shard", s.id, "err", r.err.Error())
		p.readerFailed(ctx, readerFailure{shard: s.id, gen: s.gen})
		return
	}
	p.startReader(readCtx, s)
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
		if backoff.Wait(ctx, attempt) != nil {
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
// retry (or whose recovery failed), dropping its uncommitted rows, and
// reports it so its lease is given back; otherwise the lease would stay
// held and renewed while nothing reads the shard.
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

// removeShard stops s's goroutine, drops its uncommitted rows and its dedup
// window, and forgets it.
func (p *Pipeline) removeShard(s *shardState) {
	p.stopShard(s)
	delete(p.shards, s.id)
	p.health.forget(s.id)
	if p.dedup != nil {
		p.dedup.Drop(s.id)
	}
	p.metrics.forget(s.id)
}
