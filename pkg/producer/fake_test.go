package producer

import (
	"context"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/schema"
)

// fakeKinesis is a hand-written Kinesis for error paths and timing: it
// keeps the records it accepted and injects whole-call and per-entry
// errors. Safe for concurrent use.
type fakeKinesis struct {
	mu      sync.Mutex
	streams map[string]int // name → shard count
	stored  []fakeRecord
	calls   []fakeCall
	seq     int

	// callErrs[i], when non-nil, is returned by the i-th PutRecords call
	// (0-based) without storing anything.
	callErrs map[int]error
	// entryErr returns an error code for an entry of a call, or "".
	entryErr func(call, attempt int, data []byte) string
	// delay is how long each PutRecords call takes.
	delay time.Duration
	// overwriteEvery > 0 makes every n-th stored record take the position
	// of the one before it, replacing it, as moto does under concurrency.
	overwriteEvery int
	overwritten    int

	attempts map[string]int // data → times offered (for entryErr)

	// creating is how many more DescribeStreamSummary calls answer
	// CREATING before the stream is ACTIVE.
	creating int
}

type fakeRecord struct {
	data    []byte
	key     string
	shard   string
	seq     string
	call    int
	arrived time.Time
}

type fakeCall struct {
	at      time.Time // when the call was answered
	entries int
	stored  int
}

func newFake(streams ...string) *fakeKinesis {
	f := &fakeKinesis{streams: map[string]int{}, attempts: map[string]int{}}
	for _, s := range streams {
		f.streams[s] = 2
	}
	return f
}

var _ Kinesis = (*fakeKinesis)(nil)

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	call := len(f.calls)
	c := fakeCall{at: time.Now(), entries: len(in.Records)}
	if err := f.callErrs[call]; err != nil {
		f.calls = append(f.calls, c)
		return nil, err
	}
	shards, ok := f.streams[aws.ToString(in.StreamName)]
	if !ok {
		f.calls = append(f.calls, c)
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream not found")}
	}
	out := &kinesis.PutRecordsOutput{}
	failed := int32(0)
	for _, e := range in.Records {
		attempt := f.attempts[string(e.Data)]
		f.attempts[string(e.Data)]++
		if f.entryErr != nil {
			if code := f.entryErr(call, attempt, e.Data); code != "" {
				failed++
				out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")})
				continue
			}
		}
		shard := fakeShard(e, shards)
		f.seq++
		seq := fmt.Sprint(f.seq)
		rec := fakeRecord{data: e.Data, key: aws.ToString(e.PartitionKey), shard: shard, seq: seq, call: call, arrived: c.at}
		if n := len(f.stored); f.overwriteEvery > 0 && f.seq%f.overwriteEvery == 0 && n > 0 {
			rec.shard, rec.seq = f.stored[n-1].shard, f.stored[n-1].seq
			shard, seq = rec.shard, rec.seq
			f.stored = f.stored[:n-1]
			f.overwritten++
		}
		f.stored = append(f.stored, rec)
		out.Records = append(out.Records, types.PutRecordsResultEntry{ShardId: aws.String(shard), SequenceNumber: aws.String(seq)})
		c.stored++
	}
	out.FailedRecordCount = aws.Int32(failed)
	f.calls = append(f.calls, c)
	return out, nil
}

func (f *fakeKinesis) DescribeStreamSummary(_ context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.streams[aws.ToString(in.StreamName)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream not found")}
	}
	status := types.StreamStatusActive
	if f.creating > 0 {
		f.creating--
		status = types.StreamStatusCreating
	}
	return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{
		StreamName: in.StreamName, StreamStatus: status, OpenShardCount: aws.Int32(int32(n)),
	}}, nil
}

func (f *fakeKinesis) CreateStream(_ context.Context, in *kinesis.CreateStreamInput, _ ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams[aws.ToString(in.StreamName)] = int(aws.ToInt32(in.ShardCount))
	return &kinesis.CreateStreamOutput{}, nil
}

// fakeShard routes an entry as Kinesis does, by its explicit hash key or
// the MD5 of its partition key, to one of n shards with the uniform hash
// key ranges ListShards gives.
func fakeShard(e types.PutRecordsRequestEntry, n int) string {
	h := hashOf(aws.ToString(e.PartitionKey))
	if e.ExplicitHashKey != nil {
		h, _ = new(big.Int).SetString(*e.ExplicitHashKey, 10)
	}
	i := new(big.Int).Div(new(big.Int).Mul(h, big.NewInt(int64(n))), new(big.Int).Lsh(big.NewInt(1), 128))
	return fmt.Sprintf("shardId-%012d", i.Int64())
}

// ListShards lists the stream's shards with uniform hash key ranges, by
// which PutRecords routes.
func (f *fakeKinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.streams[aws.ToString(in.StreamName)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("Stream not found")}
	}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	out := &kinesis.ListShardsOutput{}
	for i := range n {
		start := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i))), big.NewInt(int64(n)))
		end := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i+1))), big.NewInt(int64(n)))
		end.Sub(end, big.NewInt(1))
		out.Shards = append(out.Shards, types.Shard{
			ShardId:             aws.String(fmt.Sprintf("shardId-%012d", i)),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(start.String()), EndingHashKey: aws.String(end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		})
	}
	return out, nil
}

// streamCounts is what a reader of the stream would count.
type streamCounts struct {
	records, unique, duplicates, invalid int64
}

// countRecords classifies raw records the way the consumer will: invalid
// when schema.Decode rejects them, otherwise by event_id.
func countRecords(t *testing.T, raws [][]byte, now time.Time) streamCounts {
	t.Helper()
	var c streamCounts
	seen := map[string]bool{}
	for _, raw := range raws {
		c.records++
		e, err := schema.Decode(raw, now)
		if err != nil {
			c.invalid++
			continue
		}
		if seen[e.EventID] {
			c.duplicates++
		} else {
			seen[e.EventID] = true
			c.unique++
		}
	}
	return c
}

func (f *fakeKinesis) counts(t *testing.T) streamCounts {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	raws := make([][]byte, len(f.stored))
	for i, r := range f.stored {
		raws[i] = r.data
	}
	return countRecords(t, raws, time.Now())
}

func summaryCounts(s Summary) streamCounts {
	return streamCounts{records: s.Sent, unique: s.UniqueEventIDs, duplicates: s.DuplicatesSent, invalid: s.InvalidSent}
}
