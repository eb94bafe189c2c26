package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/lease"
)

// listShardsAPI is the Kinesis call KinesisShards makes.
type listShardsAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

var _ lease.ShardLister = KinesisShards{}

// KinesisShards lists the shards of a Kinesis stream: the lease.ShardLister
// a Worker passes to lease.Sync, and where the pipeline finds a shard's
// ancestors. Client is a *kinesis.Client or a fake.
type KinesisShards struct {
	Client listShardsAPI
	Stream string
}

// ListShards implements lease.ShardLister: every shard of the stream (all
// pages), parents before children as Kinesis lists them. A missing stream
// is reported as "stream not found" with Kinesis' message.
func (k KinesisShards) ListShards(ctx context.Context) ([]lease.Shard, error) {
	var shards []lease.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(k.Stream)}
	for {
		out, err := k.Client.ListShards(ctx, in)
		if err != nil {
			var nf *ktypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("list shards of %s: stream not found: %s", k.Stream, aws.ToString(nf.Message))
			}
			return nil, fmt.Errorf("list shards of %s: %w", k.Stream, err)
		}
		for _, s := range out.Shards {
			shards = append(shards, lease.Shard{
				ID:      aws.ToString(s.ShardId),
				Parents: parentsOf(s),
				Closed:  s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil,
			})
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

func parentsOf(s ktypes.Shard) []string {
	var p []string
	if s.ParentShardId != nil && *s.ParentShardId != "" {
		p = append(p, *s.ParentShardId)
	}
	if s.AdjacentParentShardId != nil && *s.AdjacentParentShardId != "" {
		p = append(p, *s.AdjacentParentShardId)
	}
	return p
}
