package ingest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/schema"
)

// hangKinesis hangs the first GetRecords call of every shard until the
// call's context ends, as a call whose connection went silent does.
type hangKinesis struct {
	*stopKinesis
	hung atomic.Int32
}

func (k *hangKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	if strings.HasSuffix(*in.ShardIterator, ":0") && k.hung.Add(1) == 1 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return k.stopKinesis.GetRecords(ctx, in, opts...)
}

// A GetRecords call that never answers is abandoned after ReadTimeout and
// retried; the shard used to stay without records, its reader counted as
// running by the watchdog, until the process restarted.
func TestReaderRetriesAHungGetRecords(t *testing.T) {
	gen := schema.NewGenerator(1, time.Now())
	var recs [][]byte
	for range 3 {
		ev := gen.Next(time.Now())
		recs = append(recs, ev.AppendJSON(nil))
	}
	kin := &hangKinesis{stopKinesis: &stopKinesis{recs: map[string][][]byte{"a": recs}}}
	sink := &stopSink{pos: map[string]string{}, seqs: map[string][]string{}}
	p := newTestPipeline(t, func(c *PipelineConfig) {
		c.FlushInterval = 50 * time.Millisecond
		c.ReadTimeout = 300 * time.Millisecond
	}, PipelineDeps{Kinesis: kin, Sink: sink})
	ctx := runPipeline(t, p)
	if err := p.AddShard(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return kin.hung.Load() >= 1 })
	waitUntil(t, func() bool { return sink.position("a") == "3" })
}
