package ingest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// fenceSink is a stopSink whose RecentEventIDs for one shard can be held
// (gate) or made to fail, once armed.
type fenceSink struct {
	*stopSink
	shard   string
	armed   chan struct{} // closed to arm
	started chan struct{} // closed when an armed call began
	gate    chan struct{} // closed to let armed calls return
	fail    error         // armed calls fail with this when set
	once    sync.Once
}

func newFenceSink(shard string) *fenceSink {
	return &fenceSink{
		stopSink: &stopSink{pos: map[string]string{}, seqs: map[string][]string{}},
		shard:    shard, armed: make(chan struct{}), started: make(chan struct{}), gate: make(chan struct{}),
	}
}

func (s *fenceSink) RecentEventIDs(ctx context.Context, shards []string, since time.Time, add func(shard, id string, at time.Time)) error {
	select {
	case <-s.armed:
	default:
		return s.stopSink.RecentEventIDs(ctx, shards, since, add)
	}
	if !slices.Contains(shards, s.shard) {
		return s.stopSink.RecentEventIDs(ctx, shards, since, add)
	}
	s.once.Do(func() { close(s.started) })
	if s.fail != nil {
		return s.fail
	}
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.stopSink.RecentEventIDs(ctx, shards, since, add)
}

// moveUnder sets shard's position as another writer's commit would.
func (s *fenceSink) moveUnder(shard, pos string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pos[shard] = pos
}

func events(gen *schema.Generator, n int) [][]byte {
	var out [][]byte
	for range n {
		ev := gen.Next(time.Now())
		out = append(out, ev.AppendJSON(nil))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A fenced shard rebuilds its dedup window (a table scan) in the
// background: other shards keep committing meanwhile, and the fenced shard
// re-reads from the position the other writer left.
func TestFencedShardRecoveryDoesNotBlockOtherShards(t *testing.T) {
	gen := schema.NewGenerator(7, time.Now())
	kin := &stopKinesis{recs: map[string][][]byte{"a": events(gen, 5), "b": events(gen, 5)}}
	sink := newFenceSink("a")
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 20 * time.Millisecond; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink, Dedup: dd})
	ctx := runPipeline(t, p)
	var release sync.Once
	defer release.Do(func() { close(sink.gate) })
	for _, s := range []string{"a", "b"} {
		if err := p.AddShard(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both shards are committed to 5", func() bool { return sink.position("a") == "5" && sink.position("b") == "5" })

	// Another writer commits a's records 6 and 7; ours reads 6..8 and is fenced.
	close(sink.armed)
	sink.moveUnder("a", "7")
	kin.add("a", events(gen, 3)...)
	select {
	case <-sink.started:
	case <-time.After(15 * time.Second):
		t.Fatal("the fenced shard's window was never rebuilt")
	}
	// While a's rebuild is held, b goes on committing.
	kin.add("b", events(gen, 4)...)
	waitFor(t, "b commits past 5 while a recovers", func() bool { return sink.position("b") == "9" })
	if got := sink.position("a"); got != "7" {
		t.Fatalf("a is at %s while its recovery is held, want the other writer's 7", got)
	}

	release.Do(func() { close(sink.gate) })
	waitFor(t, "a re-reads after the other writer's position", func() bool { return sink.position("a") == "8" })
	sink.mu.Lock()
	got := slices.Clone(sink.seqs["a"])
	sink.mu.Unlock()
	if want := []string{"1", "2", "3", "4", "5", "8"}; !slices.Equal(got, want) {
		t.Errorf("a's committed sequence numbers %v, want %v (6 and 7 are the other writer's)", got, want)
	}
}

// A fenced shard whose window cannot be rebuilt is given up, so its lease
// goes back, instead of staying owned with no reader.
func TestFencedShardGivenUpWhenItsWindowCannotBeRebuilt(t *testing.T) {
	gen := schema.NewGenerator(8, time.Now())
	kin := &stopKinesis{recs: map[string][][]byte{"a": events(gen, 3)}}
	sink := newFenceSink("a")
	sink.fail = errors.New("catalog unreachable")
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan string, 1)
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 20 * time.Millisecond; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink, Dedup: dd, Hooks: Hooks{ShardFailed: func(_ context.Context, s string) { failed <- s }}})
	ctx := runPipeline(t, p)
	if err := p.AddShard(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a is committed to 3", func() bool { return sink.position("a") == "3" })
	close(sink.armed)
	sink.moveUnder("a", "4")
	kin.add("a", events(gen, 2)...)
	select {
	case s := <-failed:
		if s != "a" {
			t.Errorf("shard %s given up, want a", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a fenced shard whose window cannot be rebuilt was never given up")
	}
}
