package ingest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paystream/paystream/pkg/schema"
)

// failKinesis serves an empty shard "a" and fails every GetRecords of
// shard "b" with an error no retry fixes.
type failKinesis struct {
	stopKinesis
}

func (k *failKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if len(*in.ShardIterator) > 0 && (*in.ShardIterator)[0] == 'b' {
		return nil, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed", Fault: smithy.FaultClient}
	}
	return k.stopKinesis.GetRecords(ctx, in, opts...)
}

// A reader that stops on an error it cannot retry gives its shard up: the
// pipeline removes it and reports it so the lease is released, instead of
// holding the lease while nothing reads the shard. The other shard goes on.
func TestPipelineGivesUpShardWhoseReaderFailed(t *testing.T) {
	kin := &failKinesis{stopKinesis{recs: map[string][][]byte{}, bStopped: make(chan struct{})}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	var mu sync.Mutex
	var failed []string
	hooks := Hooks{ShardFailed: func(_ context.Context, shard string) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, shard)
	}}
	m := NewMetrics(nil)
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 50 * time.Millisecond; c.IdlePoll = 200 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink, Hooks: hooks, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, 5*time.Second) }()
	for _, shard := range []string{"a", "b"} {
		if err := p.AddShard(ctx, shard, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failed) == 1
	})
	mu.Lock()
	if failed[0] != "b" {
		t.Errorf("ShardFailed(%q), want b", failed[0])
	}
	mu.Unlock()
	// Shard a still reads and commits.
	ev := schema.NewGenerator(3, time.Now()).Next(time.Now())
	kin.add("a", ev.AppendJSON(nil))
	waitUntil(t, func() bool { return sink.position("a") == "1" })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.readerFailures); got != 1 {
		t.Errorf("paystream_ingest_reader_failures_total = %v, want 1", got)
	}
}
