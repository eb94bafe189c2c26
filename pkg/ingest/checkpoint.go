package ingest

import (
	"context"
	"errors"
	"maps"
	"sync"

	"github.com/paystream/paystream/pkg/lease"
)

// checkpointer records committed positions in the lease table off the
// pipeline goroutine: Run only notes the newest position per shard
// (note), and the worker's checkpointLoop writes them. A slow or hung lease
// table then delays the checkpoints alone (visibility only; the Iceberg
// table holds the positions), never a flush. Positions noted while a write
// is in flight are coalesced: only the newest per shard is written.
type checkpointer struct {
	mu     sync.Mutex
	latest map[string]string // shard → newest committed position not yet written
	wake   chan struct{}     // capacity 1: something was noted
}

func newCheckpointer() *checkpointer {
	return &checkpointer{latest: map[string]string{}, wake: make(chan struct{}, 1)}
}

// note records seq as shard's newest committed position. It never blocks.
func (c *checkpointer) note(shard, seq string) {
	c.mu.Lock()
	c.latest[shard] = seq
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drop forgets shard's unwritten position: the shard is being handed over
// (SHARD_END or release), which a later checkpoint would contradict.
func (c *checkpointer) drop(shard string) {
	c.mu.Lock()
	delete(c.latest, shard)
	c.mu.Unlock()
}

func (c *checkpointer) take() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := maps.Clone(c.latest)
	clear(c.latest)
	return out
}

// checkpointLoop writes noted positions until ctx ends. Each write is
// bounded by leaseWriteTimeout (and by the coordinator's RenewInterval, so
// that it never holds up the lease's renewal for longer). A failed write is
// logged and counted, not retried: the next commit notes a newer position.
// A lost lease (lease.ErrLost) is not a failure; the coordinator reports it.
func (w *Worker) checkpointLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.checkpoints.wake:
		}
		for shard, seq := range w.checkpoints.take() {
			wctx, cancel := context.WithTimeout(ctx, leaseWriteTimeout)
			err := w.coord.Checkpoint(wctx, shard, seq)
			cancel()
			if err == nil || errors.Is(err, lease.ErrLost) || ctx.Err() != nil {
				continue
			}
			w.metrics.leaseWriteFailed(leaseWriteCheckpoint)
			w.log.Warn("lease checkpoint not recorded", "shard", shard, "seq", seq, "err", err.Error())
		}
	}
}
