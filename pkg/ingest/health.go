package ingest

import (
	"maps"
	"sync"
	"time"
)

// shardHealth is what the pipeline publishes of one shard for the worker's
// stall watchdog (watchdog.go). Run writes it; the watchdog reads a copy.
type shardHealth struct {
	gen     uint64
	running bool // the shard's reader (or recovery) goroutine has not exited
	end     bool // its reader saw the shard's end; it retires at the next flush
	// waitingSince is the start of the first flush attempt that carried the
	// shard's pending records and did not commit them; zero when the shard
	// has nothing pending or no flush has tried it yet. A successful commit
	// of the shard, or dropping its records, resets it.
	waitingSince time.Time
}

// pipelineHealth is a snapshot of the shards' health.
type pipelineHealth struct {
	shards map[string]shardHealth
	// flushing is the start of the flush in progress, zero when none.
	flushing time.Time
}

// healthBoard is where Run publishes shard health. Its lock is a leaf: held
// for map updates only, never across a call.
type healthBoard struct {
	mu       sync.Mutex
	shards   map[string]shardHealth
	flushing time.Time
}

func newHealthBoard() *healthBoard { return &healthBoard{shards: map[string]shardHealth{}} }

// publish records s's state (Run only). running is kept as spawn and the
// goroutine's exit set it.
func (b *healthBoard) publish(s *shardState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.shards[s.id]
	h.end, h.waitingSince = s.end, s.waitingSince
	b.shards[s.id] = h
}

// started and exited record that generation gen of shard's goroutine runs
// or has returned. exited of an old generation is ignored.
func (b *healthBoard) started(shard string, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.shards[shard]
	h.gen, h.running = gen, true
	b.shards[shard] = h
}

func (b *healthBoard) exited(shard string, gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h, ok := b.shards[shard]; ok && h.gen == gen {
		h.running = false
		b.shards[shard] = h
	}
}

func (b *healthBoard) forget(shard string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.shards, shard)
}

func (b *healthBoard) flush(start time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushing = start
}

func (b *healthBoard) snapshot() pipelineHealth {
	b.mu.Lock()
	defer b.mu.Unlock()
	return pipelineHealth{shards: maps.Clone(b.shards), flushing: b.flushing}
}
