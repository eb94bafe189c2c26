package producer

import (
	"bytes"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// TestAggregateReshard reshards a kinesistest stream while the producer
// sends KPL aggregates to it, with many duplicates in flight across the
// reshard. The producer must notice (its summary counts a shard map
// refresh), and from then on its aggregates must land on the shards it
// predicts: read back, no user record after the stale call sits on a
// shard whose hash key range does not hold it, unless it is a later copy
// of an event whose earlier copy landed there in the stale call (the
// producer sends it after that copy). And every copy of an event is in
// one shard lineage, which is what the consumer de-duplicates over: never
// two copies on sibling shards.
func TestAggregateReshard(t *testing.T) {
	half := new(big.Int).Lsh(big.NewInt(1), 127) // shard 0 of 2 ends at half-1
	split := func(t *testing.T, kc *kinesis.Client, stream string) {
		_, err := kc.SplitShard(t.Context(), &kinesis.SplitShardInput{
			StreamName: aws.String(stream), ShardToSplit: aws.String("shardId-000000000000"),
			NewStartingHashKey: aws.String(new(big.Int).Rsh(half, 1).String()),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		concurrency int
		reshard     func(t *testing.T, kc *kinesis.Client, stream string)
	}{
		{"split", 1, split},
		// Four senders: calls may be in flight at the split and at the
		// refresh (on a fast loopback they seldom are).
		{"split with 4 calls in flight", 4, split},
		{"merge", 1, func(t *testing.T, kc *kinesis.Client, stream string) {
			_, err := kc.MergeShards(t.Context(), &kinesis.MergeShardsInput{
				StreamName: aws.String(stream), ShardToMerge: aws.String("shardId-000000000000"),
				AdjacentShardToMerge: aws.String("shardId-000000000001"),
			})
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := kinesistest.Start(t)
			kc := testClient(t, srv.URL)
			const stream = "reshard"
			if _, err := kc.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(stream)
			cfg.Rate, cfg.Count, cfg.Concurrency = 3000, 9000, tt.concurrency
			cfg.DuplicateRate, cfg.DuplicateDelay = 0.3, time.Second
			// One aggregate per shard per call: the stale call holds at
			// most one aggregate for each shard the reshard closed.
			cfg.Aggregate, cfg.AggregateBytes = true, kpl.MaxAggregateBytes
			var acked atomic.Int64
			reshardNow := make(chan struct{})
			cfg.OnSent = func(Sent) {
				if acked.Add(1) == 3000 {
					close(reshardNow)
				}
			}
			type result struct {
				sum Summary
				err error
			}
			done := make(chan result, 1)
			var report bytes.Buffer
			go func() {
				sum, err := Run(t.Context(), cfg, kc, &report, io.Discard)
				done <- result{sum, err}
			}()
			select {
			case <-reshardNow:
				tt.reshard(t, kc, stream)
			case res := <-done:
				t.Fatalf("the producer finished before 3000 acknowledgements: %+v, %v", res.sum, res.err)
			}
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			sum := res.sum
			t.Logf("report:\n%s", report.String())
			if sum.Sent != 9000 || sum.FailedAfterRetries != 0 || sum.UnknownOutcomeEntries != 0 {
				t.Fatalf("summary %+v: want 9000 sent, none failed or unknown", sum)
			}
			if sum.ShardMapRefreshes < 1 || !strings.Contains(report.String(), "shard map") {
				t.Errorf("%d shard map refreshes (report above); want the reshard noticed", sum.ShardMapRefreshes)
			}
			// The stale calls: at most one aggregate per closed shard each.
			if sum.MisroutedRecords < 1 || sum.MisroutedRecords > int64(2*tt.concurrency) {
				t.Errorf("%d Kinesis records landed off their predicted shard; want 1 to %d (the calls in flight at the reshard)", sum.MisroutedRecords, 2*tt.concurrency)
			}

			ranges := shardRanges(t, kc, stream)
			ancestors := shardAncestors(t, kc, stream)
			copies := map[string][]string{} // event_id → shards of its copies
			offRange := 0                   // Kinesis records with a user record newly off its shard's range
			sent := 0
			followed := map[string]bool{} // events (or invalid records' keys) a copy of which landed off range
			for _, r := range readStream(t, kc, stream) {
				rs, err := kpl.Deaggregate(r.Data)
				if err != nil {
					t.Fatalf("record %s/%s: %v", r.shard, aws.ToString(r.SequenceNumber), err)
				}
				newly := false
				for _, u := range rs {
					sent++
					id := "key " + u.PartitionKey
					if e, err := schema.Decode(u.Data, time.Now()); err == nil {
						id = e.EventID
						copies[id] = append(copies[id], r.shard)
					}
					if !ranges[r.shard].holds(u.PartitionKey) && !followed[id] {
						newly = true
						followed[id] = true
					}
				}
				if newly {
					offRange++
				}
			}
			if sent != 9000 {
				t.Fatalf("read back %d user records, want 9000", sent)
			}
			if int64(offRange) > sum.MisroutedRecords {
				t.Errorf("%d Kinesis records carry user records newly off their shard's range; the producer misrouted %d (the stale call): "+
					"it kept sending with a stale shard map", offRange, sum.MisroutedRecords)
			}
			siblings, dups := 0, 0
			for id, shards := range copies {
				for _, s := range shards[1:] {
					dups++
					if a := shards[0]; a != s && !ancestors[a][s] && !ancestors[s][a] {
						siblings++
						if siblings <= 5 {
							t.Errorf("event %s has copies on %s and %s, neither an ancestor of the other", id, a, s)
						}
					}
				}
			}
			t.Logf("%d shard map refreshes, %d misrouted, %d pinned events, %d records off range; %d duplicate copies, %d on a sibling of the first",
				sum.ShardMapRefreshes, sum.MisroutedRecords, sum.PinnedEvents, len(followed), dups, siblings)
			if dups < 500 {
				t.Errorf("only %d duplicate copies: the test needs many across the reshard", dups)
			}
			if siblings > 0 {
				t.Errorf("%d copies on a sibling of their event's first shard", siblings)
			}
		})
	}
}

// shardAncestors maps each shard of a stream to the set of its ancestors.
func shardAncestors(t *testing.T, kc *kinesis.Client, stream string) map[string]map[string]bool {
	t.Helper()
	out, err := kc.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	parents := map[string][]string{}
	for _, sh := range out.Shards {
		id := aws.ToString(sh.ShardId)
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil {
				parents[id] = append(parents[id], *p)
			}
		}
	}
	anc := map[string]map[string]bool{}
	var walk func(id string, into map[string]bool)
	walk = func(id string, into map[string]bool) {
		for _, p := range parents[id] {
			if !into[p] {
				into[p] = true
				walk(p, into)
			}
		}
	}
	for _, sh := range out.Shards {
		id := aws.ToString(sh.ShardId)
		anc[id] = map[string]bool{}
		walk(id, anc[id])
	}
	return anc
}

// An aggregate still in flight when the map is refreshed lands by the
// hash key it was built with; the events of its records that the new map
// sends elsewhere must be pinned at the refresh, before any record is
// grouped by the new map, or a copy grouped meanwhile lands on a sibling.
// The pin is the event's: the customer's other events go by their key.
func TestRouterPinsEventsInFlightAtRefresh(t *testing.T) {
	srv := kinesistest.Start(t)
	kc := testClient(t, srv.URL)
	const stream = "inflight"
	if _, err := kc.CreateStream(t.Context(), &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(stream)
	cfg.Aggregate = true
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &stats{m: m}
	rt, err := newRouter(t.Context(), &cfg, kc, st, cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	// Shard 0 holds [0, 2^127); it is split at 2^126 into a left child
	// (which the aggregates built for shard 0 land on) and a right one.
	cut := new(big.Int).Lsh(big.NewInt(1), 126)
	var left, right string
	for i := 0; left == "" || right == ""; i++ {
		k := fmt.Sprintf("cust_%d", i)
		switch h := hashOf(k); {
		case h.Cmp(cut) < 0:
			left = k
		case h.Cmp(new(big.Int).Lsh(cut, 1)) < 0:
			right = k
		}
	}
	group := func(key string, ev *event) *entry {
		t.Helper()
		es, gen, err := rt.entries([]*record{{data: []byte(`{}`), key: key, ev: ev}})
		if err != nil || len(es) != 1 {
			t.Fatalf("entries: %v, %v", es, err)
		}
		if !rt.claim(es, gen) {
			t.Fatal("claim refused without a routing change")
		}
		return es[0]
	}
	ev := &event{}
	inFlight := group(right, ev) // its call is slow: no answer yet
	misrouted := group(left, &event{})
	if inFlight.shard != "shardId-000000000000" || misrouted.shard != "shardId-000000000000" {
		t.Fatalf("predicted %s and %s, want shard 0", inFlight.shard, misrouted.shard)
	}
	if _, err := kc.SplitShard(t.Context(), &kinesis.SplitShardInput{StreamName: aws.String(stream),
		ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String(cut.String())}); err != nil {
		t.Fatal(err)
	}
	const leftChild, rightChild = "shardId-000000000002", "shardId-000000000003"
	rt.landed(t.Context(), misrouted, leftChild, time.Now())
	if st.refreshes != 1 {
		t.Fatalf("%d refreshes after a misrouted put, want 1", st.refreshes)
	}
	// A later copy of the in-flight event, grouped by the new map, must
	// go where the in-flight aggregate will land: the left child.
	if later := group(right, ev); later.shard != leftChild || later.route != inFlight.route {
		t.Errorf("a later copy of an event of %s goes to %s by hash key %s; its copy in flight lands on %s by %s",
			right, later.shard, later.route, leftChild, inFlight.route)
	}
	if got := group(right, &event{}); got.shard != rightChild {
		t.Errorf("another event of %s goes to %s, want %s", right, got.shard, rightChild)
	}
	if got := group(left, &event{}); got.shard != leftChild {
		t.Errorf("%s goes to %s, want %s", left, got.shard, leftChild)
	}
	rt.landed(t.Context(), inFlight, leftChild, time.Now().Add(-time.Second)) // the slow call's answer
	if st.refreshes != 1 || st.pins != 1 {
		t.Errorf("%d refreshes, %d events pinned; want 1 and 1", st.refreshes, st.pins)
	}
}
