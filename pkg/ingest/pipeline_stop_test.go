package ingest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// stopKinesis serves shards from memory. The shard named block blocks in
// GetRecords and, once cancelled, takes slowB to return (an HTTP call that
// does not stop at once).
type stopKinesis struct {
	shards   []ktypes.Shard // what ListShards returns
	mu       sync.Mutex
	recs     map[string][][]byte
	served   map[string]int // records handed out per shard
	block    string
	slowB    time.Duration
	bStopped chan struct{}
	bBlocked chan struct{} // closed when the blocking shard's reader is in GetRecords
	once     sync.Once
	blocked  sync.Once
	closed   map[string]bool // shards that end after their records
}

func (k *stopKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: k.shards}, nil
}

func (k *stopKinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	after := "0"
	if in.StartingSequenceNumber != nil {
		after = *in.StartingSequenceNumber
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(*in.ShardId + ":" + after)}, nil
}

func (k *stopKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	shard, afterS, _ := strings.Cut(*in.ShardIterator, ":")
	if shard == k.block {
		if k.bBlocked != nil {
			k.blocked.Do(func() { close(k.bBlocked) })
		}
		<-ctx.Done()
		k.once.Do(func() { close(k.bStopped) })
		time.Sleep(k.slowB)
		return nil, ctx.Err()
	}
	after, _ := strconv.Atoi(afterS)
	k.mu.Lock()
	defer k.mu.Unlock()
	out := &kinesis.GetRecordsOutput{}
	last := after
	for i := after; i < len(k.recs[shard]); i++ {
		seq := strconv.Itoa(i + 1)
		out.Records = append(out.Records, ktypes.Record{SequenceNumber: aws.String(seq), Data: k.recs[shard][i], PartitionKey: aws.String("p")})
		last = i + 1
	}
	if k.served == nil {
		k.served = map[string]int{}
	}
	k.served[shard] = max(k.served[shard], last)
	if !k.closed[shard] || last < len(k.recs[shard]) {
		out.NextShardIterator = aws.String(shard + ":" + strconv.Itoa(last))
	}
	return out, nil
}

func (k *stopKinesis) add(shard string, data ...[]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.recs[shard] = append(k.recs[shard], data...)
}

// stopSink commits in memory, checking positions like the real sink.
type stopSink struct {
	mu     sync.Mutex
	pos    map[string]string
	seqs   map[string][]string // committed sequence numbers per shard
	recent map[string][]commit.IDAt
	scans  [][]string // the shards of each RecentEventIDs call
}

func (s *stopSink) Commit(_ context.Context, b commit.Batch) (commit.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Ranges {
		if s.pos[r.Shard] != r.After {
			return commit.Result{}, commit.ErrPositionMoved
		}
	}
	if b.Records != nil {
		shards := b.Records.Column(b.Records.Schema().FieldIndices(schema.ColShardID)[0])
		seqs := b.Records.Column(b.Records.Schema().FieldIndices(schema.ColSequenceNumber)[0])
		for i := 0; i < int(b.Records.NumRows()); i++ {
			s.seqs[shards.ValueStr(i)] = append(s.seqs[shards.ValueStr(i)], seqs.ValueStr(i))
		}
	}
	for _, r := range b.Ranges {
		s.pos[r.Shard] = r.Last
	}
	return commit.Result{}, nil
}

func (s *stopSink) Positions(context.Context) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.pos {
		out[k] = v
	}
	return out, nil
}

func (s *stopSink) RecentEventIDs(_ context.Context, shards []string, _ time.Time, add func(shard, id string, at time.Time)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans = append(s.scans, slices.Clone(shards))
	for _, shard := range shards {
		for _, x := range s.recent[shard] {
			add(shard, x.ID, x.At)
		}
	}
	return nil
}

func (s *stopSink) position(shard string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos[shard]
}

// Removing one shard must not lose records another shard's reader sent
// while the removed shard's reader was still exiting. The pipeline used to
// throw such chunks away, and the other shard's position then moved past
// records that were never committed (found by the chaos harness as missing
// rows after a lease was lost).
func TestPipelineRemoveShardKeepsOtherShardsChunks(t *testing.T) {
	gen := schema.NewGenerator(1, time.Now())
	events := func(n int) [][]byte {
		var out [][]byte
		for range n {
			ev := gen.Next(time.Now())
			out = append(out, ev.AppendJSON(nil))
		}
		return out
	}
	kin := &stopKinesis{recs: map[string][][]byte{"a": events(5)}, block: "b", slowB: 600 * time.Millisecond,
		bStopped: make(chan struct{}), bBlocked: make(chan struct{})}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 50 * time.Millisecond; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink})
	ctx := runPipeline(t, p)
	if err := p.AddShard(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.AddShard(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return sink.position("a") == "5" })
	// b's reader must be inside GetRecords before b is removed: removed
	// earlier, it exits at once and the slow exit is not tested.
	receive(t, kin.bBlocked, "b's reader calls GetRecords")

	// While b's reader takes slowB to exit, a's reader reads and sends more.
	removed := make(chan error, 1)
	go func() { removed <- p.RemoveShard(ctx, "b") }()
	receive(t, kin.bStopped, "b's reader sees its context end")
	kin.add("a", events(5)...)
	select {
	case err := <-removed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RemoveShard(b) did not return")
	}
	kin.add("a", events(5)...)
	waitUntil(t, func() bool { return sink.position("a") == "15" })

	sink.mu.Lock()
	defer sink.mu.Unlock()
	got := sink.seqs["a"]
	if len(got) != 15 {
		t.Fatalf("shard a: position 15 committed with %d rows %v; want all 15", len(got), got)
	}
	for i, s := range got {
		if s != strconv.Itoa(i+1) {
			t.Fatalf("shard a: committed sequence numbers %v, want 1..15 in order", got)
		}
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (k *stopKinesis) servedAll(shard string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.served[shard] == len(k.recs[shard])
}

// A shutdown whose final batch is refused because another writer moved one
// shard's position must still commit the other shards (issue 4: SIGTERM
// commits everything read). The pipeline used to drop the whole batch and
// log "everything read was committed" (found by the chaos harness's
// SIGTERM scenario after a lease steal).
func TestPipelineShutdownCommitsShardsNotMoved(t *testing.T) {
	gen := schema.NewGenerator(2, time.Now())
	events := func(n int) [][]byte {
		var out [][]byte
		for range n {
			ev := gen.Next(time.Now())
			out = append(out, ev.AppendJSON(nil))
		}
		return out
	}
	kin := &stopKinesis{recs: map[string][][]byte{}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	// No flush before the shutdown: an hour's interval, and the records
	// appear only after the last AddShard (each command is followed by a
	// flush of what is pending).
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = time.Hour; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 5*time.Second) }()
	if err := p.AddShard(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.AddShard(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	kin.add("a", events(5)...)
	kin.add("b", events(5)...)
	waitUntil(t, func() bool { return kin.servedAll("a") && kin.servedAll("b") })
	// Another writer (the new owner of b's lease) commits b first.
	sink.mu.Lock()
	sink.pos["b"] = "3"
	sink.mu.Unlock()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sink.position("a"); got != "5" {
		t.Fatalf("after shutdown shard a is at %q in the table, want 5: what was read of a was not committed", got)
	}
	if got := sink.position("b"); got != "3" {
		t.Errorf("shard b at %q, want the other writer's 3", got)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.seqs["a"]) != 5 || len(sink.seqs["b"]) != 0 {
		t.Errorf("committed rows: a %v, b %v; want a 1..5 and nothing of b", sink.seqs["a"], sink.seqs["b"])
	}
}

// A merge then a split within the dedup window: shards 3 and 4 merge into
// 5, 5 splits into 6 and 7. An event committed on 3 whose retry lands on 6
// must be dropped, so 6's window is restored from every ancestor, not only
// its parent 5 (found by the chaos harness: the copy on the grandchild was
// stored a second time).
func TestPipelineChildWindowHasGrandparents(t *testing.T) {
	shard := func(id string, parents ...string) ktypes.Shard {
		s := ktypes.Shard{ShardId: aws.String(id)}
		if len(parents) > 0 {
			s.ParentShardId = aws.String(parents[0])
		}
		if len(parents) > 1 {
			s.AdjacentParentShardId = aws.String(parents[1])
		}
		return s
	}
	kin := &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{
		shard("3"), shard("4"), shard("5", "3", "4"), shard("6", "5"), shard("7", "5"),
	}}
	now := time.Now()
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}, recent: map[string][]commit.IDAt{
		"3": {{ID: "on-3", At: now}}, "4": {{ID: "on-4", At: now}}, "5": {{ID: "on-5", At: now}},
	}}
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = time.Hour; c.DedupWindow = time.Hour },
		PipelineDeps{Kinesis: kin, Sink: sink, Dedup: dd})
	ctx := runPipeline(t, p)
	if err := p.AddShard(ctx, "6", []string{"5"}); err != nil {
		t.Fatal(err)
	}
	b := dd.Begin("6")
	defer b.Abort()
	for _, id := range []string{"on-5", "on-3", "on-4"} {
		if !b.Check(id) {
			t.Errorf("an id committed on ancestor shard %s is not in shard 6's window", id[3:])
		}
	}
	if b.Check("new") {
		t.Error("a new id was reported as a duplicate")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if want := [][]string{{"6", "5", "3", "4"}}; !slices.EqualFunc(sink.scans, want, slices.Equal) {
		t.Errorf("window restored by scans %v, want one scan of the shard and its ancestors %v", sink.scans, want)
	}
}

// failingScanSink's RecentEventIDs gives the ids it holds and then fails,
// as a scan that loses the catalog mid-way does.
type failingScanSink struct{ *stopSink }

func (s failingScanSink) RecentEventIDs(ctx context.Context, shards []string, since time.Time, add func(shard, id string, at time.Time)) error {
	if err := s.stopSink.RecentEventIDs(ctx, shards, since, add); err != nil {
		return err
	}
	return errors.New("read data file: connection reset")
}

// A restore that fails mid-scan fails AddShard and leaves no partial window
// behind: the ids it read before failing are not a shard's whole window.
func TestPipelineFailedRestoreLeavesNoWindow(t *testing.T) {
	now := time.Now()
	sink := failingScanSink{&stopSink{pos: map[string]string{}, seqs: map[string][]string{}, recent: map[string][]commit.IDAt{
		"a": {{ID: "on-a", At: now}},
	}}}
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = time.Hour },
		PipelineDeps{Kinesis: &stopKinesis{recs: map[string][][]byte{}}, Sink: sink, Dedup: dd})
	ctx := runPipeline(t, p)
	err = p.AddShard(ctx, "a", nil)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("AddShard with a failing scan = %v, want the scan's error", err)
	}
	if n := dd.Len("a"); n != 0 {
		t.Errorf("a failed restore left %d ids in the window, want none", n)
	}
}

// newTestPipeline builds a pipeline on stream "s" from the defaults, changed
// by mod.
func newTestPipeline(t testing.TB, mod func(*PipelineConfig), d PipelineDeps) *Pipeline {
	t.Helper()
	cfg := DefaultPipelineConfig()
	cfg.Stream = "s"
	if mod != nil {
		mod(&cfg)
	}
	p, err := NewPipeline(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runPipeline runs p until the test ends, then stops it and checks that it
// returned cleanly. It returns the context to pass to AddShard.
func runPipeline(t *testing.T, p *Pipeline) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ctx
}

// receive waits for ch to be closed, failing the test after 15 s.
func receive(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting until %s", what)
	}
}
