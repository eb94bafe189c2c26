package ingest

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/lease"
)

// commitMode returns the table the pipeline commits to: d.Sink itself in
// commit mode worker; in commit mode single a singleTable over it, with the
// committer role and the committer set up on w.
func (w *Worker) commitMode(d WorkerDeps, log *slog.Logger) (Sink, error) {
	if w.cfg.CommitMode != CommitSingle {
		return d.Sink, nil
	}
	sink, ok := d.Sink.(StagingSink)
	if !ok {
		return nil, errors.New("worker: --commit-mode single needs a table that can write batches without committing them (*iceberg.Sink)")
	}
	store, ok := d.Leases.(StageStore)
	if !ok {
		return nil, errors.New("worker: --commit-mode single needs the DynamoDB lease store, which holds the staged batches")
	}
	cc := w.cfg.Coordinator
	role, err := lease.NewRole(lease.RoleConfig{
		Name: lease.RoleCommitter, WorkerID: cc.WorkerID, FailoverTime: cc.FailoverTime, RenewInterval: cc.RenewInterval,
		OnElected: func() {
			w.metrics.committerRole(true)
			log.Info("committer role won: this worker commits the table's batches")
		},
		OnLost: func() {
			w.metrics.committerRole(false)
			log.Info("committer role lost: this worker stages its batches")
		},
		Logger: log,
	}, d.Leases)
	if err != nil {
		return nil, err
	}
	w.commitRole = role
	w.committer = &committer{
		sink: sink, store: store, workerID: cc.WorkerID, isHolder: role.IsHolder,
		interval: w.cfg.Pipeline.FlushInterval, log: log, metrics: w.metrics,
	}
	if w.cfg.MaintenanceInterval > 0 && w.cfg.Maintenance.Compact.TargetSize >= 0 {
		// Compaction moves from the maintainer to the committer (maintainRound).
		opts := w.cfg.Maintenance.Compact
		w.committer.compact = func(ctx context.Context) (iceberg.CompactResult, error) { return sink.Compact(ctx, opts) }
		w.committer.compactEvery = w.cfg.MaintenanceInterval
	}
	poll := min(max(w.cfg.Pipeline.FlushInterval/10, 20*time.Millisecond), 200*time.Millisecond)
	return &singleTable{
		StagingSink: sink, store: store, committer: w.committer, workerID: cc.WorkerID, poll: poll, metrics: w.metrics, log: log,
		lead: newLeadTracker(w.cfg.Pipeline.FlushInterval),
	}, nil
}

// flushLead is the pipeline's FlushLead in commit mode single (the table
// is a singleTable), else nil.
func flushLead(table Sink) func() time.Duration {
	if t, ok := table.(*singleTable); ok {
		return t.lead.get
	}
	return nil
}

// runCommitRole starts the committer election (commit mode single) and
// returns the function that stops it, releasing the role, and waits.
func (w *Worker) runCommitRole(ctx context.Context) func() error {
	if w.commitRole == nil {
		return func() error { return nil }
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- w.commitRole.Run(rctx) }()
	return func() error {
		stop()
		return <-done
	}
}

// Committer reports whether this worker holds the committer role (commit
// mode single). Always false in commit mode worker.
func (w *Worker) Committer() bool { return w.commitRole != nil && w.commitRole.IsHolder() }
