package ingest

import "context"

// DropShardForTest removes shard from the pipeline as if its reader had
// died, leaving its lease held and renewed.
func (w *Worker) DropShardForTest(ctx context.Context, shard string) error {
	return w.pipeline.RemoveShard(ctx, shard)
}

// WatchdogChecks returns how many rounds the stall watchdog has run.
func (w *Worker) WatchdogChecks() int64 { return w.watchChecks.Load() }
