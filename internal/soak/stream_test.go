package soak

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/schema"
)

func kinesisClient(t *testing.T, srv *kinesistest.Server) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(srv.URL) })
}

// TestStreamIDs puts valid events, duplicates and invalid records on a
// two-shard stream, splits a shard halfway, and expects StreamIDs to find
// every distinct valid id on the parents and the children.
func TestStreamIDs(t *testing.T) {
	ctx := context.Background()
	srv := kinesistest.Start(t)
	kc := kinesisClient(t, srv)
	const stream = "soak-ids"
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	gen := schema.NewGenerator(1, now)
	put := func(n int) {
		t.Helper()
		var entries []ktypes.PutRecordsRequestEntry
		for i := range n {
			e := gen.Next(now)
			data := e.AppendJSON(nil)
			entries = append(entries, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(e.EventID)})
			if i%10 == 0 { // a producer retry: the same event again
				entries = append(entries, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(e.EventID)})
			}
		}
		entries = append(entries, ktypes.PutRecordsRequestEntry{Data: []byte(`{"event_id": 7`), PartitionKey: aws.String("bad")})
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put: %v (%d failed)", err, aws.ToInt32(out.FailedRecordCount))
		}
	}
	put(200)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("85070591730234615865843651857942052864"), // 2^126
	}); err != nil {
		t.Fatal(err)
	}
	put(300)

	got, err := StreamIDs(ctx, kc, stream, now)
	if err != nil {
		t.Fatal(err)
	}
	want := StreamCount{Shards: 4, Records: 500 + 20 + 30 + 2, Invalid: 2, Unique: 500}
	if got != want {
		t.Fatalf("StreamIDs = %+v, want %+v", got, want)
	}
}

func TestStreamIDsMissingStream(t *testing.T) {
	srv := kinesistest.Start(t)
	_, err := StreamIDs(context.Background(), kinesisClient(t, srv), "nope", time.Now())
	if err == nil || !strings.Contains(err.Error(), "list shards of nope") {
		t.Fatalf("StreamIDs on a missing stream: %v", err)
	}
}

// TestExact is the 6,000-commit soak's end: the table held every id the
// stream holds, the sent log missed the producer's last call. The table
// is checked against the stream; the sent log is only reported.
func TestExact(t *testing.T) {
	stream := StreamCount{Shards: 4, Records: 123036, Unique: 121861}
	tests := []struct {
		rows, distinct int64
		stream         StreamCount
		pass           bool
	}{
		{121861, 121861, stream, true},
		{121862, 121861, stream, false}, // a duplicate row
		{121860, 121860, stream, false}, // a lost id
		{0, 0, StreamCount{}, false},    // nothing produced proves nothing
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.rows, "/", tc.distinct, "/", tc.stream.Unique), func(t *testing.T) {
			v := Exact(tc.rows, tc.distinct, tc.stream, 121364)
			if v.Pass != tc.pass {
				t.Fatalf("Exact = %+v, want pass %v", v, tc.pass)
			}
			if !strings.Contains(v.Detail, "sent log 121364 unique") {
				t.Errorf("detail %q does not report the sent log", v.Detail)
			}
		})
	}
}
