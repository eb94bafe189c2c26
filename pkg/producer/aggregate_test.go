package producer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/kinesistest"
	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// userRecord is one user record read back from the stream, by position.
type userRecord struct {
	shard, seq string
	sub        int64 // -1: a plain Kinesis record
	key        string
	data       []byte
}

// TestAggregateRoundTrip sends with --aggregate to a 4-shard kinesistest
// stream, reads every shard back, de-aggregates, and finds exactly the
// user records the summary counts and the sent log names, each at its
// position; every user record of an aggregate hashes into the range of the
// shard the aggregate landed on.
func TestAggregateRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		limit       int
		batch       int
		wantPlain   bool // records larger than the limit go on their own
		minPerAgg   float64
		minPutCalls int64
	}{
		{name: "default size", limit: kpl.DefaultAggregateBytes, batch: 2000, minPerAgg: 50},
		{name: "small aggregates", limit: 2048, batch: 500, minPerAgg: 3},
		{name: "limit below one event: plain records, several calls per batch", limit: kpl.MinAggregateBytes, batch: 1500, wantPlain: true, minPutCalls: 3 * 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := kinesistest.Start(t)
			kc := testClient(t, srv.URL)
			cfg := testConfig("agg")
			cfg.CreateStream, cfg.Shards = true, 4
			cfg.Rate, cfg.Count, cfg.Batch = 0, 6000, tt.batch
			cfg.DuplicateRate, cfg.InvalidRate, cfg.DuplicateDelay = 0.1, 0.02, 200*time.Millisecond
			cfg.Aggregate, cfg.AggregateBytes = true, tt.limit
			cfg.SentLog = filepath.Join(t.TempDir(), "sent.ndjson")
			var report bytes.Buffer
			sum, err := Run(t.Context(), cfg, kc, &report, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("report:\n%s", report.String())
			if sum.Sent != 6000 || sum.FailedAfterRetries != 0 || sum.SequenceCollisions != 0 || !sum.Aggregated {
				t.Fatalf("summary %+v: want 6000 user records sent, none failed, aggregated", sum)
			}
			if !strings.Contains(report.String(), fmt.Sprintf("6000 user records in %d Kinesis records", sum.KinesisRecords)) {
				t.Errorf("text report does not give user and Kinesis records:\n%s", report.String())
			}
			if tt.minPutCalls > 0 && sum.PutRecordsCalls < tt.minPutCalls {
				t.Errorf("%d PutRecords calls, want at least %d (over 500 entries per batch)", sum.PutRecordsCalls, tt.minPutCalls)
			}

			ranges := shardRanges(t, kc, "agg")
			var users []userRecord
			kinesisRecords, plain := 0, 0
			for _, r := range readStream(t, kc, "agg") {
				kinesisRecords++
				seq := aws.ToString(r.SequenceNumber)
				if len(r.Data)+len(aws.ToString(r.PartitionKey)) > tt.limit && kpl.IsAggregated(r.Data) {
					t.Fatalf("aggregate %s/%s of %d bytes, limit %d", r.shard, seq, len(r.Data), tt.limit)
				}
				if !kpl.IsAggregated(r.Data) {
					plain++
					users = append(users, userRecord{r.shard, seq, -1, aws.ToString(r.PartitionKey), r.Data})
					continue
				}
				rs, err := kpl.Deaggregate(r.Data)
				if err != nil {
					t.Fatalf("record %s/%s: %v", r.shard, seq, err)
				}
				if rs[0].PartitionKey != aws.ToString(r.PartitionKey) {
					t.Errorf("aggregate %s/%s has partition key %q, its first user record %q", r.shard, seq, aws.ToString(r.PartitionKey), rs[0].PartitionKey)
				}
				for _, u := range rs {
					if rg := ranges[r.shard]; !rg.holds(u.PartitionKey) {
						t.Fatalf("user record with key %q (hash %s) in an aggregate on %s, range %s..%s",
							u.PartitionKey, hashOf(u.PartitionKey), r.shard, rg.start, rg.end)
					}
					users = append(users, userRecord{r.shard, seq, int64(u.SubSequence), u.PartitionKey, u.Data})
				}
			}
			// A call that got no answer and was retried (seen on a loaded
			// machine: a reset connection) may have left extra copies; the
			// sent log must still name only what is in the stream.
			extra := sum.UnknownOutcomeEntries
			if extra > 0 {
				t.Logf("%d user records in calls without an answer: the stream may hold extra copies", extra)
			}
			if n := int64(kinesisRecords); n < sum.KinesisRecords || (extra == 0 && n != sum.KinesisRecords) {
				t.Errorf("stream holds %d Kinesis records, summary says %d", kinesisRecords, sum.KinesisRecords)
			}
			if tt.wantPlain != (plain > 0) {
				t.Errorf("%d plain Kinesis records; want some: %v", plain, tt.wantPlain)
			}
			if per := float64(sum.Sent) / float64(sum.KinesisRecords); !tt.wantPlain && per < tt.minPerAgg {
				t.Errorf("%.1f user records per Kinesis record, want at least %g", per, tt.minPerAgg)
			}

			raws := make([][]byte, len(users))
			byPos := map[string]userRecord{}
			for i, u := range users {
				raws[i] = u.data
				byPos[fmt.Sprintf("%s/%s/%d", u.shard, u.seq, u.sub)] = u
			}
			got := countRecords(t, raws, time.Now())
			if (extra == 0 && got != summaryCounts(sum)) || got.records < sum.Sent || got.records > sum.Sent+extra || got.duplicates == 0 || got.invalid == 0 {
				t.Fatalf("read back %+v, summary says %+v (want duplicates and invalid records)", got, summaryCounts(sum))
			}

			// The sent log names every user record once, at its position.
			kinds := map[string]int64{}
			for _, line := range readLines(t, cfg.SentLog) {
				var s Sent
				if err := json.Unmarshal(line, &s); err != nil {
					t.Fatalf("sent log line %q: %v", line, err)
				}
				sub := int64(-1)
				if s.SubSequenceNumber != nil {
					sub = int64(*s.SubSequenceNumber)
				}
				pos := fmt.Sprintf("%s/%s/%d", s.ShardID, s.SequenceNumber, sub)
				u, ok := byPos[pos]
				if !ok {
					t.Fatalf("sent log names %s, which is not in the stream (or named twice): %s", pos, line)
				}
				delete(byPos, pos)
				e, err := schema.Decode(u.data, time.Now())
				switch {
				case u.key != s.PartitionKey:
					t.Fatalf("sent log says %s has key %q, stream has %q", pos, s.PartitionKey, u.key)
				case s.Kind == KindInvalid && err == nil:
					t.Fatalf("sent log says %s is invalid, but it decodes", pos)
				case s.Kind != KindInvalid && (err != nil || e.EventID != s.EventID):
					t.Fatalf("sent log says %s is %s event %s; stream has %s (%v)", pos, s.Kind, s.EventID, e.EventID, err)
				}
				kinds[s.Kind]++
			}
			if int64(len(byPos)) > extra || (extra == 0 && (kinds[KindValid] != got.unique || kinds[KindDuplicate] != got.duplicates || kinds[KindInvalid] != got.invalid)) {
				t.Fatalf("sent log kinds %v, %d user records not in it; stream %+v", kinds, len(byPos), got)
			}
		})
	}
}

type hashRange struct{ start, end *big.Int }

func hashOf(pk string) *big.Int {
	h := hashKey(pk)
	b := new(big.Int).SetUint64(h.hi)
	return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(h.lo))
}

func (r hashRange) holds(pk string) bool {
	h := hashOf(pk)
	return r.start != nil && r.start.Cmp(h) <= 0 && h.Cmp(r.end) <= 0
}

// shardRanges lists the stream's shards' hash key ranges.
func shardRanges(t *testing.T, kc *kinesis.Client, stream string) map[string]hashRange {
	t.Helper()
	out, err := kc.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]hashRange{}
	for _, sh := range out.Shards {
		s, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		e, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		m[aws.ToString(sh.ShardId)] = hashRange{s, e}
	}
	return m
}

// hashKey agrees with the hash Kinesis gives a partition key: MD5, read
// big-endian (a vector computed with Python's hashlib and int.from_bytes).
func TestHashKey(t *testing.T) {
	if got := hashOf("cust_1").String(); got != "243281488484746143128702194534018427296" {
		t.Fatalf("hashKey(cust_1) = %s", got)
	}
	for _, s := range []string{"0", "1", "18446744073709551616", "340282366920938463463374607431768211455"} {
		h, err := parseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		b := new(big.Int).SetUint64(h.hi)
		if got := b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(h.lo)).String(); got != s {
			t.Errorf("parseHash(%s) = %s", s, got)
		}
	}
	for _, s := range []string{"", "-1", "x", "340282366920938463463374607431768211456"} {
		if _, err := parseHash(s); err == nil {
			t.Errorf("parseHash(%q) accepted", s)
		}
	}
}

// With --aggregate, a failed or throttled aggregate is retried whole and
// counted in user records; what the stream holds de-aggregates to exactly
// the user records the summary counts.
func TestAggregateRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		var mu sync.Mutex
		failedAggs, failedUsers := 0, 0
		fk.entryErr = func(call, attempt int, data []byte) string {
			if call%2 == 0 && attempt == 0 {
				rs, err := kpl.Deaggregate(data)
				if err != nil {
					t.Errorf("entry is not an aggregate: %v", err)
					return ""
				}
				mu.Lock()
				failedAggs++
				failedUsers += len(rs)
				mu.Unlock()
				return "ProvisionedThroughputExceededException"
			}
			return ""
		}
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch = 0, 3000, 1000
		cfg.DuplicateRate, cfg.InvalidRate = 0.1, 0.02
		cfg.Aggregate, cfg.AggregateBytes = true, 8<<10
		reg := prometheus.NewRegistry()
		cfg.Registerer = reg
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var raws [][]byte
		for _, r := range fk.stored {
			rs, err := kpl.Deaggregate(r.data)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range rs {
				raws = append(raws, u.Data)
			}
		}
		got := countRecords(t, raws, time.Now())
		if got != summaryCounts(sum) || sum.Sent != 3000 || sum.KinesisRecords != int64(len(fk.stored)) {
			t.Fatalf("stream %+v (%d Kinesis records), summary %+v", got, len(fk.stored), sum)
		}
		if got := metricValue(t, reg, "paystream_producer_kinesis_records_sent_total", nil); got != float64(len(fk.stored)) {
			t.Errorf("kinesis records metric %v, stream holds %d", got, len(fk.stored))
		}
		if got := metricValue(t, reg, "paystream_producer_records_sent_total", map[string]string{"kind": KindValid}); got != float64(sum.UniqueEventIDs) {
			t.Errorf("valid records metric %v, summary %d", got, sum.UniqueEventIDs)
		}
		if failedAggs == 0 || sum.RetriedEntries != int64(failedUsers) || sum.ThrottledEntries != int64(failedUsers) {
			t.Fatalf("retried %d, throttled %d user records; want %d (%d aggregates failed once)", sum.RetriedEntries, sum.ThrottledEntries, failedUsers, failedAggs)
		}
	})
}

// A fatal error counts the user records of the calls not made as failed.
func TestAggregateFatalErrorCountsEveryRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.callErrs = map[int]error{0: errors.New("access denied")}
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch = 0, 1000, 1000
		cfg.Aggregate, cfg.AggregateBytes = true, kpl.MinAggregateBytes // plain entries: two calls
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "access denied") {
			t.Fatalf("err = %v, want the PutRecords error", err)
		}
		if sum.Sent != 0 || sum.FailedAfterRetries != 1000 || len(fk.calls) != 1 {
			t.Fatalf("sent %d, failed %d after %d calls; want 0, 1000 and 1", sum.Sent, sum.FailedAfterRetries, len(fk.calls))
		}
	})
}
