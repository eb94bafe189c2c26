package soak

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/schema"
)

// Kinesis lists the calls StreamIDs makes; *kinesis.Client implements it.
type Kinesis interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ Kinesis = (*kinesis.Client)(nil)

// StreamCount is what a stream holds, read back from Kinesis: the truth
// the table is checked against.
type StreamCount struct {
	Shards  int // every shard listed, closed parents and children included
	Records int64
	Invalid int64 // records the decoder rejects (they go to the dead letters)
	Unique  int64 // distinct event_ids of the valid records
}

// StreamIDs reads every shard of stream from TRIM_HORIZON to its end and
// counts the distinct event_ids of the records schema.Decode accepts at
// now. Call it once nothing writes to the stream any more: an open shard
// is read until a GetRecords call returns no records, a closed one until
// Kinesis returns no next iterator. ListShards lists closed parents and
// their children alike, so a resharded stream is covered whole; the order
// shards are read in does not matter for a count.
func StreamIDs(ctx context.Context, kc Kinesis, stream string, now time.Time) (StreamCount, error) {
	var c StreamCount
	shards, err := listShards(ctx, kc, stream)
	if err != nil {
		return c, err
	}
	c.Shards = len(shards)
	ids := map[string]struct{}{}
	for _, id := range shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: aws.String(id), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return c, fmt.Errorf("iterator for shard %s: %w", id, err)
		}
		for iter := it.ShardIterator; iter != nil; {
			res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				return c, fmt.Errorf("read shard %s: %w", id, err)
			}
			for _, r := range res.Records {
				c.Records++
				e, err := schema.Decode(r.Data, now)
				if err != nil { // the consumer dead-letters it
					c.Invalid++
					continue
				}
				ids[e.EventID] = struct{}{}
			}
			if len(res.Records) == 0 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	c.Unique = int64(len(ids))
	return c, nil
}

func listShards(ctx context.Context, kc Kinesis, stream string) ([]string, error) {
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of %s: %w", stream, err)
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			return ids, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// Exact is the end-of-run verdict: the table's rows and distinct event_ids
// both equal the distinct valid event_ids the stream holds. The producer's
// sent log is reported beside it but does not decide: a PutRecords that
// lands as the producer is stopped, or whose answer is lost, is in the
// stream and the table but not in the log.
func Exact(rows, distinct int64, stream StreamCount, sentUnique int64) Verdict {
	return Verdict{
		Target: "rows = distinct event_ids = unique ids in the stream",
		Pass:   rows == distinct && distinct == stream.Unique && stream.Unique > 0,
		Detail: fmt.Sprintf("rows %d, distinct %d, unique in the stream %d (%d records on %d shards, %d invalid); sent log %d unique",
			rows, distinct, stream.Unique, stream.Records, stream.Shards, stream.Invalid, sentUnique),
	}
}
