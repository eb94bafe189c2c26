package ingest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/schema"
)

func TestUntilFlush(t *testing.T) {
	slot := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	tests := []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"mid slot", slot.Add(200 * ms), 500 * ms},
		{"at the flush", slot.Add(700 * ms), time.Second},
		{"just before the flush: the next one", slot.Add(690 * ms), 1010 * ms},
		{"just after the flush", slot.Add(710 * ms), 990 * ms},
		{"at the slot start", slot, 700 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := untilFlush(tt.now, time.Second, 300*ms); got != tt.want {
				t.Errorf("untilFlush(%s) = %s, want %s", tt.now.Format("15:04:05.000"), got, tt.want)
			}
		})
	}
}

func TestLeadTracker(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		notes []time.Duration
		want  time.Duration
	}{
		{"no sample yet", nil, 300 * ms},
		{"slowest times 1.5 plus the margin", []time.Duration{20 * ms, 40 * ms, 30 * ms}, 110 * ms},
		{"at least a tenth of the interval", []time.Duration{5 * ms}, 100 * ms},
		{"at most half the interval", []time.Duration{20 * ms, 900 * ms}, 500 * ms},
		{"a slow batch ages out after leadSamples", append([]time.Duration{400 * ms}, slices.Repeat([]time.Duration{40 * ms}, leadSamples)...), 110 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLeadTracker(time.Second)
			for _, d := range tt.notes {
				l.note(d)
			}
			if got := l.get(); got != tt.want {
				t.Errorf("lead = %s, want %s", got, tt.want)
			}
		})
	}
}

// timedSink is a stopSink that notes when each Commit was called.
type timedSink struct {
	stopSink
	mu sync.Mutex
	at []time.Time
}

func (s *timedSink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return s.stopSink.Commit(ctx, b)
}

// With FlushLead the pipeline's timed flushes start FlushLead() before each
// multiple of FlushInterval on the wall clock, whenever the pipeline
// started.
func TestPipelineFlushLeadAlignsFlushesToSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(123 * time.Millisecond) // start off the slots' phase
		gen := schema.NewGenerator(1, time.Now())
		kin := &stopKinesis{recs: map[string][][]byte{}}
		sink := &timedSink{stopSink: stopSink{pos: map[string]string{}, seqs: map[string][]string{}}}
		lead := func() time.Duration { return 300 * time.Millisecond }
		p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval, c.IdlePoll = time.Second, 200*time.Millisecond },
			PipelineDeps{Kinesis: kin, Sink: sink, FlushLead: lead})
		ctx := runPipeline(t, p)
		if err := p.AddShard(ctx, "a", nil); err != nil {
			t.Fatal(err)
		}
		for range 40 { // records every 100 ms for 4 s
			ev := gen.Next(time.Now())
			kin.add("a", ev.AppendJSON(nil))
			time.Sleep(100 * time.Millisecond)
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if len(sink.at) < 3 {
			t.Fatalf("%d flushes in 4 s, want 3 or more", len(sink.at))
		}
		for _, at := range sink.at {
			if into := at.Sub(slotStart(at, time.Second)); into != 700*time.Millisecond {
				t.Errorf("flush %s into its slot, want 700ms (300ms before the next slot)", into)
			}
		}
	})
}

// The holder's own batch waits for the next slot's round when this slot
// had one, and that round carries what was staged meanwhile: one commit.
// A round asked for by Run in a slot that had its round does nothing.
func TestCommitterOwnBatchJoinsTheNextSlot(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	e.own("b", "w2")
	e.own("c", "w3")
	c := e.committer("w1")
	tbl := &singleTable{StagingSink: e.sink, store: e.store, committer: c, workerID: "w1", poll: 20 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// Start early in a slot, and mark the slot as having had its round.
	if err := retry.Sleep(ctx, untilSlot(time.Now(), c.interval)); err != nil {
		t.Fatal(err)
	}
	c.lastRound = time.Now()
	next := slotStart(c.lastRound, c.interval).Add(c.interval)
	before := e.snapshots()
	type result struct {
		res commit.Result
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		res, err := tbl.Commit(ctx, batch(t, "a", "", 1, 4))
		done <- result{res, err, time.Now()}
	}()
	pb := e.stage("w2", batch(t, "b", "", 1, 6))
	r := <-done
	if r.err != nil {
		t.Fatalf("own batch: %v", r.err)
	}
	if r.at.Before(next) {
		t.Errorf("own batch committed %s before the next slot; want it to wait for the slot", next.Sub(r.at))
	}
	if n := e.snapshots(); n != before+1 {
		t.Errorf("snapshots %d → %d, want one commit for the own and the staged batch", before, n)
	}
	st, err := e.store.GetStaged(ctx, pb.CommitID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != lease.StateCommitted || st.SnapshotID != r.res.SnapshotID {
		t.Errorf("staged batch %s in snapshot %d, want committed in the own batch's %d", st.State, st.SnapshotID, r.res.SnapshotID)
	}

	pc := e.stage("w3", batch(t, "c", "", 1, 2))
	if _, err := c.roundInSlot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s := e.state(pc.CommitID); s != lease.StateStaged && time.Now().Before(next.Add(c.interval/2)) {
		t.Errorf("a second round in one slot settled a batch (%s)", s)
	}
}

// Run starts its rounds at slot starts: a batch staged mid-slot is
// settled by the round at the next slot's start.
func TestCommitterRunRoundsAtSlotStarts(t *testing.T) {
	e := newCommitEnv(t)
	e.own("b", "w2")
	c := e.committer("w1")
	var staged time.Time
	st := runUntilCommitted(t, e, c, func() string {
		staged = time.Now() // the item is written after this
		return e.stage("w2", batch(t, "b", "", 1, 6)).CommitID
	})
	slot := slotStart(st.SettledAt, c.interval)
	if !slot.After(staged) {
		t.Errorf("settled in the slot of %s, staged at %s: want the round of the slot after staging", slot.Format("15:04:05.000"), staged.Format("15:04:05.000"))
	}
	// The round starts at the slot's start; listing, committing and
	// marking take the rest (up to half a second on a loaded machine).
	if into := st.SettledAt.Sub(slot); into > c.interval*9/10 {
		t.Errorf("settled %s into its slot; want the round to start at the slot's start", into)
	}
}

// A worker whose wait ends (it is stopping) right after the committer
// settled its batch reads the outcome once more: it learns the batch
// landed and deletes the item, instead of reporting an unknown outcome and
// leaving the item for the committer's five-minute sweep.
func TestSingleTableReadsTheOutcomeOnceMoreWhenStopped(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	notHolder := &committer{isHolder: func() bool { return false }}
	tbl := &singleTable{StagingSink: e.sink, store: e.store, committer: notHolder, workerID: "w1", poll: time.Hour}
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		res commit.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := tbl.Commit(ctx, batch(t, "a", "", 1, 5))
		done <- result{res, err}
	}()
	waitStaged(t, e.store, 1)
	if _, err := e.committer("w2").round(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := <-done
	if r.err != nil || r.res.Rows != 5 {
		t.Fatalf("stopped worker's commit: %+v, %v; want the 5 rows landed", r.res, r.err)
	}
	if left, _ := e.store.ListStaged(t.Context()); len(left) != 0 {
		t.Errorf("%d staged items left after the worker read its outcome", len(left))
	}
}

// listCounter counts the lease-table listings a committer makes.
type listCounter struct {
	StageStore
	lists atomic.Int32
}

func (s *listCounter) List(ctx context.Context) ([]lease.Lease, error) {
	s.lists.Add(1)
	return s.StageStore.List(ctx)
}

// A round whose batches carry different shards does not read the lease
// owners (the order decides nothing); one with rivals does, and the
// current owner's batch wins.
func TestCommitterReadsOwnersOnlyForRivals(t *testing.T) {
	e := newCommitEnv(t)
	e.own("a", "w1")
	e.own("b", "w2")
	store := &listCounter{StageStore: e.store}
	c := e.committer("w3")
	c.store = store

	pa := e.stage("w1", batch(t, "a", "", 1, 3))
	pb := e.stage("w2", batch(t, "b", "", 1, 3))
	if _, err := c.round(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{pa.CommitID, pb.CommitID} {
		if s := e.state(id); s != lease.StateCommitted {
			t.Fatalf("batch %s is %s, want committed", id, s)
		}
	}
	if n := store.lists.Load(); n != 0 {
		t.Errorf("round without rivals listed the leases %d times, want 0", n)
	}

	zombie := e.stage("w1", batch(t, "a", "3", 4, 2)) // staged first, then a moves to w9
	e.own("a", "w9")
	current := e.stage("w9", batch(t, "a", "3", 4, 2))
	if _, err := c.round(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if n := store.lists.Load(); n != 1 {
		t.Errorf("round with rivals listed the leases %d times, want 1", n)
	}
	if s := e.state(current.CommitID); s != lease.StateCommitted {
		t.Errorf("current owner's batch is %s, want committed", s)
	}
	if s := e.state(zombie.CommitID); s != lease.StateRefused {
		t.Errorf("zombie's batch is %s, want refused", s)
	}
}

// An own batch still being prepared when a slot starts (a slow write)
// does not cost the staged batches their slot: Run waits for its round
// until 0.4 intervals into the slot, then runs the round without it.
func TestCommitterRunDoesNotWaitForALateOwnBatch(t *testing.T) {
	e := newCommitEnv(t)
	e.own("b", "w2")
	c := e.committer("w1")
	var staged time.Time
	st := runUntilCommitted(t, e, c, func() string {
		id := e.stage("w2", batch(t, "b", "", 1, 6)).CommitID
		staged = time.Now()
		c.ownComing() // and never arrives
		return id
	})
	// Without waiting for the own batch, the round would start at 0.4
	// intervals into the slot; the list, commit and marks take the rest.
	// Leaving the slot to the own batch settles it a slot later or more.
	first := slotStart(staged, c.interval).Add(c.interval)
	if st.SettledAt.After(first.Add(c.interval * 9 / 10)) {
		t.Errorf("settled %s after the first slot start after staging; want in that slot", st.SettledAt.Sub(first))
	}
}

// runUntilCommitted runs c, stages a batch with stage (which returns its
// commit id), waits up to 20 s for the batch to be committed, stops c and
// returns the batch's item.
func runUntilCommitted(t *testing.T, e *commitEnv, c *committer, stage func() string) lease.Staged {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	run := make(chan error, 1)
	go func() { run <- c.Run(ctx) }()

	id := stage()
	var st lease.Staged
	for st.State != lease.StateCommitted {
		if ctx.Err() != nil {
			t.Fatal("staged batch not committed within 20s")
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if st, err = e.store.GetStaged(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-run; err != nil {
		t.Fatal(err)
	}
	return st
}
