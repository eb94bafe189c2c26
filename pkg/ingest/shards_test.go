package ingest_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
)

// pagedShards answers ListShards one page at a time, or with err.
type pagedShards struct {
	pages [][]ktypes.Shard
	err   error
	calls []*kinesis.ListShardsInput
}

func (p *pagedShards) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	p.calls = append(p.calls, in)
	if p.err != nil {
		return nil, p.err
	}
	i := len(p.calls) - 1
	out := &kinesis.ListShardsOutput{Shards: p.pages[i]}
	if i+1 < len(p.pages) {
		out.NextToken = aws.String("page")
	}
	return out, nil
}

func TestKinesisShards(t *testing.T) {
	closed := &ktypes.SequenceNumberRange{StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("9")}
	open := &ktypes.SequenceNumberRange{StartingSequenceNumber: aws.String("10")}
	api := &pagedShards{pages: [][]ktypes.Shard{
		{
			{ShardId: aws.String("shardId-0"), SequenceNumberRange: closed},
			{ShardId: aws.String("shardId-1"), SequenceNumberRange: closed, ParentShardId: aws.String("shardId-0")},
		},
		{
			{ShardId: aws.String("shardId-2"), SequenceNumberRange: closed, ParentShardId: aws.String("shardId-0"), AdjacentParentShardId: aws.String("")},
			{ShardId: aws.String("shardId-3"), SequenceNumberRange: open, ParentShardId: aws.String("shardId-1"), AdjacentParentShardId: aws.String("shardId-2")},
		},
	}}
	got, err := ingest.KinesisShards{Client: api, Stream: "payments"}.ListShards(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []lease.Shard{
		{ID: "shardId-0", Closed: true},
		{ID: "shardId-1", Parents: []string{"shardId-0"}, Closed: true},
		{ID: "shardId-2", Parents: []string{"shardId-0"}, Closed: true},
		{ID: "shardId-3", Parents: []string{"shardId-1", "shardId-2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ListShards:\n got %+v\nwant %+v", got, want)
	}
	if len(api.calls) != 2 || aws.ToString(api.calls[0].StreamName) != "payments" ||
		api.calls[1].StreamName != nil || aws.ToString(api.calls[1].NextToken) != "page" {
		t.Fatalf("requests %+v: want the stream name, then the next token alone", api.calls)
	}
}

func TestKinesisShardsErrors(t *testing.T) {
	nf := &ktypes.ResourceNotFoundException{Message: aws.String("Stream payments under account 000000000000 not found.")}
	_, err := ingest.KinesisShards{Client: &pagedShards{err: nf}, Stream: "payments"}.ListShards(t.Context())
	if err == nil || !strings.Contains(err.Error(), "list shards of payments: stream not found: Stream payments under account") {
		t.Errorf("missing stream: err = %v", err)
	}
	boom := errors.New("boom")
	_, err = ingest.KinesisShards{Client: &pagedShards{err: boom}, Stream: "payments"}.ListShards(t.Context())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "payments") {
		t.Errorf("other failure: err = %v, want it wrapped with the stream name", err)
	}
}
