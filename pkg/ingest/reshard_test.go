package ingest_test

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/producer"
)

// newEmulatedStack is newStack with Kinesis served by kinesistest (moto
// cannot reshard faithfully: it moves a parent's records into the children
// and never ends a closed shard); DynamoDB leases stay on moto.
func newEmulatedStack(t *testing.T, shards int, opts ...kinesistest.Option) (*stack, *kinesistest.Server) {
	t.Helper()
	srv := kinesistest.Start(t, opts...)
	// testenv.Moto sets AWS_ENDPOINT_URL for every service; the
	// service-specific variable wins for Kinesis.
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL)
	s := newStack(t, shards)
	if n := srv.Stats().Requests["CreateStream"]; n != 1 {
		t.Fatalf("the stream was not created on the emulator (%d CreateStream calls there)", n)
	}
	return s, srv
}

// producing is a producer run in the background.
type producing struct {
	mu   sync.Mutex
	sent []producer.Sent
	n    atomic.Int64
	done chan error // the run's result, taken by wait
}

// produceInBackground starts the producer with concurrent PutRecords
// calls (which the emulator, unlike moto, takes safely).
func (s *stack) produceInBackground(ctx context.Context, cfg producer.Config) *producing {
	p := &producing{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	s.t.Cleanup(func() { cancel(); <-finished }) // a failed test leaves no producer behind
	cfg.Stream = s.stream
	cfg.Concurrency = 4
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.OnSent = func(x producer.Sent) {
		p.mu.Lock()
		p.sent = append(p.sent, x)
		p.mu.Unlock()
		p.n.Add(1)
	}
	go func() {
		defer close(finished)
		_, err := producer.Run(ctx, cfg, s.kin, io.Discard, io.Discard)
		p.done <- err
	}()
	return p
}

// waitSent waits until the producer has had n records acknowledged.
func (p *producing) waitSent(t *testing.T, n int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.n.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("producer sent %d records within %s, want %d", p.n.Load(), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait returns everything sent once the producer is done.
func (p *producing) wait(t *testing.T) []producer.Sent {
	t.Helper()
	if err := <-p.done; err != nil {
		t.Fatalf("producer: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]producer.Sent(nil), p.sent...)
}

// A split and then a merge of its children while the producer runs, read
// by two workers: nothing lost or doubled (including producer duplicates
// whose copies straddle the reshard), and for each customer every row of a
// parent shard committed no later than the first row of its child.
// Iterators live one second, so the stalled parent's reader must renew
// expired iterators from its last position too.
func TestWorkerSplitThenMergeWhileProducing(t *testing.T) {
	s, srv := newEmulatedStack(t, 2, kinesistest.WithReshardDelay(500*time.Millisecond), kinesistest.WithIteratorTTL(time.Second))
	ctx := context.Background()
	s.startWorker("w1", nil)
	s.startWorker("w2", nil)

	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.DuplicateRate, cfg.DuplicateDelay = 400, 12*time.Second, 0.1, 2*time.Second
	cfg.Seed = 7
	prod := s.produceInBackground(ctx, cfg)

	// Split once rows are flowing, so the parent has committed rows. Its
	// reads are stalled around the split, so it still has a backlog when
	// its children fill: a child read before its parent is finished would
	// commit rows ahead of the parent's last ones.
	prod.waitSent(t, 1000, 20*time.Second)
	first := s.openShards(ctx)[0]
	if err := srv.SetFaults(kinesistest.Faults{GetRecords: kinesistest.Throttle{Every: 1, Shards: []string{aws.ToString(first.ShardId)}}}); err != nil {
		t.Fatal(err)
	}
	prod.waitSent(t, 1400, 20*time.Second)
	start, end := bigOf(t, first.HashKeyRange.StartingHashKey), bigOf(t, first.HashKeyRange.EndingHashKey)
	mid := new(big.Int).Add(start, end)
	mid.Rsh(mid, 1)
	if _, err := s.kin.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(s.stream), ShardToSplit: first.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	s.waitActive(ctx)
	prod.waitSent(t, 2200, 20*time.Second)
	if err := srv.SetFaults(kinesistest.Faults{}); err != nil {
		t.Fatal(err)
	}

	// Merge the split's two children back together, mid-stream too.
	prod.waitSent(t, 2800, 20*time.Second)
	var kids []ktypes.Shard
	for _, sh := range s.openShards(ctx) {
		if aws.ToString(sh.ParentShardId) == aws.ToString(first.ShardId) {
			kids = append(kids, sh)
		}
	}
	if len(kids) != 2 {
		t.Fatalf("split produced %d children", len(kids))
	}
	if _, err := s.kin.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(s.stream), ShardToMerge: kids[0].ShardId, AdjacentShardToMerge: kids[1].ShardId,
	}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	s.waitActive(ctx)
	sent := prod.wait(t)

	// Lineage of the stream, and what the producer did across it.
	all := s.allShards(ctx)
	parentOf := map[string][]string{}
	closed := map[string]bool{}
	for _, sh := range all {
		id := aws.ToString(sh.ShardId)
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil {
				parentOf[id] = append(parentOf[id], *p)
			}
		}
		closed[id] = sh.SequenceNumberRange.EndingSequenceNumber != nil
	}
	if len(all) != 5 || len(parentOf) != 3 {
		t.Fatalf("after a split and a merge: %d shards, %d with parents; want 5 and 3", len(all), len(parentOf))
	}
	perShard := map[string]int{}
	firstShard := map[string]string{} // event_id → shard of its first copy
	straddling := 0                   // duplicates whose copies are in different shards
	for _, x := range sent {
		perShard[x.ShardID]++
		switch x.Kind {
		case producer.KindValid:
			firstShard[x.EventID] = x.ShardID
		case producer.KindDuplicate:
			if sh, ok := firstShard[x.EventID]; ok && sh != x.ShardID {
				straddling++
			}
		}
	}
	for id := range parentOf {
		if perShard[id] == 0 {
			t.Fatalf("no record was written to child %s (records per shard %v)", id, perShard)
		}
	}
	for id := range closed {
		if closed[id] && perShard[id] == 0 {
			t.Fatalf("no record was written to parent %s (records per shard %v)", id, perShard)
		}
	}
	if straddling == 0 {
		t.Fatal("no duplicate had its copies in a parent and a child: the test does not exercise dedup across the reshard")
	}
	t.Logf("sent %d records; per shard %v; %d duplicates straddle a reshard", len(sent), perShard, straddling)

	rows := s.expectExactlyOnce(ctx, sent, 45*time.Second)

	// Parent before child: for each customer, every row read from a parent
	// shard was committed no later than the first row read from its child
	// (ingested_at is the commit batch's time).
	lastAt := map[string]time.Time{}  // customer|shard → latest ingested_at
	firstAt := map[string]time.Time{} // customer|shard → earliest ingested_at
	for _, row := range rows {
		key := row.Customer + "|" + row.Shard
		if v, ok := lastAt[key]; !ok || row.IngestedAt.After(v) {
			lastAt[key] = row.IngestedAt
		}
		if v, ok := firstAt[key]; !ok || row.IngestedAt.Before(v) {
			firstAt[key] = row.IngestedAt
		}
	}
	checked := map[string]int{} // child → customers checked against a parent
	for key, childFirst := range firstAt {
		customer, shard, _ := strings.Cut(key, "|")
		for _, p := range parentOf[shard] {
			if parentLast, ok := lastAt[customer+"|"+p]; ok {
				checked[shard]++
				if childFirst.Before(parentLast) {
					t.Errorf("customer %s: child %s row committed at %s before parent %s row at %s", customer, shard, childFirst.Format(time.RFC3339Nano), p, parentLast.Format(time.RFC3339Nano))
				}
			}
		}
	}
	for child := range parentOf {
		if checked[child] == 0 {
			t.Errorf("no customer has rows in both %s and its parents %v: the order check checked nothing there", child, parentOf[child])
		}
	}
	t.Logf("parent-before-child order checked for %v customers per child", checked)

	// Every parent's lease ends finished (SHARD_END) or deleted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open []string
		leases := s.leases(ctx)
		for id, isClosed := range closed {
			if l, ok := leases[id]; isClosed && ok && !l.Finished() {
				open = append(open, id+"@"+l.Checkpoint)
			}
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parent leases not finished or deleted: %v", open)
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := srv.Stats()
	t.Logf("GetRecords: %d calls, %d throttled, %d with an expired iterator", st.Requests["GetRecords"], st.GetRecordsThrottled, st.IteratorsExpired)
	if st.GetRecordsThrottled == 0 || st.IteratorsExpired == 0 {
		t.Fatal("the parent's reads were never stalled past an iterator's life")
	}
}

// The emulator throttles three in four GetRecords calls; the SDK's own
// retries hide some of them, the readers back off on the rest, and nothing
// is lost.
func TestWorkerGetRecordsThrottled(t *testing.T) {
	s, srv := newEmulatedStack(t, 2, kinesistest.WithFaults(kinesistest.Faults{
		GetRecords: kinesistest.Throttle{Probability: 0.75}, Seed: 3,
	}))
	ctx := context.Background()
	w := s.startWorker("w1", nil)
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate, cfg.DuplicateRate, cfg.DuplicateDelay = 3000, 500, 0.05, time.Second
	sent := s.produceInBackground(ctx, cfg).wait(t)
	s.expectExactlyOnce(ctx, sent, 45*time.Second)

	st := srv.Stats()
	seen := counterSum(t, w.reg, "paystream_ingest_getrecords_throttled_total")
	t.Logf("GetRecords: %d calls, %d throttled by the emulator, %d seen by the readers", st.Requests["GetRecords"], st.GetRecordsThrottled, int(seen))
	if st.GetRecordsThrottled == 0 {
		t.Fatal("the emulator throttled nothing")
	}
	if seen == 0 {
		t.Fatal("paystream_ingest_getrecords_throttled_total is 0: the readers never saw a throttle")
	}
	if int(seen) > st.GetRecordsThrottled {
		t.Errorf("readers counted %d throttles, the emulator sent %d", int(seen), st.GetRecordsThrottled)
	}
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func bigOf(t *testing.T, s *string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(aws.ToString(s), 10)
	if !ok {
		t.Fatalf("%q is not a decimal", aws.ToString(s))
	}
	return v
}

// UpdateShardCount from 2 to 3 shards mid-stream (as AWS does it: splits,
// then merges, so one new shard has two parents that are themselves
// children): every event exactly once and every closed shard's lease ends.
func TestWorkerUpdateShardCount(t *testing.T) {
	s, _ := newEmulatedStack(t, 2)
	ctx := context.Background()
	s.startWorker("w1", nil)
	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Duration, cfg.DuplicateRate, cfg.DuplicateDelay = 500, 6*time.Second, 0.05, time.Second
	prod := s.produceInBackground(ctx, cfg)
	prod.waitSent(t, 1000, 20*time.Second)
	if _, err := s.kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{
		StreamName: aws.String(s.stream), TargetShardCount: aws.Int32(3), ScalingType: ktypes.ScalingTypeUniformScaling,
	}); err != nil {
		t.Fatalf("update shard count: %v", err)
	}
	sent := prod.wait(t)
	s.expectExactlyOnce(ctx, sent, 40*time.Second)
	all := s.allShards(ctx)
	if n := len(s.openShards(ctx)); n != 3 {
		t.Fatalf("%d open shards, want 3", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open []string
		leases := s.leases(ctx)
		for _, sh := range all {
			id := aws.ToString(sh.ShardId)
			if l, ok := leases[id]; ok && sh.SequenceNumberRange.EndingSequenceNumber != nil && !l.Finished() {
				open = append(open, id+"@"+l.Checkpoint)
			}
		}
		if len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("closed shards' leases not finished or deleted: %v", open)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
