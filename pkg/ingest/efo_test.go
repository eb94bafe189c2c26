package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

const efoShard0 = "shardId-000000000000"

// efoClient is the real SDK client against url (kinesistest, or a proxy in
// front of it); retries off when noRetry, so the reader's own retries are
// what is tested.
func efoClient(t testing.TB, url string, noRetry bool) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
		if noRetry {
			o.Retryer = aws.NopRetryer{}
		}
	})
}

// efoStream creates stream "s" with n shards and registers the consumer
// "app" (ACTIVE at once on the emulator); it returns the consumer's ARN.
func efoStream(t *testing.T, kc *kinesis.Client, n int32) string {
	t.Helper()
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(n)}); err != nil {
		t.Fatal(err)
	}
	arn, err := ensureConsumer(ctx, kc, "s", "app", 10*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return arn
}

// putEvents puts n valid events with partition key key (so all to one
// shard) and returns their sequence numbers.
func putEvents(t *testing.T, kc *kinesis.Client, key string, n int) []string {
	t.Helper()
	g := schema.NewGenerator(uint64(n), time.Now())
	var seqs []string
	for n > 0 {
		batch := min(n, 500)
		entries := make([]ktypes.PutRecordsRequestEntry, batch)
		for i := range entries {
			ev := g.Next(time.Now())
			entries[i] = ktypes.PutRecordsRequestEntry{Data: ev.AppendJSON(nil), PartitionKey: aws.String(key)}
		}
		out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			t.Fatalf("%d records not put", aws.ToInt32(out.FailedRecordCount))
		}
		for _, r := range out.Records {
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		n -= batch
	}
	return seqs
}

// efoRun is an efoReader running on a goroutine, its chunks collected.
type efoRun struct {
	chunks chan chunk
	done   chan error
	cancel context.CancelFunc
}

func startEFOReader(t *testing.T, kc efoAPI, consumer, shard, after string, initial InitialPosition) *efoRun {
	t.Helper()
	return startEFOReaderRenewing(t, kc, consumer, shard, after, initial, nil)
}

// startEFOReaderRenewing is startEFOReader with the reader's way to
// register the stream consumer again (Pipeline.renewConsumer).
func startEFOReaderRenewing(t *testing.T, kc efoAPI, consumer, shard, after string, initial InitialPosition, renew func(context.Context, string) (string, error)) *efoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan chunk, 1024)
	r := &efoReader{
		shardReader: &shardReader{
			kin: kc, stream: "s", shard: shard, gen: 1, after: after, initial: initial, out: out,
			log: slog.New(slog.DiscardHandler), now: time.Now, callTimeout: 5 * time.Second,
		},
		kin: kc, consumer: consumer, silence: subscriptionSilence, renew: renew,
	}
	run := &efoRun{chunks: out, done: make(chan error, 1), cancel: cancel}
	go func() { run.done <- r.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-run.done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("efo reader of %s: %v", shard, err)
			}
		case <-time.After(10 * time.Second):
			t.Error("efo reader did not stop within 10s")
		}
	})
	return run
}

// read collects the sequence numbers of the chunks until want of them have
// arrived (failing after within), and reports whether a chunk said the
// shard ended.
func (r *efoRun) read(t *testing.T, want int, within time.Duration) (seqs []string, end bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for len(seqs) < want && !end {
		select {
		case c := <-r.chunks:
			for _, row := range c.rows {
				seqs = append(seqs, row.SequenceNumber)
			}
			for _, rej := range c.rejected {
				t.Errorf("record %s rejected: %v", rej.Sequence, rej.Reasons)
			}
			if c.last != "" && len(c.rows) > 0 && c.last != c.rows[len(c.rows)-1].SequenceNumber {
				t.Errorf("chunk's last %s is not its last row's %s", c.last, c.rows[len(c.rows)-1].SequenceNumber)
			}
			end = c.end
		case <-deadline.C:
			t.Fatalf("read %d records within %s, want %d", len(seqs), within, want)
		}
	}
	return seqs, end
}

// quiet checks that no record arrives for d (empty heartbeat chunks are
// fine).
func (r *efoRun) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case c := <-r.chunks:
			if len(c.rows) > 0 || c.end {
				t.Fatalf("unexpected chunk: %d rows, first %s, end %v", len(c.rows), c.rows[0].SequenceNumber, c.end)
			}
		case <-deadline.C:
			return
		}
	}
}

func sameSeqs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: record %d is %s, want %s", what, i, got[i], want[i])
		}
	}
}

var trimHorizon = InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}

// Subscriptions that end every 150 ms while records are put: every record
// arrives once, in order, across the resubscribes.
func TestEFOReadsEveryRecordOnceAcrossResubscribes(t *testing.T) {
	srv := kinesistest.Start(t, kinesistest.WithSubscriptionLifetime(150*time.Millisecond), kinesistest.WithResubscribeWindow(0))
	kc := efoClient(t, srv.URL, false)
	consumer := efoStream(t, kc, 1)
	before := putEvents(t, kc, "k", 300)
	run := startEFOReader(t, kc, consumer, efoShard0, "", trimHorizon)
	var want []string
	want = append(want, before...)
	for range 10 {
		want = append(want, putEvents(t, kc, "k", 100)...)
		time.Sleep(50 * time.Millisecond)
	}
	got, end := run.read(t, len(want), 20*time.Second)
	if end {
		t.Fatal("an open shard was reported ended")
	}
	sameSeqs(t, "read across resubscribes", got, want)
	run.quiet(t, 500*time.Millisecond)
	if n := srv.Stats().Requests["SubscribeToShard"]; n < 4 {
		t.Fatalf("%d SubscribeToShard calls: the subscriptions were not renewed, the test shows nothing", n)
	}
}

// A stream consumer deregistered while its shards are read (an operator's
// clean-up, a teardown of another deployment) is registered again by the
// first reader that finds it gone, and reading goes on from the reader's
// position without a restart: nothing skipped, nothing read twice.
func TestEFORegistersAgainAfterDeregistration(t *testing.T) {
	srv := kinesistest.Start(t, kinesistest.WithConsumerDelay(100*time.Millisecond),
		kinesistest.WithSubscriptionLifetime(200*time.Millisecond), kinesistest.WithResubscribeWindow(0))
	kc := efoClient(t, srv.URL, false)
	consumer := efoStream(t, kc, 1)
	p := &Pipeline{cfg: PipelineConfig{Stream: "s", ConsumerName: "app"}, efo: kc, consumerARN: consumer, log: slog.New(slog.DiscardHandler)}
	run := startEFOReaderRenewing(t, kc, consumer, efoShard0, "", trimHorizon, p.renewConsumer)
	first := putEvents(t, kc, "k", 20)
	got, _ := run.read(t, 20, 10*time.Second)
	sameSeqs(t, "read before the deregistration", got, first)

	if _, err := kc.DeregisterStreamConsumer(t.Context(), &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(consumer)}); err != nil {
		t.Fatal(err)
	}
	second := putEvents(t, kc, "k", 20)
	got, _ = run.read(t, 20, 20*time.Second)
	sameSeqs(t, "read after the consumer was registered again", got, second)
	// On a loaded machine the subscription open before the deregistration
	// can deliver the second records before it ends: wait for the reader
	// to find the consumer gone when it subscribes next.
	for deadline := time.Now().Add(10 * time.Second); srv.Stats().Requests["RegisterStreamConsumer"] < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	run.quiet(t, 300*time.Millisecond)
	if n := srv.Stats().Requests["RegisterStreamConsumer"]; n != 2 {
		t.Errorf("%d RegisterStreamConsumer calls, want 2 (start, and again once gone)", n)
	}
	if p.currentConsumer() == consumer {
		t.Error("the pipeline still holds the deregistered consumer's ARN")
	}
}

// A reader that starts from a committed position reads only what came
// after it.
func TestEFOResumesAfterPosition(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := efoClient(t, srv.URL, false)
	consumer := efoStream(t, kc, 1)
	seqs := putEvents(t, kc, "k", 50)
	run := startEFOReader(t, kc, consumer, efoShard0, seqs[19], trimHorizon)
	got, _ := run.read(t, 30, 10*time.Second)
	sameSeqs(t, "read after the 20th record", got, seqs[20:])
	more := putEvents(t, kc, "k", 5)
	got, _ = run.read(t, 5, 10*time.Second)
	sameSeqs(t, "read pushed later", got, more)
	run.quiet(t, 300*time.Millisecond)
}

// A split shard is read to its end: the reader sends the parent's last
// records, a chunk with end set, and returns; each child is then read from
// its beginning.
func TestEFOFollowsSplitToShardEnd(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := efoClient(t, srv.URL, false)
	consumer := efoStream(t, kc, 1)
	ctx := context.Background()
	parent := putEvents(t, kc, "k", 40)
	run := startEFOReader(t, kc, consumer, efoShard0, "", trimHorizon)
	got, _ := run.read(t, 40, 10*time.Second)
	sameSeqs(t, "parent before the split", got, parent)

	mid := new(big.Int).Lsh(big.NewInt(1), 127)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(efoShard0), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	child := putEvents(t, kc, "k", 10)
	got, end := run.read(t, 1, 10*time.Second)
	if len(got) > 0 || !end {
		t.Fatalf("after the split the parent's reader got %d more records, end %v; want none and the end", len(got), end)
	}
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatalf("reader of the ended parent: %v", err)
		}
		run.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("the parent's reader did not return after the shard's end")
	}

	shards, err := (KinesisShards{Client: kc, Stream: "s"}).ListShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, sh := range shards {
		if len(sh.Parents) == 0 {
			continue
		}
		r := startEFOReader(t, kc, consumer, sh.ID, "", trimHorizon)
		// Both children get a chunk at once; only one holds the records.
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case c := <-r.chunks:
				for _, row := range c.rows {
					read = append(read, row.SequenceNumber)
				}
				if len(c.rows) > 0 || c.behindMS >= 0 {
					break wait
				}
			case <-deadline:
				t.Fatalf("no chunk from child %s", sh.ID)
			}
		}
	}
	sameSeqs(t, "children", read, child)
}

// subscribeFaults is a proxy in front of the emulator that answers the
// first fail SubscribeToShard calls with a 500 InternalFailure, as Kinesis
// does on a fault of its own.
func subscribeFaults(t *testing.T, target string, fail int32) (string, *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // event streams go through at once
	var failed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".SubscribeToShard") && failed.Load() < fail {
			failed.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-ErrorType", "InternalFailure")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprint(w, `{"__type":"InternalFailure","message":"injected"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &failed
}

// Transient SubscribeToShard failures are retried with backoff: a server
// fault, and the ResourceInUseException of a subscription that comes
// within 5 s of the last one to the shard (a restarted reader).
func TestEFORetriesTransientSubscribeErrors(t *testing.T) {
	t.Run("internal failure", func(t *testing.T) {
		srv := kinesistest.Start(t)
		consumer := efoStream(t, efoClient(t, srv.URL, false), 1)
		url, failed := subscribeFaults(t, srv.URL, 3)
		kc := efoClient(t, url, true)
		seqs := putEvents(t, kc, "k", 20)
		run := startEFOReader(t, kc, consumer, efoShard0, "", trimHorizon)
		got, _ := run.read(t, 20, 15*time.Second)
		sameSeqs(t, "after failed subscriptions", got, seqs)
		if n := failed.Load(); n != 3 {
			t.Fatalf("%d subscriptions failed, want 3", n)
		}
	})
	t.Run("resource in use", func(t *testing.T) {
		srv := kinesistest.Start(t, kinesistest.WithResubscribeWindow(time.Second))
		kc := efoClient(t, srv.URL, true)
		consumer := efoStream(t, kc, 1)
		seqs := putEvents(t, kc, "k", 20)
		// Another subscription to the shard, just made.
		pos, _, _ := startingPosition("", trimHorizon)
		first, err := kc.SubscribeToShard(context.Background(), &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(consumer), ShardId: aws.String(efoShard0), StartingPosition: &pos,
		}, ownProtocol)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = first.GetStream().Close() })
		start := time.Now()
		run := startEFOReader(t, kc, consumer, efoShard0, "", trimHorizon)
		got, _ := run.read(t, 20, 15*time.Second)
		sameSeqs(t, "after the window", got, seqs)
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Fatalf("records read %s after the other subscription; the window of 1s was not in force", took)
		}
		if n := srv.Stats().Requests["SubscribeToShard"]; n < 3 {
			t.Fatalf("%d SubscribeToShard calls, want the refused ones and the retry", n)
		}
	})
}

// Registration finds a consumer another worker registered, waiting while
// it is CREATING, and refuses with ErrConsumerLimit, naming the fixes, when
// the stream has no room for it.
func TestEnsureConsumer(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	t.Run("found, waits until ACTIVE", func(t *testing.T) {
		srv := kinesistest.Start(t, kinesistest.WithConsumerDelay(300*time.Millisecond))
		kc := efoClient(t, srv.URL, true)
		if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		first, err := ensureConsumer(ctx, kc, "s", "app", 20*time.Millisecond, log)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("returned after %s, before the consumer was ACTIVE", took)
		}
		again, err := ensureConsumer(ctx, kc, "s", "app", 20*time.Millisecond, log)
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Errorf("second call got %s, want the existing %s", again, first)
		}
		if n := srv.Stats().Requests["RegisterStreamConsumer"]; n != 1 {
			t.Errorf("%d RegisterStreamConsumer calls, want 1", n)
		}
	})
	t.Run("limit", func(t *testing.T) {
		srv := kinesistest.Start(t, kinesistest.WithConsumerLimit(1))
		kc := efoClient(t, srv.URL, true)
		if _, err := ensureConsumer(ctx, kc, "s", "other", 20*time.Millisecond, log); err == nil {
			t.Fatal("consumer registered on a stream that does not exist")
		}
		if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		if _, err := ensureConsumer(ctx, kc, "s", "other", 20*time.Millisecond, log); err != nil {
			t.Fatal(err)
		}
		_, err := ensureConsumer(ctx, kc, "s", "app", 20*time.Millisecond, log)
		if !errors.Is(err, ErrConsumerLimit) {
			t.Fatalf("got %v, want ErrConsumerLimit", err)
		}
		for _, want := range []string{`"app"`, "--read-mode polling", "deregister", "LimitExceeded"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %s", err, want)
			}
		}
	})
}

func TestReadModeValidation(t *testing.T) {
	for _, tc := range []struct {
		mode, name, want string
	}{
		{"", "", ""},
		{ReadPolling, "", ""},
		{ReadEFO, "paystream-prod_1.a", ""},
		{"EFO", "app", `--read-mode "EFO": use polling`},
		{"fanout", "app", `--read-mode "fanout"`},
		{ReadEFO, "bad name", `--app-name "bad name": with --read-mode efo`},
		{ReadEFO, strings.Repeat("a", 129), "1 to 128"},
	} {
		cfg := DefaultPipelineConfig()
		cfg.Stream, cfg.ReadMode, cfg.ConsumerName = "s", tc.mode, tc.name
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mode %q name %q: %v", tc.mode, tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("mode %q name %q: %v, want an error with %q", tc.mode, tc.name, err, tc.want)
		}
	}
}

// A reader that starts from a position inside an aggregate ("SEQ:SUB":
// user records 0..SUB committed) subscribes at SEQ and hands on only the
// user records after SUB, then everything after the aggregate.
func TestEFOResumesInsideAnAggregate(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := efoClient(t, srv.URL, false)
	consumer := efoStream(t, kc, 1)
	before := putEvents(t, kc, "k", 3)
	g := schema.NewGenerator(7, time.Now())
	a, err := kpl.NewAggregator(kpl.MaxAggregateBytes)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ev := g.Next(time.Now())
		if err := a.Add(kpl.UserRecord{PartitionKey: "k", Data: ev.AppendJSON(nil)}); err != nil {
			t.Fatal(err)
		}
	}
	agg, _ := a.Flush()
	put, err := kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: agg.Data})
	if err != nil {
		t.Fatal(err)
	}
	aggSeq := aws.ToString(put.SequenceNumber)
	after := putEvents(t, kc, "k", 4)

	run := startEFOReader(t, kc, consumer, efoShard0, commit.FormatPosition(aggSeq, 3), trimHorizon)
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < 6+len(after) {
		select {
		case c := <-run.chunks:
			for _, row := range c.rows {
				got = append(got, row.SequenceNumber+"/"+strconv.FormatInt(row.SubSequence, 10))
			}
		case <-deadline:
			t.Fatalf("read %v within 10s, want the aggregate's user records 4-9 and %d records after it", got, len(after))
		}
	}
	want := []string{}
	for sub := 4; sub < 10; sub++ {
		want = append(want, aggSeq+"/"+strconv.Itoa(sub))
	}
	for _, s := range after {
		want = append(want, s+"/-1")
	}
	sameSeqs(t, "read from inside the aggregate", got, want)
	for _, s := range before {
		if slices.Contains(got, s+"/-1") {
			t.Fatalf("record %s from before the position was read", s)
		}
	}
	run.quiet(t, 300*time.Millisecond)
}
