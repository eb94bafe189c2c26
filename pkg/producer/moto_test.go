package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/schema"
)

// TestMotoRoundTrip is the acceptance check: send N records with
// duplicates and invalid ones to a 2-shard stream made by --create-stream,
// read every shard back with GetRecords, and find exactly what the summary
// and the sent log report.
func TestMotoRoundTrip(t *testing.T) {
	testenv.Moto(t)
	ctx := t.Context()
	kc, err := NewKinesisClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("roundtrip")
	cfg.CreateStream, cfg.Shards = true, 2
	cfg.Rate, cfg.Count, cfg.Batch = 0, 2000, 250
	cfg.DuplicateRate, cfg.InvalidRate, cfg.DuplicateDelay = 0.1, 0.02, 300*time.Millisecond
	cfg.SentLog = filepath.Join(t.TempDir(), "sent.ndjson")
	var report bytes.Buffer
	sum, err := Run(ctx, cfg, kc, &report, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", report.String())
	if sum.Sent != 2000 || sum.FailedAfterRetries != 0 || sum.UnknownOutcomeEntries != 0 || sum.Shards != 2 {
		t.Fatalf("summary %+v: want 2000 sent, none failed, 2 shards", sum)
	}

	recs := readStream(t, kc, "roundtrip")
	raws := make([][]byte, len(recs))
	perShard := map[string]int{}
	bySeq := map[string]types.Record{}
	for i, r := range recs {
		raws[i] = r.Data
		perShard[r.shard]++
		bySeq[r.shard+"/"+aws.ToString(r.SequenceNumber)] = r.Record
		if e, err := schema.Decode(r.Data, time.Now()); err == nil && aws.ToString(r.PartitionKey) != e.CustomerID {
			t.Fatalf("record %s has partition key %q, want customer_id %q", e.EventID, aws.ToString(r.PartitionKey), e.CustomerID)
		}
	}
	got := countRecords(t, raws, time.Now())
	if got != summaryCounts(sum) {
		t.Fatalf("read back %+v, summary says %+v", got, summaryCounts(sum))
	}
	if got.duplicates == 0 || got.invalid == 0 || len(perShard) != 2 {
		t.Fatalf("want duplicates, invalid records and both shards used; got %+v over shards %v", got, perShard)
	}

	// The sent log names every record in the stream once, with its kind.
	kinds := map[string]int64{}
	for _, line := range readLines(t, cfg.SentLog) {
		var s Sent
		if err := json.Unmarshal(line, &s); err != nil {
			t.Fatalf("sent log line %q: %v", line, err)
		}
		pos := s.ShardID + "/" + s.SequenceNumber
		r, ok := bySeq[pos]
		if !ok {
			t.Fatalf("sent log names %s, which is not in the stream (or named twice)", pos)
		}
		delete(bySeq, pos)
		e, err := schema.Decode(r.Data, time.Now())
		switch {
		case s.Kind == KindInvalid && err == nil:
			t.Fatalf("sent log says %s is invalid, but it decodes", pos)
		case s.Kind != KindInvalid && (err != nil || e.EventID != s.EventID):
			t.Fatalf("sent log says %s is %s event %s; stream has %s (%v)", pos, s.Kind, s.EventID, e.EventID, err)
		}
		kinds[s.Kind]++
	}
	if len(bySeq) != 0 || kinds[KindValid] != got.unique || kinds[KindDuplicate] != got.duplicates || kinds[KindInvalid] != got.invalid {
		t.Fatalf("sent log kinds %v, %d stream records not in it; stream %+v", kinds, len(bySeq), got)
	}
}

func TestMotoUnknownStreamFails(t *testing.T) {
	endpoint := testenv.Moto(t)
	kc, err := NewKinesisClient(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), testConfig("missing"), kc, io.Discard, io.Discard)
	if !errors.Is(err, ErrStreamNotFound) {
		t.Fatalf("want ErrStreamNotFound, got %v", err)
	}
	for _, want := range []string{`stream "missing" not found`, endpoint, "create it or pass --create-stream"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestUnreachableEndpointFailsFast: nothing listening, and a server that
// accepts but never answers, both fail within --connect-timeout naming the
// endpoint.
func TestUnreachableEndpointFailsFast(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://127.0.0.1:" + strconv.Itoa(port)

	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // hold it open, never answer
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-accepted
		for _, c := range conns {
			_ = c.Close()
		}
	})
	silent := "http://" + ln.Addr().String()

	for _, endpoint := range []string{closed, silent} {
		t.Run(endpoint, func(t *testing.T) {
			kc := testClient(t, endpoint)
			cfg := testConfig("s")
			cfg.ConnectTimeout = time.Second
			start := time.Now()
			_, err := Run(t.Context(), cfg, kc, io.Discard, io.Discard)
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %s with --connect-timeout 1s", el)
			}
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), endpoint) {
				t.Fatalf("want ErrUnreachable naming %s, got %v", endpoint, err)
			}
		})
	}
}

func testClient(t testing.TB, endpoint string) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(testenv.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

type shardRecord struct {
	types.Record
	shard string
}

// readStream reads every shard of a stream from the start until a read
// comes back empty. Use only after the writers are done.
func readStream(t testing.TB, kc *kinesis.Client, stream string) []shardRecord {
	t.Helper()
	ctx := context.Background()
	var out []shardRecord
	var next *string
	for {
		in := &kinesis.ListShardsInput{NextToken: next}
		if next == nil {
			in.StreamName = aws.String(stream)
		}
		ls, err := kc.ListShards(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range ls.Shards {
			it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
				StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
			})
			if err != nil {
				t.Fatal(err)
			}
			iter := it.ShardIterator
			for iter != nil {
				gr, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range gr.Records {
					out = append(out, shardRecord{r, aws.ToString(sh.ShardId)})
				}
				if len(gr.Records) == 0 {
					break
				}
				iter = gr.NextShardIterator
			}
		}
		if next = ls.NextToken; next == nil {
			return out
		}
	}
}
