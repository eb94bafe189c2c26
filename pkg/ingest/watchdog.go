package ingest

import (
	"context"
	"time"
)

// stallReason says why the watchdog judged a shard stalled; it is the
// reason label of paystream_ingest_shard_stalled_total.
type stallReason string

const (
	// stallNoReader: this worker holds the shard's lease (and renews it),
	// but no reader or recovery of the shard runs, and no lease hand-over
	// or start of the shard is in progress.
	stallNoReader stallReason = "no_reader"
	// stallNoCommit: the shard has records waiting, flush attempts carrying
	// them have failed for stallAfter, and no flush is in progress.
	stallNoCommit stallReason = "no_commit"
)

// defaultFailoverTime is the coordinator's default --failover-time, used
// when the config leaves it zero.
const defaultFailoverTime = 10 * time.Second

// A shard is stalled when one of these has lasted for half the failover
// time (stallAfter), judged every quarter of it, so a stall is acted on
// within one failover time of its start:
//
//   - no_reader: the lease is held, the shard is not being started
//     (OnAcquire until AddShard returns) nor handed over (finish, giveUp, a
//     watchdog release), and the pipeline has no goroutine for it: it is not
//     among the pipeline's shards, or its reader exited before reaching the
//     shard's end.
//   - no_commit: the shard's pending records were carried by a flush
//     attempt that did not commit them, no attempt has committed them since
//     (waitingSince is that first attempt's start), and no flush is in
//     progress. A flush in progress is never judged: it is bounded by
//     PipelineConfig.CommitTimeout and fails when that passes.
//
// Not stalled, by construction: an idle shard (nothing pending), a shard
// waiting for its parents (its lease is not taken until they finish),
// records waiting for the next flush tick or under back-pressure while
// flushes succeed, a slow commit in progress, and failed flushes that
// commit within stallAfter.
//
// A stalled shard is logged, counted, removed from the pipeline (its
// uncommitted records are dropped; the table's position is where the next
// reader starts) and its lease given back (released, or abandoned if the
// lease table cannot be written), so this or another worker takes it over
// as after any hand-over.
func (w *Worker) watchdogLoop(ctx context.Context) error {
	f := w.cfg.Coordinator.FailoverTime
	if f <= 0 {
		f = defaultFailoverTime
	}
	noReader := map[string]time.Time{}
	return every(ctx, f/4, func(ctx context.Context) {
		if ctx.Err() != nil {
			return // stopping: readers exit, nothing is stalled
		}
		w.watch(ctx, noReader, time.Now(), f/2)
		w.watchChecks.Add(1)
	})
}

// watch judges every held shard once. noReader holds, across calls, when
// each held shard was first seen with no reader.
func (w *Worker) watch(ctx context.Context, noReader map[string]time.Time, now time.Time, stallAfter time.Duration) {
	health := w.pipeline.health.snapshot()
	busy := w.busyShards()
	held := w.coord.Held()
	live := make(map[string]bool, len(held))
	for _, id := range held {
		live[id] = true
		if busy[id] {
			delete(noReader, id)
			continue
		}
		h, ok := health.shards[id]
		if !ok || (!h.running && !h.end) {
			since, seen := noReader[id]
			if !seen {
				noReader[id] = now
				continue
			}
			if now.Sub(since) >= stallAfter {
				delete(noReader, id)
				w.stalled(ctx, id, stallNoReader, since, now)
			}
			continue
		}
		delete(noReader, id)
		if !h.waitingSince.IsZero() && health.flushing.IsZero() && now.Sub(h.waitingSince) >= stallAfter {
			w.stalled(ctx, id, stallNoCommit, h.waitingSince, now)
		}
	}
	for id := range noReader {
		if !live[id] {
			delete(noReader, id)
		}
	}
}

// stalled acts on a stalled shard: log, count, then off the watchdog's
// goroutine remove it from the pipeline and give its lease back.
func (w *Worker) stalled(ctx context.Context, shard string, reason stallReason, since, now time.Time) {
	w.metrics.stalled(shard, reason)
	w.log.Warn("shard stalled; dropping it and giving its lease back",
		"shard", shard, "reason", string(reason), "since", since.UTC().Format(time.RFC3339Nano), "for", now.Sub(since).Round(time.Millisecond).String())
	done := w.busy(shard)
	w.handover.Add(1)
	go func() {
		defer w.handover.Done()
		defer done()
		// RemoveShard waits for Run (at most a flush, bounded by
		// CommitTimeout); on shutdown Run releases what is left.
		if err := w.pipeline.RemoveShard(ctx, shard); err != nil {
			return
		}
		w.giveUp(context.WithoutCancel(ctx), shard)
	}()
}

// busy marks shard as being started or handed over, which the watchdog does
// not judge; call the returned func when that is done.
func (w *Worker) busy(shard string) (done func()) {
	w.busyMu.Lock()
	w.busyN[shard]++
	w.busyMu.Unlock()
	return func() {
		w.busyMu.Lock()
		defer w.busyMu.Unlock()
		if w.busyN[shard]--; w.busyN[shard] <= 0 {
			delete(w.busyN, shard)
		}
	}
}

func (w *Worker) busyShards() map[string]bool {
	w.busyMu.Lock()
	defer w.busyMu.Unlock()
	out := make(map[string]bool, len(w.busyN))
	for id := range w.busyN {
		out[id] = true
	}
	return out
}
