package dedup

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config.
const (
	DefaultWindow = time.Hour
	// DefaultMaxIDs holds a full hour at 1,000 events/s, the most a Kinesis
	// shard accepts, with 11% to spare: 4,000,000 × 28 B ≈ 112 MB per shard
	// when full (see "Memory" in doc.go).
	DefaultMaxIDs = 4_000_000
	// MaxMaxIDs is the largest accepted Config.MaxIDs.
	MaxMaxIDs = 1 << 30
)

// Errors callers branch on.
var (
	// ErrAborted: the batch was discarded — by its own Abort, by the Abort
	// of an older batch of the same shard, or by Drop — and its ids are not
	// in the window. Returned by Batch.Commit.
	ErrAborted = errors.New("dedup: batch was aborted")
	// ErrBatchOpen: Seed or Inherit was called on a shard that has an
	// uncommitted batch. Restore a shard's window before reading it.
	ErrBatchOpen = errors.New("dedup: shard has an open batch")
)

// Config configures a Filter. Zero values take the defaults.
type Config struct {
	// Window is how long a committed event_id is remembered, measured from
	// the commit time of its batch (flag --dedup-window; default 1h;
	// resolution 1 s).
	Window time.Duration
	// MaxIDs bounds the ids held per shard, committed and pending (flag
	// --dedup-max-ids; default DefaultMaxIDs). When full, the oldest id is
	// evicted first.
	MaxIDs int
	// Registerer receives the package's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Validate reports settings that cannot work, naming the flag.
func (c Config) Validate() error {
	var errs []error
	if c.Window < 0 || (c.Window > 0 && c.Window < time.Second) {
		errs = append(errs, fmt.Errorf("--dedup-window %v: must be at least 1s (or 0 for the default %v)", c.Window, DefaultWindow))
	}
	if c.MaxIDs < 0 || c.MaxIDs > MaxMaxIDs {
		errs = append(errs, fmt.Errorf("--dedup-max-ids %d: must be between 1 and %d (or 0 for the default %d)", c.MaxIDs, MaxMaxIDs, DefaultMaxIDs))
	}
	return errors.Join(errs...)
}

// Filter holds one de-duplication window per shard. It is safe for
// concurrent use; see doc.go for the locking.
type Filter struct {
	window uint32 // seconds, rounded up
	maxIDs int

	mu     sync.RWMutex
	shards map[string]*shard
}

// shard is one shard's state. mu guards every field; Filter.mu is never
// acquired while holding it.
type shard struct {
	id      string
	ttl     uint32 // Config.Window in seconds
	mu      sync.Mutex
	w       *window  // nil after Drop
	open    []*Batch // uncommitted batches, oldest first
	ver     uint64   // bumped by every change of open or w
	dropped bool
	dups    uint64 // duplicates found, for the metric
	scratch [16]byte
}

// New returns a Filter. It starts no goroutines.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxIDs == 0 {
		cfg.MaxIDs = DefaultMaxIDs
	}
	f := &Filter{
		window: uint32((cfg.Window + time.Second - 1) / time.Second),
		maxIDs: cfg.MaxIDs,
		shards: map[string]*shard{},
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newCollector(f)); err != nil {
			return nil, fmt.Errorf("dedup: register metrics: %w", err)
		}
	}
	return f, nil
}

func (f *Filter) lookup(id string) *shard {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.shards[id]
}

// locked returns the live shard id, creating an empty window if needed,
// with its mutex held.
func (f *Filter) locked(id string) *shard {
	for {
		s := f.lookup(id)
		if s == nil {
			f.mu.Lock()
			if s = f.shards[id]; s == nil {
				s = &shard{id: id, ttl: f.window, w: newWindow(f.maxIDs, 0)}
				f.shards[id] = s
			}
			f.mu.Unlock()
		}
		s.mu.Lock()
		if !s.dropped {
			return s
		}
		s.mu.Unlock() // dropped between lookup and lock: look again
	}
}

// snapshot lists the shards without holding any shard lock.
func (f *Filter) snapshot() []*shard {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*shard, 0, len(f.shards))
	for _, s := range f.shards {
		out = append(out, s)
	}
	return out
}

// Batch is the set of ids accepted for one micro-batch of one shard. Get it
// from Filter.Begin, call Check for each event, then Commit after the batch
// is in the table or Abort if it is not.
type Batch struct {
	s     *shard
	start uint64 // sequence number of the batch's first entry
	end   uint64 // one past its last entry, once sealed
	state batchState
}

type batchState uint8

const (
	accepting batchState = iota // the shard's newest batch: Check allowed
	sealed                      // a newer batch began: waits for Commit/Abort
	committed
	aborted
)

// Begin starts a batch for shard, creating the shard's window if it has
// none. A shard may have several uncommitted batches (a pipelined consumer
// reads batch N+1 while N commits); beginning one seals the previous one
// for Check. Batches must be committed in the order they began.
func (f *Filter) Begin(shard string) *Batch {
	s := f.locked(shard)
	defer s.mu.Unlock()
	tail := s.w.tail()
	if n := len(s.open); n > 0 && s.open[n-1].state == accepting {
		s.open[n-1].state = sealed
		s.open[n-1].end = tail
	}
	b := &Batch{s: s, start: tail, state: accepting}
	s.open = append(s.open, b)
	s.ver++
	return b
}

// Check reports whether eventID duplicates an id in the shard's window:
// committed within the window, or accepted by this or an older uncommitted
// batch of the shard. If not, the id is added to the batch and the caller
// keeps the event; if so, the caller drops it and it is counted in
// paystream_dedup_duplicates_total. After the batch was aborted (or the
// shard dropped) Check reports false and remembers nothing.
//
// Check panics if a newer batch of the shard has begun, or if the batch
// was committed: both are bugs in the caller.
func (b *Batch) Check(eventID string) (duplicate bool) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keyed under the shard's lock, in the shard's scratch block (a block
	// on the stack would escape to the heap through cipher.Block).
	h := hashID(eventID, &s.scratch)
	switch b.state {
	case accepting:
	case aborted:
		return false
	default:
		panic(fmt.Sprintf("dedup: Check on a %s batch of shard %q", b.state, s.id))
	}
	if s.w.contains(h) {
		s.dups++
		return true
	}
	s.w.push(h, 0)
	return false
}

// CheckAll is Check of each of ids in turn, under one lock: dup[i]
// reports whether ids[i] duplicates an id of the window, of an older
// uncommitted batch, or an earlier one of ids. dup must be as long as ids.
// commit.Step calls it with a few dozen rows at a time.
//
// It is faster than one Check per id: it keys a group of ids first and
// reads the table slots they will probe before probing them, so that the
// group's cache misses (the table of a large window is megabytes, and an
// id's slot is random) overlap instead of coming one after another.
func (b *Batch) CheckAll(ids []string, dup []bool) {
	if len(dup) != len(ids) {
		panic(fmt.Sprintf("dedup: CheckAll of %d ids with %d results", len(ids), len(dup)))
	}
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch b.state {
	case accepting:
	case aborted:
		clear(dup)
		return
	default:
		panic(fmt.Sprintf("dedup: Check on a %s batch of shard %q", b.state, s.id))
	}
	var hs [checkGroup]h128
	for len(ids) > 0 {
		n := min(len(ids), checkGroup)
		for k, id := range ids[:n] {
			hs[k] = hashID(id, &s.scratch)
		}
		s.w.touch(hs[:n])
		for k, h := range hs[:n] {
			if dup[k] = s.w.contains(h); dup[k] {
				s.dups++
				continue
			}
			s.w.push(h, 0)
		}
		ids, dup = ids[n:], dup[n:]
	}
}

// checkGroup is how many ids CheckAll keys before it probes them: enough
// cache misses in flight to overlap, few enough that the slots read first
// are still cached when probed.
const checkGroup = 16

// Commit moves the batch's ids into the shard's window with commit time at,
// then evicts ids committed more than Config.Window before at. Call it once
// the batch is durably in the table, with the batch's ingested_at, so that
// a window restored from the table by Seed matches. A commit time earlier
// than the shard's previous one is raised to it.
//
// It returns ErrAborted if the batch was discarded (the caller must not
// have written it), and an error if an older batch of the shard is still
// uncommitted or the batch was already committed.
func (b *Batch) Commit(at time.Time) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch b.state {
	case aborted:
		return fmt.Errorf("commit shard %s: %w", s.id, ErrAborted)
	case committed:
		return fmt.Errorf("dedup: commit shard %s: batch already committed", s.id)
	}
	if s.open[0] != b {
		return fmt.Errorf("dedup: commit shard %s: an older batch is still uncommitted; commit batches in the order they began", s.id)
	}
	end := b.end
	if b.state == accepting {
		end = s.w.tail()
	}
	s.w.commit(b.start, end, secs(at))
	b.state = committed
	s.open[0] = nil
	s.open = s.open[1:]
	s.w.expire(s.w.last, s.ttl)
	s.w.maybeShrink()
	s.ver++
	return nil
}

// Abort discards the batch's ids and those of every newer batch of the
// shard (they were read after it and are re-read with it). Aborting a
// committed or already aborted batch does nothing, so `defer b.Abort()`
// is safe.
func (b *Batch) Abort() {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.state == committed || b.state == aborted {
		return
	}
	i := slices.Index(s.open, b)
	for j := i; j < len(s.open); j++ {
		s.open[j].state = aborted
		s.open[j] = nil
	}
	s.open = s.open[:i]
	s.w.truncate(b.start)
	s.ver++
}

func (st batchState) String() string {
	switch st {
	case accepting:
		return "open"
	case sealed:
		return "sealed"
	case committed:
		return "committed"
	default:
		return "aborted"
	}
}

// Expire evicts, in every shard, committed ids older than Config.Window at
// now, and returns how many. Commit already does this for its shard; call
// Expire periodically so idle shards release memory and report a true
// paystream_dedup_window_ids.
func (f *Filter) Expire(now time.Time) int {
	t := secs(now)
	evicted := 0
	for _, s := range f.snapshot() {
		s.mu.Lock()
		if !s.dropped {
			evicted += s.w.expire(t, f.window)
			s.w.maybeShrink()
		}
		s.mu.Unlock()
	}
	return evicted
}

// Drop forgets shard's window and aborts its open batches (their Commit
// returns ErrAborted). Call it when the shard's lease is lost or the shard
// is finished and its children have inherited its window.
func (f *Filter) Drop(shard string) {
	f.mu.Lock()
	s := f.shards[shard]
	delete(f.shards, shard)
	f.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.open {
		b.state = aborted
	}
	s.open, s.w, s.dropped = nil, nil, true
	s.ver++
}

// Seed adds ids with their commit times (the ingested_at of their rows) to
// shard's committed window, creating it if needed; ids already present are
// skipped and, beyond Config.MaxIDs, the newest are kept. Feed it the
// shard's rows of the last Config.Window, in any order (rows out of time
// order cost a sort). Ids older than the window at the next Commit or
// Expire are evicted then.
//
// Call it before the first Begin for the shard; it returns ErrBatchOpen
// otherwise. The ids are hashed as they are read, outside any lock, into
// hashes and times (20 B per id), which become the new window's ring when
// the shard has no window yet; the window is swapped in at the end. Up to
// a quarter of Config.MaxIDs they are read into chunks and then copied
// into arrays of their final size (so a small restore makes a small
// window). Once a quarter is reached, the ring is allocated at MaxIDs —
// the size a window that full is kept at anyway (it halves only below a
// quarter) — the chunks are copied into it and the rest is read in place.
// A restore thus allocates at most min(ids, MaxIDs/4) × 20 B beyond the
// window it builds (rounded up to whole chunks of 64 Ki ids), and new ids
// after it need no resize. Rows out of time
// order are sorted in place. More ids than MaxIDs (a window too small for
// the shard's rate), or a shard that already has ids, take a slower path
// that copies them as 24 B entries.
func (f *Filter) Seed(shard string, ids iter.Seq2[string, time.Time]) error {
	hs, ts, sorted := collect(ids, f.maxIDs)
	if !sorted {
		sort.Sort(byTime{hs, ts})
	}
	return f.install(shard, "seed", func(existing []entry) *window {
		if len(existing) == 0 && len(hs) >= minCap && len(hs) <= f.maxIDs {
			return ringWindow(f.maxIDs, hs, ts)
		}
		es := make([]entry, len(hs))
		for i := range hs {
			es[i] = entry{h: hs[i], t: ts[i]}
		}
		hs, ts = nil, nil
		return buildWindow(f.maxIDs, mergeEntries(existing, es))
	})
}

// seedChunk is the ids per chunk while Seed reads the first quarter of
// MaxIDs.
const seedChunk = 1 << 16

// collect hashes ids into hs and ts and reports whether the times came in
// order. It reads into chunks of seedChunk ids; when a chunk is full and
// the ids read reach a quarter of maxIDs (and no more than maxIDs), it
// allocates hs and ts with capacity maxIDs, copies the chunks into them
// and appends the rest there. Otherwise it copies the chunks at the end
// into arrays of their total length. Each chunk is dropped once copied.
func collect(ids iter.Seq2[string, time.Time], maxIDs int) (hs []h128, ts []uint32, sorted bool) {
	var (
		hc      [][]h128
		tc      [][]uint32
		last    uint32
		n       int
		ring    bool // hs and ts are allocated at maxIDs and take the rest
		scratch = new([16]byte)
	)
	sorted = true
	for id, at := range ids {
		h, t := hashID(id, scratch), secs(at)
		sorted = sorted && t >= last
		last = t
		if ring {
			hs, ts = append(hs, h), append(ts, t)
			continue
		}
		if k := len(hc); k == 0 || len(hc[k-1]) == seedChunk {
			if n > 0 && n >= maxIDs/4 && n < maxIDs {
				hs, ts = gather(hc, tc, n, maxIDs)
				hc, tc, ring = nil, nil, true
				hs, ts = append(hs, h), append(ts, t)
				continue
			}
			hc = append(hc, make([]h128, 0, seedChunk))
			tc = append(tc, make([]uint32, 0, seedChunk))
		}
		k := len(hc) - 1
		hc[k], tc[k] = append(hc[k], h), append(tc[k], t)
		n++
	}
	if !ring {
		hs, ts = gather(hc, tc, n, n)
	}
	return hs, ts, sorted
}

// gather copies the n ids of the chunks into arrays of capacity c ≥ n,
// dropping each chunk once copied.
func gather(hc [][]h128, tc [][]uint32, n, c int) ([]h128, []uint32) {
	hs, ts := make([]h128, 0, c), make([]uint32, 0, c)
	for k := range hc {
		hs, ts = append(hs, hc[k]...), append(ts, tc[k]...)
		hc[k], tc[k] = nil, nil
	}
	return hs[:n], ts[:n]
}

// byTime sorts parallel hash and time arrays by time. The sort need not be
// stable: entries with equal times and equal hashes are the same.
type byTime struct {
	hs []h128
	ts []uint32
}

func (b byTime) Len() int           { return len(b.ts) }
func (b byTime) Less(i, j int) bool { return b.ts[i] < b.ts[j] }
func (b byTime) Swap(i, j int) {
	b.hs[i], b.hs[j] = b.hs[j], b.hs[i]
	b.ts[i], b.ts[j] = b.ts[j], b.ts[i]
}

// Inherit adds the committed windows of parents held by this Filter to
// child's window (after a split the child has one parent, after a merge
// two), creating it if needed, so a retry that lands on the child is still
// caught. It returns the parents this Filter does not hold; the caller
// seeds those from the table (Seed with the parents' recent rows). Parents
// are left as they are: Drop them when every child has inherited.
//
// Call it before the first Begin for child; it returns ErrBatchOpen
// otherwise.
func (f *Filter) Inherit(child string, parents ...string) (missing []string, err error) {
	var lists [][]entry
	for _, p := range parents {
		if p == child {
			return nil, fmt.Errorf("dedup: inherit shard %s: shard cannot be its own parent", child)
		}
		found := false
		if s := f.lookup(p); s != nil {
			s.mu.Lock()
			if !s.dropped {
				lists = append(lists, s.w.entries())
				found = true
			}
			s.mu.Unlock()
		}
		if !found {
			missing = append(missing, p)
		}
	}
	if len(lists) == 0 {
		return missing, nil
	}
	err = f.install(child, "inherit", func(existing []entry) *window {
		all := existing
		for _, l := range lists {
			all = mergeEntries(all, l)
		}
		return buildWindow(f.maxIDs, all)
	})
	return missing, err
}

// install replaces shard's window by build(its committed entries). build
// runs without locks; the swap fails if the shard changed meanwhile.
func (f *Filter) install(id, op string, build func(existing []entry) *window) error {
	s := f.locked(id)
	if len(s.open) > 0 {
		s.mu.Unlock()
		return fmt.Errorf("%s shard %s: %w", op, id, ErrBatchOpen)
	}
	ver := s.ver
	var existing []entry
	if s.w.n > 0 {
		existing = s.w.entries()
	}
	s.mu.Unlock()

	w := build(existing)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped || s.ver != ver {
		return fmt.Errorf("dedup: %s shard %s: shard was used or dropped concurrently; restore a shard before reading it", op, id)
	}
	w.evictedTime += s.w.evictedTime
	w.evictedCount += s.w.evictedCount
	s.w = w
	s.ver++
	return nil
}

// Len returns the ids held for shard, committed and pending.
func (f *Filter) Len(shard string) int {
	s := f.lookup(shard)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped {
		return 0
	}
	return s.w.n
}

// Stats sums the Filter's shards.
type Stats struct {
	Shards  int
	IDs     int   // committed and pending
	Pending int   // in uncommitted batches
	Bytes   int64 // memory held by the windows' arrays (see doc.go)
}

// Stats returns the current totals.
func (f *Filter) Stats() Stats {
	var st Stats
	for _, s := range f.snapshot() {
		s.mu.Lock()
		if !s.dropped {
			st.Shards++
			st.IDs += s.w.n
			st.Pending += s.w.pending()
			st.Bytes += s.w.bytes()
		}
		s.mu.Unlock()
	}
	return st
}

// Reserve makes room in shard's window for n more ids (up to
// Config.MaxIDs in all), creating the window if needed, so that checking
// them does not grow it by doubling (each doubling rehashes every id
// held). The room is kept while the window fills: Commit and Expire do
// not shrink it below the reservation until the window has evicted ids
// for their age. File ingest calls it once with the lines of the input.
func (f *Filter) Reserve(shard string, n int) {
	s := f.locked(shard)
	defer s.mu.Unlock()
	s.w.reserve(n, true)
}

// Reserve makes room in the shard's window for n more ids, as
// Filter.Reserve, for this batch: commit.Step calls it with the batch's
// rows. The room is not kept beyond the batch (a shard whose batches
// shrink shrinks its window as before). Reserve on a batch that is not
// open does nothing.
func (b *Batch) Reserve(n int) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.state != accepting {
		return
	}
	s.w.reserve(n, false)
}
