package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// goneKinesis answers GetShardIterator for shard gone as Kinesis does once a
// closed shard's records are past retention, and lists the stream without
// it.
type goneKinesis struct {
	*stopKinesis
	gone string
}

func (k *goneKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	if aws.ToString(in.ShardId) == k.gone {
		return nil, &ktypes.ResourceNotFoundException{Message: aws.String("Shard " + k.gone + " in stream s does not exist")}
	}
	return k.stopKinesis.GetShardIterator(ctx, in, opts...)
}

// A parent shard aged out of retention is finished, so its children can be
// read; it used to fail its reader on every worker, round after round.
func TestShardAgedOutOfRetentionIsFinished(t *testing.T) {
	kin := &goneKinesis{
		stopKinesis: &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{{ShardId: aws.String("child")}}},
		gone:        "parent",
	}
	sink := &stopSink{pos: map[string]string{"parent": "41"}, seqs: map[string][]string{}}
	ended := make(chan string, 1)
	failed := make(chan string, 1)
	p := newTestPipeline(t, func(c *PipelineConfig) { c.FlushInterval = 20 * time.Millisecond },
		PipelineDeps{Kinesis: kin, Sink: sink, Hooks: Hooks{
			ShardEnded:  func(_ context.Context, s string) { ended <- s },
			ShardFailed: func(_ context.Context, s string) { failed <- s },
		}})
	ctx := runPipeline(t, p)
	if err := p.AddShard(ctx, "parent", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-ended:
		if s != "parent" {
			t.Errorf("shard %s finished, want parent", s)
		}
	case s := <-failed:
		t.Fatalf("shard %s given up as failed; an aged-out shard is finished", s)
	case <-time.After(15 * time.Second):
		t.Fatal("the aged-out shard was neither finished nor given up")
	}
	if got := sink.position("parent"); got != "41" {
		t.Errorf("parent's position %s, want 41 unchanged", got)
	}
}

// missingStream is a Kinesis whose stream cannot be listed.
type missingStream struct{ *goneKinesis }

func (missingStream) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return nil, &ktypes.ResourceNotFoundException{Message: aws.String("Stream s not found")}
}

// Only a shard missing from a stream that still lists is aged out; a
// missing stream fails the reader like any other error.
func TestAgedNeedsTheStreamToListWithoutTheShard(t *testing.T) {
	kin := &goneKinesis{stopKinesis: &stopKinesis{recs: map[string][][]byte{}, shards: []ktypes.Shard{{ShardId: aws.String("b")}}}, gone: "a"}
	notFound := &ktypes.ResourceNotFoundException{}
	for _, tc := range []struct {
		name  string
		kin   kinesisAPI
		shard string
		err   error
		want  bool
	}{
		{"shard gone, stream lists", kin, "a", notFound, true},
		{"shard still listed", kin, "b", notFound, false},
		{"stream missing", missingStream{kin}, "a", notFound, false},
		{"another error", kin, "a", context.DeadlineExceeded, false},
	} {
		r := &shardReader{kin: tc.kin, stream: "s", shard: tc.shard}
		if got := r.aged(context.Background(), tc.err); got != tc.want {
			t.Errorf("%s: aged = %v, want %v", tc.name, got, tc.want)
		}
	}
}
