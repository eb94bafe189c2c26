package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// gateSink is a stopSink whose first Commit waits until the test opens
// the gate; it records each call's shards.
type gateSink struct {
	stopSink
	entered chan struct{} // closed when the first Commit is called
	gate    chan struct{} // the first Commit returns once it is closed
	once    sync.Once
	callsMu sync.Mutex
	calls   [][]string
}

func (s *gateSink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	first := false
	s.once.Do(func() { first = true; close(s.entered) })
	if first {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return commit.Result{}, ctx.Err()
		}
	}
	s.callsMu.Lock()
	var shards []string
	for _, r := range b.Ranges {
		shards = append(shards, r.Shard)
	}
	s.calls = append(s.calls, shards)
	s.callsMu.Unlock()
	return s.stopSink.Commit(ctx, b)
}

func (s *gateSink) call(i int) ([]string, bool) {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	if i >= len(s.calls) {
		return nil, false
	}
	return s.calls[i], true
}

// A flush that takes longer than the flush interval leaves a tick waiting
// and the readers' chunks queued behind it. The next flush must carry every
// chunk already waiting: it used to pick the tick or a chunk at random, so
// it carried one or two chunks and left the rest for flushes after it, and
// records waited several flush intervals behind a slow commit (freshness
// p99 of 8-17 s at 4 workers in make bench-scale BENCH_SCALE_MODE=single).
func TestPipelineFlushCarriesEveryWaitingChunk(t *testing.T) {
	const n = 8
	gen := schema.NewGenerator(1, time.Now())
	event := func() []byte { ev := gen.Next(time.Now()); return ev.AppendJSON(nil) }
	kin := &stopKinesis{recs: map[string][][]byte{}}
	sink := &gateSink{stopSink: stopSink{pos: map[string]string{}, seqs: map[string][]string{}},
		entered: make(chan struct{}), gate: make(chan struct{})}
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 20 * time.Millisecond; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink})
	ctx := runPipeline(t, p)
	var shards []string
	for i := range n {
		shard := fmt.Sprintf("s%d", i)
		shards = append(shards, shard)
		if err := p.AddShard(ctx, shard, nil); err != nil {
			t.Fatal(err)
		}
	}
	kin.add("s0", event())
	receive(t, sink.entered, "the first flush commits")

	// While the first commit hangs, every shard's reader sends a chunk.
	for _, shard := range shards {
		kin.add(shard, event())
	}
	waitUntil(t, func() bool { return len(p.in) == n })
	close(sink.gate)

	waitUntil(t, func() bool { _, ok := sink.call(1); return ok })
	got, _ := sink.call(1)
	if len(got) != n {
		t.Errorf("the flush after the slow one carried shards %v; want all %d waiting chunks (%v)", got, n, shards)
	}
}
