package kinesistest_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/paystream/paystream/internal/kinesistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's HTTP client.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// fakeClock is a settable clock for the server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// client returns a real SDK client for srv. Retries are off unless retry is
// set, so tests see every error the server sends.
func client(t *testing.T, srv *kinesistest.Server, retry bool) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		if !retry {
			o.Retryer = aws.NopRetryer{}
		}
	})
}

func createStream(t *testing.T, kc *kinesis.Client, name string, shards int32) {
	t.Helper()
	if _, err := kc.CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
}

func listAll(t *testing.T, kc *kinesis.Client, name string) []ktypes.Shard {
	t.Helper()
	var out []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
	for {
		page, err := kc.ListShards(context.Background(), in)
		if err != nil {
			t.Fatalf("list shards: %v", err)
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

func byID(shards []ktypes.Shard) map[string]ktypes.Shard {
	m := map[string]ktypes.Shard{}
	for _, s := range shards {
		m[aws.ToString(s.ShardId)] = s
	}
	return m
}

func openShards(shards []ktypes.Shard) []ktypes.Shard {
	var out []ktypes.Shard
	for _, s := range shards {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			out = append(out, s)
		}
	}
	return out
}

func bigOf(t *testing.T, s *string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(aws.ToString(s), 10)
	if !ok {
		t.Fatalf("%q is not a decimal", aws.ToString(s))
	}
	return v
}

func hashOf(key string) *big.Int {
	sum := md5.Sum([]byte(key))
	return new(big.Int).SetBytes(sum[:])
}

func contains(t *testing.T, s ktypes.Shard, h *big.Int) bool {
	t.Helper()
	return bigOf(t, s.HashKeyRange.StartingHashKey).Cmp(h) <= 0 && h.Cmp(bigOf(t, s.HashKeyRange.EndingHashKey)) <= 0
}

func iterator(t *testing.T, kc *kinesis.Client, stream, shard string, typ ktypes.ShardIteratorType, seq string) *string {
	t.Helper()
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shard), ShardIteratorType: typ}
	if seq != "" {
		in.StartingSequenceNumber = aws.String(seq)
	}
	out, err := kc.GetShardIterator(context.Background(), in)
	if err != nil {
		t.Fatalf("get shard iterator %s %s: %v", shard, typ, err)
	}
	return out.ShardIterator
}

// readAll reads a shard from it until it ends (nil iterator) or a call
// returns nothing; it reports whether the shard ended.
func readAll(t *testing.T, kc *kinesis.Client, it *string) ([]ktypes.Record, bool, *kinesis.GetRecordsOutput) {
	t.Helper()
	var recs []ktypes.Record
	for {
		out, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			t.Fatalf("get records: %v", err)
		}
		recs = append(recs, out.Records...)
		if out.NextShardIterator == nil {
			return recs, true, out
		}
		if len(out.Records) == 0 {
			return recs, false, out
		}
		it = out.NextShardIterator
	}
}

func put(t *testing.T, kc *kinesis.Client, stream string, keys ...string) []ktypes.PutRecordsResultEntry {
	t.Helper()
	var entries []ktypes.PutRecordsRequestEntry
	for _, k := range keys {
		entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: []byte("data-" + k)})
	}
	out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		t.Fatalf("put records: %v", err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
		t.Fatalf("%d records failed", n)
	}
	return out.Records
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func seqLess(t *testing.T, a, b *string) bool {
	t.Helper()
	return bigOf(t, a).Cmp(bigOf(t, b)) < 0
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 2)

	shards := listAll(t, kc, "s")
	if len(shards) != 2 {
		t.Fatalf("%d shards, want 2", len(shards))
	}
	// Uniform ranges as AWS makes them.
	if got := aws.ToString(shards[0].HashKeyRange.EndingHashKey); got != "170141183460469231731687303715884105727" {
		t.Errorf("shard 0 ends at %s", got)
	}
	if got := aws.ToString(shards[1].HashKeyRange.EndingHashKey); got != "340282366920938463463374607431768211455" {
		t.Errorf("shard 1 ends at %s", got)
	}

	one, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("solo"), Data: []byte{0, 1, 2, 255}})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(1500 * time.Millisecond)
	ks := keys("k", 200)
	res := put(t, kc, "s", ks...)
	sent := map[string]string{"solo": aws.ToString(one.ShardId)} // key → shard
	for i, r := range res {
		sent[ks[i]] = aws.ToString(r.ShardId)
		if n := len(aws.ToString(r.SequenceNumber)); n != 56 {
			t.Fatalf("sequence number %q has %d digits, want 56", aws.ToString(r.SequenceNumber), n)
		}
	}
	shardOf := byID(shards)
	for k, id := range sent {
		if !contains(t, shardOf[id], hashOf(k)) {
			t.Errorf("key %s went to %s, whose range does not hold its MD5", k, id)
		}
	}
	clk.Advance(2 * time.Second)

	got := map[string]string{}
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		it := iterator(t, kc, "s", id, ktypes.ShardIteratorTypeTrimHorizon, "")
		// A small Limit pages, and MillisBehindLatest says how far behind.
		out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(3)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Records) != 3 || out.NextShardIterator == nil {
			t.Fatalf("limit 3 returned %d records, next %v", len(out.Records), out.NextShardIterator)
		}
		if behind := aws.ToInt64(out.MillisBehindLatest); behind < 2000 {
			t.Errorf("MillisBehindLatest %d after reading 3 of many records written 2 s ago", behind)
		}
		rest, ended, last := readAll(t, kc, out.NextShardIterator)
		if ended {
			t.Fatal("open shard ended")
		}
		if aws.ToInt64(last.MillisBehindLatest) != 0 {
			t.Errorf("MillisBehindLatest %d at the tip, want 0", aws.ToInt64(last.MillisBehindLatest))
		}
		recs := append(out.Records, rest...)
		for i, r := range recs {
			k := aws.ToString(r.PartitionKey)
			got[k] = id
			if i > 0 && !seqLess(t, recs[i-1].SequenceNumber, r.SequenceNumber) {
				t.Errorf("sequence numbers not increasing on %s: %s then %s", id, aws.ToString(recs[i-1].SequenceNumber), aws.ToString(r.SequenceNumber))
			}
			want := []byte("data-" + k)
			at := clk.Now().Add(-2 * time.Second)
			if k == "solo" {
				want, at = []byte{0, 1, 2, 255}, at.Add(-1500*time.Millisecond)
			}
			if !bytes.Equal(r.Data, want) {
				t.Errorf("record %s data %q, want %q", k, r.Data, want)
			}
			if r.ApproximateArrivalTimestamp == nil || !r.ApproximateArrivalTimestamp.Equal(at) {
				t.Errorf("record %s arrived %v, want %v", k, r.ApproximateArrivalTimestamp, at)
			}
		}
	}
	if len(got) != len(sent) {
		t.Fatalf("read %d records, sent %d", len(got), len(sent))
	}
	for k, id := range sent {
		if got[k] != id {
			t.Errorf("record %s put to %s, read from %s", k, id, got[k])
		}
	}
}

func TestIteratorTypes(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	const sh = "shardId-000000000000"
	first := put(t, kc, "s", keys("a", 5)...)
	clk.Advance(time.Minute)
	mark := clk.Now()
	second := put(t, kc, "s", keys("b", 5)...)
	latest := iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeLatest, "")
	third := put(t, kc, "s", keys("c", 2)...)

	seqs := func(recs []ktypes.Record) []string {
		var s []string
		for _, r := range recs {
			s = append(s, aws.ToString(r.SequenceNumber))
		}
		return s
	}
	want := func(res ...[]ktypes.PutRecordsResultEntry) []string {
		var s []string
		for _, r := range res {
			for _, e := range r {
				s = append(s, aws.ToString(e.SequenceNumber))
			}
		}
		return s
	}
	check := func(name string, it *string, exp []string) {
		t.Helper()
		recs, _, _ := readAll(t, kc, it)
		if got := seqs(recs); strings.Join(got, ",") != strings.Join(exp, ",") {
			t.Errorf("%s: read %d records %v, want %d %v", name, len(got), got, len(exp), exp)
		}
	}
	check("TRIM_HORIZON", iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeTrimHorizon, ""), want(first, second, third))
	check("LATEST", latest, want(third))
	check("AT_SEQUENCE_NUMBER", iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeAtSequenceNumber, aws.ToString(second[2].SequenceNumber)), want(second[2:], third))
	check("AFTER_SEQUENCE_NUMBER", iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeAfterSequenceNumber, aws.ToString(second[2].SequenceNumber)), want(second[3:], third))
	check("AFTER last", iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeAfterSequenceNumber, aws.ToString(third[1].SequenceNumber)), nil)

	out, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(sh), ShardIteratorType: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(mark)})
	if err != nil {
		t.Fatal(err)
	}
	check("AT_TIMESTAMP", out.ShardIterator, want(second, third))

	// An iterator can be used again while it is valid.
	it := iterator(t, kc, "s", sh, ktypes.ShardIteratorTypeTrimHorizon, "")
	check("reused once", it, want(first, second, third))
	check("reused twice", it, want(first, second, third))

	// Bad input is an InvalidArgumentException.
	_, err = kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(sh), ShardIteratorType: ktypes.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String("12")})
	var ia *ktypes.InvalidArgumentException
	if !errors.As(err, &ia) {
		t.Errorf("malformed sequence number: %v, want InvalidArgumentException", err)
	}
	_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("not-an-iterator")})
	if !errors.As(err, &ia) {
		t.Errorf("bad iterator: %v, want InvalidArgumentException", err)
	}
	_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(10_001)})
	if !errors.As(err, &ia) {
		t.Errorf("Limit 10001: %v, want InvalidArgumentException", err)
	}
	_, err = kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	var nf *ktypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("unknown shard: %v, want ResourceNotFoundException", err)
	}
}

func TestSequenceNumberOfAnotherShard(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	createStream(t, kc, "s", 2)
	res := put(t, kc, "s", keys("k", 20)...)
	var seq0 string
	for _, r := range res {
		if aws.ToString(r.ShardId) == "shardId-000000000000" {
			seq0 = aws.ToString(r.SequenceNumber)
		}
	}
	if seq0 == "" {
		t.Fatal("no record went to shard 0")
	}
	_, err := kc.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{
		StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000001"),
		ShardIteratorType: ktypes.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seq0),
	})
	var ia *ktypes.InvalidArgumentException
	if !errors.As(err, &ia) || !strings.Contains(aws.ToString(ia.Message), "shardId-000000000000") {
		t.Fatalf("shard 0's sequence number on shard 1: %v, want InvalidArgumentException naming shard 0", err)
	}
}

func TestIteratorExpiry(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithIteratorTTL(time.Minute))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	put(t, kc, "s", "a")
	it := iterator(t, kc, "s", "shardId-000000000000", ktypes.ShardIteratorTypeTrimHorizon, "")
	clk.Advance(time.Minute)
	out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	if err != nil {
		t.Fatalf("iterator at its TTL: %v", err)
	}
	// The next iterator is issued now, so it lives a full TTL again.
	clk.Advance(time.Minute)
	if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator}); err != nil {
		t.Fatalf("next iterator within its TTL: %v", err)
	}
	clk.Advance(time.Millisecond)
	_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	var exp *ktypes.ExpiredIteratorException
	if !errors.As(err, &exp) {
		t.Fatalf("iterator past its TTL: %v, want ExpiredIteratorException", err)
	}
	if got := srv.Stats().IteratorsExpired; got != 1 {
		t.Errorf("Stats.IteratorsExpired %d, want 1", got)
	}
}

func TestSplitAndMergeLifecycle(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	const parent = "shardId-000000000000"
	before := put(t, kc, "s", keys("k", 50)...)

	mid := new(big.Int).Lsh(big.NewInt(1), 127)
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	shards := byID(listAll(t, kc, "s"))
	if len(shards) != 3 {
		t.Fatalf("%d shards after a split, want 3", len(shards))
	}
	p := shards[parent]
	if p.SequenceNumberRange.EndingSequenceNumber == nil {
		t.Fatal("parent still open after the split")
	}
	left, right := shards["shardId-000000000001"], shards["shardId-000000000002"]
	for _, c := range []ktypes.Shard{left, right} {
		if aws.ToString(c.ParentShardId) != parent || c.AdjacentParentShardId != nil {
			t.Errorf("child %s parents %v/%v, want %s", aws.ToString(c.ShardId), aws.ToString(c.ParentShardId), aws.ToString(c.AdjacentParentShardId), parent)
		}
		if c.SequenceNumberRange.EndingSequenceNumber != nil {
			t.Errorf("child %s closed", aws.ToString(c.ShardId))
		}
		if !seqLess(t, p.SequenceNumberRange.EndingSequenceNumber, c.SequenceNumberRange.StartingSequenceNumber) {
			t.Errorf("child %s starts at %s, not after the parent's end %s", aws.ToString(c.ShardId), aws.ToString(c.SequenceNumberRange.StartingSequenceNumber), aws.ToString(p.SequenceNumberRange.EndingSequenceNumber))
		}
	}
	if aws.ToString(left.HashKeyRange.StartingHashKey) != "0" ||
		aws.ToString(left.HashKeyRange.EndingHashKey) != new(big.Int).Sub(mid, big.NewInt(1)).String() ||
		aws.ToString(right.HashKeyRange.StartingHashKey) != mid.String() ||
		aws.ToString(right.HashKeyRange.EndingHashKey) != aws.ToString(p.HashKeyRange.EndingHashKey) {
		t.Errorf("children ranges %v %v do not split %v at %s", left.HashKeyRange, right.HashKeyRange, p.HashKeyRange, mid)
	}

	// New writes go to the children, by hash range.
	ks := keys("after", 50)
	res := put(t, kc, "s", ks...)
	for i, r := range res {
		id := aws.ToString(r.ShardId)
		if id == parent {
			t.Fatalf("record %s written to the closed parent", ks[i])
		}
		if !contains(t, shards[id], hashOf(ks[i])) {
			t.Errorf("record %s in %s whose range does not hold it", ks[i], id)
		}
		if !seqLess(t, p.SequenceNumberRange.EndingSequenceNumber, r.SequenceNumber) {
			t.Errorf("child record %s not above the parent's ending sequence number", aws.ToString(r.SequenceNumber))
		}
	}

	// The parent keeps its records with their sequence numbers, and ends.
	recs, ended, last := readAll(t, kc, iterator(t, kc, "s", parent, ktypes.ShardIteratorTypeTrimHorizon, ""))
	if !ended {
		t.Fatal("closed parent read to its end still returns a next iterator")
	}
	if len(recs) != len(before) {
		t.Fatalf("parent holds %d records, %d were written before the split", len(recs), len(before))
	}
	for i, r := range recs {
		if aws.ToString(r.SequenceNumber) != aws.ToString(before[i].SequenceNumber) {
			t.Fatalf("parent record %d has sequence number %s, was %s", i, aws.ToString(r.SequenceNumber), aws.ToString(before[i].SequenceNumber))
		}
	}
	if len(last.ChildShards) != 2 {
		t.Errorf("end of parent lists %d child shards, want 2", len(last.ChildShards))
	}
	// Reading from the middle of the parent: the rest, then the end.
	mid3, ended, _ := readAll(t, kc, iterator(t, kc, "s", parent, ktypes.ShardIteratorTypeAfterSequenceNumber, aws.ToString(before[46].SequenceNumber)))
	if !ended || len(mid3) != 3 {
		t.Errorf("after record 46 of 50: %d records, ended %v; want 3, true", len(mid3), ended)
	}
	// After the parent's last record: nothing, and the end at once.
	none, ended, _ := readAll(t, kc, iterator(t, kc, "s", parent, ktypes.ShardIteratorTypeAfterSequenceNumber, aws.ToString(before[49].SequenceNumber)))
	if !ended || len(none) != 0 {
		t.Errorf("after the parent's last record: %d records, ended %v", len(none), ended)
	}

	// A closed shard cannot be split or merged again.
	_, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(mid.String())})
	var inUse *ktypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Errorf("split a closed shard: %v, want ResourceInUseException", err)
	}
	// A hash key outside the shard is rejected.
	_, err = kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: left.ShardId, NewStartingHashKey: aws.String(mid.String())})
	var ia *ktypes.InvalidArgumentException
	if !errors.As(err, &ia) {
		t.Errorf("split outside the range: %v, want InvalidArgumentException", err)
	}

	// Merge the children back.
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: right.ShardId, AdjacentShardToMerge: left.ShardId}); err != nil {
		t.Fatal(err)
	}
	shards = byID(listAll(t, kc, "s"))
	m := shards["shardId-000000000003"]
	if aws.ToString(m.ParentShardId) != "shardId-000000000002" || aws.ToString(m.AdjacentParentShardId) != "shardId-000000000001" {
		t.Errorf("merged shard parents %s/%s", aws.ToString(m.ParentShardId), aws.ToString(m.AdjacentParentShardId))
	}
	if aws.ToString(m.HashKeyRange.StartingHashKey) != "0" || aws.ToString(m.HashKeyRange.EndingHashKey) != aws.ToString(p.HashKeyRange.EndingHashKey) {
		t.Errorf("merged range %v", m.HashKeyRange)
	}
	for _, id := range []string{"shardId-000000000001", "shardId-000000000002"} {
		recs, ended, last := readAll(t, kc, iterator(t, kc, "s", id, ktypes.ShardIteratorTypeTrimHorizon, ""))
		if !ended || len(recs) == 0 {
			t.Errorf("merged parent %s: %d records, ended %v", id, len(recs), ended)
		}
		if len(last.ChildShards) != 1 || aws.ToString(last.ChildShards[0].ShardId) != "shardId-000000000003" || len(last.ChildShards[0].ParentShards) != 2 {
			t.Errorf("merged parent %s child shards %+v", id, last.ChildShards)
		}
	}
	res = put(t, kc, "s", "x", "y", "z")
	for _, r := range res {
		if aws.ToString(r.ShardId) != "shardId-000000000003" {
			t.Errorf("write after the merge went to %s", aws.ToString(r.ShardId))
		}
	}
	// Only open, adjacent shards merge.
	createStream(t, kc, "three", 3)
	_, err = kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("three"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000002")})
	if !errors.As(err, &ia) {
		t.Errorf("merge non-adjacent shards: %v, want InvalidArgumentException", err)
	}
}

func TestReshardDelay(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithReshardDelay(5*time.Second))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 2)
	status := func() ktypes.StreamStatus {
		out, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
		if err != nil {
			t.Fatal(err)
		}
		return out.StreamDescriptionSummary.StreamStatus
	}
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != ktypes.StreamStatusUpdating {
		t.Fatalf("status %s during the reshard, want UPDATING", s)
	}
	// Meanwhile writes still go to the parents and a second reshard waits.
	for _, r := range put(t, kc, "s", keys("k", 20)...) {
		if id := aws.ToString(r.ShardId); id != "shardId-000000000000" && id != "shardId-000000000001" {
			t.Fatalf("write during UPDATING went to %s", id)
		}
	}
	_, err := kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(4), ScalingType: ktypes.ScalingTypeUniformScaling})
	var inUse *ktypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("reshard while UPDATING: %v, want ResourceInUseException", err)
	}
	clk.Advance(5 * time.Second)
	if s := status(); s != ktypes.StreamStatusActive {
		t.Fatalf("status %s after the delay, want ACTIVE", s)
	}
	if n := len(openShards(listAll(t, kc, "s"))); n != 1 {
		t.Fatalf("%d open shards after the merge, want 1", n)
	}
}

func TestUpdateShardCount(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 2)
	for _, n := range []int32{3, 6, 4, 2, 1, 2} {
		if _, err := kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(n), ScalingType: ktypes.ScalingTypeUniformScaling}); err != nil {
			t.Fatalf("update shard count to %d: %v", n, err)
		}
		all := listAll(t, kc, "s")
		open := openShards(all)
		if len(open) != int(n) {
			t.Fatalf("%d open shards, want %d", len(open), n)
		}
		// Open shards are n uniform ranges.
		sort.Slice(open, func(i, j int) bool {
			return bigOf(t, open[i].HashKeyRange.StartingHashKey).Cmp(bigOf(t, open[j].HashKeyRange.StartingHashKey)) < 0
		})
		for i, sh := range open {
			start := new(big.Int).Lsh(big.NewInt(int64(i)), 128)
			start.Div(start, big.NewInt(int64(n)))
			if got := bigOf(t, sh.HashKeyRange.StartingHashKey); got.Cmp(start) != 0 {
				t.Errorf("target %d: open shard %d starts at %s, want %s", n, i, got, start)
			}
		}
		// Lineage: every parent exists and is closed; no shard has more
		// than two parents; every closed shard has children.
		ids := byID(all)
		hasChild := map[string]bool{}
		for _, sh := range all {
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if p == nil {
					continue
				}
				ps, ok := ids[*p]
				if !ok || ps.SequenceNumberRange.EndingSequenceNumber == nil {
					t.Errorf("shard %s has parent %s that is missing or open", aws.ToString(sh.ShardId), *p)
				}
				hasChild[*p] = true
			}
		}
		for _, sh := range all {
			if sh.SequenceNumberRange.EndingSequenceNumber != nil && !hasChild[aws.ToString(sh.ShardId)] {
				t.Errorf("closed shard %s has no child", aws.ToString(sh.ShardId))
			}
		}
		ks := keys(fmt.Sprint("n", n), 30)
		for i, r := range put(t, kc, "s", ks...) {
			if sh := ids[aws.ToString(r.ShardId)]; sh.SequenceNumberRange.EndingSequenceNumber != nil || !contains(t, sh, hashOf(ks[i])) {
				t.Errorf("record %s went to %s", ks[i], aws.ToString(r.ShardId))
			}
		}
	}
	_, err := kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(5), ScalingType: ktypes.ScalingTypeUniformScaling})
	var ia *ktypes.InvalidArgumentException
	if !errors.As(err, &ia) {
		t.Errorf("more than double: %v, want InvalidArgumentException", err)
	}
}

func TestListShardsPaging(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 5)
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(2)})
	for {
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Shards) > 2 {
			t.Fatalf("page of %d shards with MaxResults 2", len(out.Shards))
		}
		for _, s := range out.Shards {
			ids = append(ids, aws.ToString(s.ShardId))
		}
		if out.NextToken == nil {
			break
		}
		out, err = kc.ListShards(ctx, &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(2)})
	}
	if got := strings.Join(ids, " "); got != "shardId-000000000000 shardId-000000000001 shardId-000000000002 shardId-000000000003 shardId-000000000004 shardId-000000000005" {
		t.Errorf("paged shard ids %s", got)
	}

	first, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), MaxResults: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	var ia *ktypes.InvalidArgumentException
	if _, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), NextToken: first.NextToken}); !errors.As(err, &ia) {
		t.Errorf("NextToken with StreamName: %v, want InvalidArgumentException", err)
	}
	clk.Advance(5*time.Minute + time.Second)
	var expired *ktypes.ExpiredNextTokenException
	if _, err := kc.ListShards(ctx, &kinesis.ListShardsInput{NextToken: first.NextToken}); !errors.As(err, &expired) {
		t.Errorf("old NextToken: %v, want ExpiredNextTokenException", err)
	}

	after, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ExclusiveStartShardId: aws.String("shardId-000000000003")})
	if err != nil || len(after.Shards) != 2 {
		t.Errorf("ExclusiveStartShardId: %d shards, err %v; want 2", len(after.Shards), err)
	}
	latest, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &ktypes.ShardFilter{Type: ktypes.ShardFilterTypeAtLatest}})
	if err != nil || len(latest.Shards) != 4 {
		t.Errorf("AT_LATEST: %d shards, err %v; want the 4 open ones", len(latest.Shards), err)
	}

	desc, err := kc.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("s"), Limit: aws.Int32(4)})
	if err != nil {
		t.Fatal(err)
	}
	d := desc.StreamDescription
	if len(d.Shards) != 4 || !aws.ToBool(d.HasMoreShards) || d.StreamStatus != ktypes.StreamStatusActive || !strings.HasSuffix(aws.ToString(d.StreamARN), ":stream/s") {
		t.Errorf("DescribeStream: %d shards, more %v, status %s, arn %s", len(d.Shards), aws.ToBool(d.HasMoreShards), d.StreamStatus, aws.ToString(d.StreamARN))
	}
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount); got != 4 {
		t.Errorf("OpenShardCount %d, want 4", got)
	}
	if !sum.StreamDescriptionSummary.StreamCreationTimestamp.Equal(newClock().Now()) {
		t.Errorf("StreamCreationTimestamp %v", sum.StreamDescriptionSummary.StreamCreationTimestamp)
	}
}

func TestThrottling(t *testing.T) {
	srv := kinesistest.Start(t, kinesistest.WithFaults(kinesistest.Faults{
		GetRecords: kinesistest.Throttle{Every: 3},
		PutRecords: kinesistest.Throttle{Every: 4, Burst: 2},
	}))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)

	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []ktypes.PutRecordsRequestEntry{
		{PartitionKey: aws.String("1"), Data: []byte("1")}, {PartitionKey: aws.String("2"), Data: []byte("2")},
		{PartitionKey: aws.String("3"), Data: []byte("3")}, {PartitionKey: aws.String("4"), Data: []byte("4")},
		{PartitionKey: aws.String("5"), Data: []byte("5")}, {PartitionKey: aws.String("6"), Data: []byte("6")},
		{PartitionKey: aws.String("7"), Data: []byte("7")}, {PartitionKey: aws.String("8"), Data: []byte("8")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var pattern []string
	for _, r := range out.Records {
		if r.ErrorCode != nil {
			pattern = append(pattern, aws.ToString(r.ErrorCode))
			if r.SequenceNumber != nil {
				t.Errorf("failed entry has a sequence number")
			}
		} else {
			pattern = append(pattern, "ok")
		}
	}
	const pt = "ProvisionedThroughputExceededException"
	if want := []string{"ok", "ok", pt, pt, "ok", "ok", pt, pt}; strings.Join(pattern, ",") != strings.Join(want, ",") {
		t.Errorf("PutRecords entries %v, want %v", pattern, want)
	}
	if aws.ToInt32(out.FailedRecordCount) != 4 {
		t.Errorf("FailedRecordCount %d, want 4", aws.ToInt32(out.FailedRecordCount))
	}

	it := iterator(t, kc, "s", "shardId-000000000000", ktypes.ShardIteratorTypeTrimHorizon, "")
	var got []bool
	for range 6 {
		_, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
		var pte *ktypes.ProvisionedThroughputExceededException
		if err != nil && !errors.As(err, &pte) {
			t.Fatalf("get records: %v", err)
		}
		got = append(got, err != nil)
	}
	if fmt.Sprint(got) != "[false false true false false true]" {
		t.Errorf("GetRecords throttled %v, want every third", got)
	}
	st := srv.Stats()
	if st.GetRecordsThrottled != 2 || st.PutThrottled != 4 || st.RecordsPut != 4 {
		t.Errorf("stats %+v", st)
	}

	// The SDK's retries ride over a single throttle.
	if err := srv.SetFaults(kinesistest.Faults{GetRecords: kinesistest.Throttle{Every: 2}}); err != nil {
		t.Fatal(err)
	}
	retrying := client(t, srv, true)
	for range 3 {
		if _, err := retrying.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}); err != nil {
			t.Fatalf("with SDK retries: %v", err)
		}
	}

	// A rule for some shards leaves the others alone.
	createStream(t, kc, "two", 2)
	if err := srv.SetFaults(kinesistest.Faults{GetRecords: kinesistest.Throttle{Every: 1, Shards: []string{"shardId-000000000001"}}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true} {
		id := fmt.Sprintf("shardId-%012d", i)
		_, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iterator(t, kc, "two", id, ktypes.ShardIteratorTypeTrimHorizon, "")})
		if got := err != nil; got != want {
			t.Errorf("%s throttled %v (%v), want %v", id, got, err, want)
		}
	}

	if err := srv.SetFaults(kinesistest.Faults{GetRecords: kinesistest.Throttle{Every: 2, Burst: 3}}); err == nil {
		t.Error("Burst above Every accepted")
	}
}

func TestThrottleProbabilityIsSeeded(t *testing.T) {
	run := func(seed uint64) string {
		srv := kinesistest.Start(t, kinesistest.WithFaults(kinesistest.Faults{GetRecords: kinesistest.Throttle{Probability: 0.5}, Seed: seed}))
		kc := client(t, srv, false)
		createStream(t, kc, "s", 1)
		it := iterator(t, kc, "s", "shardId-000000000000", ktypes.ShardIteratorTypeTrimHorizon, "")
		var b strings.Builder
		for range 40 {
			if _, err := kc.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: it}); err != nil {
				wantCode(t, err, "ProvisionedThroughputExceededException")
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b, c := run(7), run(7), run(8)
	if a != b {
		t.Errorf("seed 7 gave %s then %s", a, b)
	}
	if a == c {
		t.Errorf("seeds 7 and 8 gave the same pattern %s", a)
	}
	if n := strings.Count(a, "x"); n < 8 || n > 32 {
		t.Errorf("probability 0.5 throttled %d of 40 calls", n)
	}
}

func TestReadAndWriteLimits(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithReadLimit(5), kinesistest.WithWriteLimit(10))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: func() []ktypes.PutRecordsRequestEntry {
		var e []ktypes.PutRecordsRequestEntry
		for i := range 15 {
			e = append(e, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("x")})
		}
		return e
	}()})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 5 {
		t.Errorf("15 records against a limit of 10/s: %d failed, want 5", aws.ToInt32(out.FailedRecordCount))
	}
	it := iterator(t, kc, "s", "shardId-000000000000", ktypes.ShardIteratorTypeTrimHorizon, "")
	throttled := 0
	for range 7 {
		if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}); err != nil {
			wantCode(t, err, "ProvisionedThroughputExceededException")
			throttled++
		}
	}
	if throttled != 2 {
		t.Errorf("7 calls in one second against 5/s: %d throttled, want 2", throttled)
	}
	clk.Advance(time.Second)
	if _, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it}); err != nil {
		t.Errorf("next second: %v", err)
	}
}

// TestConcurrentPutRecords is what moto gets wrong: parallel PutRecords to
// one shard lose records or repeat sequence numbers.
func TestConcurrentPutRecords(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, true)
	createStream(t, kc, "s", 1)
	const writers, calls, per = 8, 25, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for c := range calls {
				var entries []ktypes.PutRecordsRequestEntry
				for i := range per {
					entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(w)), Data: fmt.Appendf(nil, "%d/%d/%d", w, c, i)})
				}
				out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
				if err == nil && aws.ToInt32(out.FailedRecordCount) > 0 {
					err = fmt.Errorf("%d records failed", aws.ToInt32(out.FailedRecordCount))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs, _, _ := readAll(t, kc, iterator(t, kc, "s", "shardId-000000000000", ktypes.ShardIteratorTypeTrimHorizon, ""))
	if len(recs) != writers*calls*per {
		t.Fatalf("read %d records, wrote %d", len(recs), writers*calls*per)
	}
	seen := map[string]bool{}
	lastOf := map[string]string{} // writer → last data, to check per-writer order
	for i, r := range recs {
		if i > 0 && !seqLess(t, recs[i-1].SequenceNumber, r.SequenceNumber) {
			t.Fatalf("sequence numbers not strictly increasing at %d", i)
		}
		d := string(r.Data)
		if seen[d] {
			t.Fatalf("record %s stored twice", d)
		}
		seen[d] = true
		w := aws.ToString(r.PartitionKey)
		var pw, pc, pi, cw, cc, ci int
		if prev, ok := lastOf[w]; ok {
			if _, err := fmt.Sscanf(prev, "%d/%d/%d", &pw, &pc, &pi); err != nil {
				t.Fatal(err)
			}
			if _, err := fmt.Sscanf(d, "%d/%d/%d", &cw, &cc, &ci); err != nil {
				t.Fatal(err)
			}
			if cc < pc || (cc == pc && ci != pi+1) {
				t.Fatalf("writer %s: %s stored after %s", w, d, prev)
			}
		}
		lastOf[w] = d
	}
}

func TestErrors(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := client(t, srv, false)
	ctx := context.Background()
	var nf *ktypes.ResourceNotFoundException
	if _, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")}); !errors.As(err, &nf) {
		t.Errorf("missing stream: %v, want ResourceNotFoundException", err)
	}
	if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("nope"), PartitionKey: aws.String("k"), Data: []byte("x")}); !errors.As(err, &nf) {
		t.Errorf("put to a missing stream: %v, want ResourceNotFoundException", err)
	}
	createStream(t, kc, "s", 1)
	var inUse *ktypes.ResourceInUseException
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); !errors.As(err, &inUse) {
		t.Errorf("create twice: %v, want ResourceInUseException", err)
	}
	var ia *ktypes.InvalidArgumentException
	if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String(strings.Repeat("k", 257)), Data: []byte("x")}); !errors.As(err, &ia) {
		t.Errorf("long partition key: %v, want InvalidArgumentException", err)
	}
	if _, err := kc.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"), Tags: map[string]string{"a": "b"}}); err == nil {
		t.Error("unimplemented operation succeeded")
	} else {
		wantCode(t, err, "UnknownOperationException")
	}
	// Raw HTTP: the error shape is AWS's.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{"StreamName":"nope"}`))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.DescribeStreamSummary")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(body.String(), `"__type":"ResourceNotFoundException"`) || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		t.Errorf("raw error: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body.String())
	}
	if _, err := kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	ls, err := kc.ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil || len(ls.StreamNames) != 0 {
		t.Errorf("after delete: streams %v, err %v", ls.StreamNames, err)
	}
}

func TestCreateDelay(t *testing.T) {
	clk := newClock()
	srv := kinesistest.Start(t, kinesistest.WithClock(clk.Now), kinesistest.WithCreateDelay(2*time.Second))
	kc := client(t, srv, false)
	ctx := context.Background()
	createStream(t, kc, "s", 1)
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil || sum.StreamDescriptionSummary.StreamStatus != ktypes.StreamStatusCreating {
		t.Fatalf("new stream: %v %v, want CREATING", sum, err)
	}
	var nf *ktypes.ResourceNotFoundException
	if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")}); !errors.As(err, &nf) {
		t.Errorf("put while CREATING: %v, want ResourceNotFoundException", err)
	}
	clk.Advance(2 * time.Second)
	put(t, kc, "s", "k")
}

// TestEnvEndpoint checks the way consumers reach the server: the standard
// AWS configuration with AWS_ENDPOINT_URL_KINESIS.
func TestEnvEndpoint(t *testing.T) {
	srv := kinesistest.Start(t)
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // everything else: nowhere
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := kinesis.NewFromConfig(cfg)
	createStream(t, kc, "s", 1)
	if got := srv.Stats().Requests["CreateStream"]; got != 1 {
		t.Fatalf("server saw %d CreateStream calls, want 1", got)
	}
}

func TestCloseTwice(t *testing.T) {
	srv, err := kinesistest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	srv.Close()
	if _, err := kinesistest.NewServer(kinesistest.WithFaults(kinesistest.Faults{PutRecords: kinesistest.Throttle{Probability: 2}})); err == nil {
		t.Error("probability 2 accepted")
	}
}

// WithAnswerDelay holds every answer back, as a network would: the SDK's
// transport has made its last read of the request body before the answer
// arrives (smithy-go closes the body when the headers come; a read after
// that fails and the transport drops the connection, failing a call that
// was applied). The call is carried out before the wait.
func TestAnswerDelay(t *testing.T) {
	const delay = 60 * time.Millisecond
	srv := kinesistest.Start(t, kinesistest.WithAnswerDelay(delay))
	kc := client(t, srv, false)
	ctx := context.Background()
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []ktypes.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	if took := time.Since(start); err != nil || took < delay || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v after %s, want an answer after %s at least", err, took, delay)
	}
	if n := srv.Stats().RecordsPut; n != 1 {
		t.Errorf("%d records stored, want 1", n)
	}
	if _, err := kc.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("missing")}); err == nil {
		t.Error("a missing stream described, want ResourceNotFoundException after the delay")
	}
}
