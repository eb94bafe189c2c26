package status

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/lease"
)

type fakeShards []lease.Shard

func (f fakeShards) ListShards(context.Context) ([]lease.Shard, error) { return f, nil }

// twoReads returns first, then second, for the two reads of a sample.
type twoReads[T any] struct {
	first, second T
	n             int
}

func (r *twoReads[T]) next() T {
	r.n++
	if r.n == 1 {
		return r.first
	}
	return r.second
}

type fakeLeases struct{ twoReads[[]lease.Lease] }

func (f *fakeLeases) List(context.Context) ([]lease.Lease, error) { return f.next(), nil }

type fakeTable struct{ twoReads[TableState] }

func (f *fakeTable) State(context.Context) (TableState, error) { return f.next(), nil }

// fakeRecords serves, per shard, records with sequence numbers and arrival
// times; an iterator is "shard/after" or, at a sequence number, "shard/at:seq".
type fakeRecords map[string][]ktypes.Record

func (f fakeRecords) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	at := ""
	if in.ShardIteratorType == ktypes.ShardIteratorTypeAtSequenceNumber {
		at = "at:"
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(aws.ToString(in.ShardId) + "/" + at + aws.ToString(in.StartingSequenceNumber))}, nil
}

func (f fakeRecords) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	shard, after, _ := strings.Cut(aws.ToString(in.ShardIterator), "/")
	from := 1
	if seq, ok := strings.CutPrefix(after, "at:"); ok {
		after, from = seq, 0
	}
	for _, r := range f[shard] {
		if commit.CompareSeq(aws.ToString(r.SequenceNumber), after) >= from {
			return &kinesis.GetRecordsOutput{Records: []ktypes.Record{r}, MillisBehindLatest: aws.Int64(1000)}, nil
		}
	}
	return &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0), NextShardIterator: in.ShardIterator}, nil
}

func TestCheckStates(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rec := func(seq string, age time.Duration) ktypes.Record {
		return ktypes.Record{SequenceNumber: aws.String(seq), ApproximateArrivalTimestamp: aws.Time(now.Add(-age))}
	}
	shards := fakeShards{
		{ID: "parent", Closed: true},
		{ID: "child", Parents: []string{"parent"}},
		{ID: "live"},
		{ID: "dead"},
		{ID: "stuck"},
		{ID: "free"},
		{ID: "new"},
		{ID: "behind"},
		{ID: "gone", Closed: true}, // finished parent whose lease Sync deleted
		{ID: "kid", Parents: []string{"gone"}},
		{ID: "agg"}, // committed inside a KPL aggregate
	}
	l := func(key, owner string, counter int64) lease.Lease {
		return lease.Lease{Key: key, Owner: owner, Counter: counter, Checkpoint: lease.CheckpointTrimHorizon}
	}
	before := []lease.Lease{
		{Key: "parent", Owner: "w1", Counter: 5, Checkpoint: "40"},
		{Key: "child", Counter: 1, ParentShardIDs: []string{"parent"}},
		l("live", "w1", 10), l("dead", "w2", 7), l("stuck", "w1", 3), l("free", "", 4), l("behind", "w1", 9),
		l(lease.RoleKey(lease.RoleMaintainer), "w2", 50),
		{Key: "kid", Owner: "w1", Counter: 2, ParentShardIDs: []string{"gone"}},
		{Key: "agg", Owner: "w1", Counter: 4, Checkpoint: "500", CheckpointSubSequence: 3},
	}
	after := []lease.Lease{
		{Key: "parent", Owner: "w1", Counter: 6, Checkpoint: "40"},
		{Key: "child", Counter: 1, ParentShardIDs: []string{"parent"}},
		l("live", "w1", 11), l("dead", "w2", 7), l("stuck", "w1", 4), l("free", "", 4), l("behind", "w1", 10),
		l(lease.RoleKey(lease.RoleMaintainer), "w2", 50),
		{Key: "kid", Owner: "w1", Counter: 3, ParentShardIDs: []string{"gone"}},
		{Key: "agg", Owner: "w1", Counter: 5, Checkpoint: "500", CheckpointSubSequence: 3},
	}
	pos := map[string]string{"parent": "40", "live": "100", "dead": "200", "stuck": "300", "behind": "400", "agg": "500:3"}
	posAfter := map[string]string{"parent": "40", "live": "100", "dead": "200", "stuck": "300", "behind": "401", "agg": "500:3"}
	recs := fakeRecords{
		"parent": {rec("40", time.Hour)},
		"live":   nil,
		"dead":   {rec("201", 5*time.Second)},
		"stuck":  {rec("301", 10*time.Minute)},
		"behind": {rec("402", 10*time.Minute)}, // old, but its position moves: catching up
		"free":   {rec("1", time.Minute)},
		"agg":    {rec("500", 10*time.Second), rec("501", time.Second)},
	}
	var slept time.Duration
	rep, err := Check(context.Background(), Config{
		Sample: 2 * time.Second, StallAfter: time.Minute, Now: func() time.Time { return now },
		Sleep: func(_ context.Context, d time.Duration) error { slept += d; return nil },
	}, Deps{
		Stream: "s",
		Shards: shards,
		Leases: &fakeLeases{twoReads[[]lease.Lease]{first: before, second: after}},
		Table: &fakeTable{twoReads[TableState]{first: TableState{Positions: pos}, second: TableState{Positions: posAfter, LastCommit: now.Add(-time.Second),
			ShardLastCommit: map[string]time.Time{"live": now.Add(-3 * time.Second)}}}},
		Records: recs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if slept != 2*time.Second {
		t.Errorf("slept %s, want the sample 2s", slept)
	}
	want := map[string]string{
		"parent": StateReading, // closed, read to its end, SHARD_END not yet recorded
		"child":  StateWaiting,
		"live":   StateReading,
		"dead":   StateStalled,
		"stuck":  StateStalled,
		"free":   StateUnowned,
		"new":    StateUnowned,
		"behind": StateReading,
		"gone":   StateFinished,
		"kid":    StateReading,
		"agg":    StateReading,
	}
	got := map[string]Shard{}
	for _, s := range rep.Shards {
		got[s.ID] = s
	}
	for id, st := range want {
		if got[id].State != st {
			t.Errorf("shard %s: state %q, want %q (%+v)", id, got[id].State, st, got[id])
		}
	}
	if rep.Healthy {
		t.Error("report healthy with stalled and unowned shards")
	}
	// Problems first: the four problem shards lead, in id order.
	var lead []string
	for _, s := range rep.Shards[:4] {
		lead = append(lead, s.ID)
	}
	if strings.Join(lead, ",") != "dead,free,new,stuck" {
		t.Errorf("shards with problems first: got %v", lead)
	}
	if s := got["dead"]; !s.Unread || s.Behind != 5*time.Second || s.NextSeq != "201" {
		t.Errorf("dead: unread %v behind %s next %s; want true, 5s, 201", s.Unread, s.Behind, s.NextSeq)
	}
	// The rest of aggregate 500 is unread: the probe reads at 500.
	if s := got["agg"]; !s.Unread || s.NextSeq != "500" || s.Behind != 10*time.Second || s.CheckpointSub != 3 {
		t.Errorf("agg: unread %v next %s behind %s checkpoint sub %d; want true, 500, 10s, 3", s.Unread, s.NextSeq, s.Behind, s.CheckpointSub)
	}
	if !strings.Contains(got["stuck"].Problem, "table position did not move") {
		t.Errorf("stuck problem %q", got["stuck"].Problem)
	}
	if s := got["live"]; s.LastCommit == nil || !s.LastCommit.Equal(now.Add(-3*time.Second)) || got["dead"].LastCommit != nil {
		t.Errorf("last commits: live %v, dead %v; want 3s before now and none", s.LastCommit, got["dead"].LastCommit)
	}
	if s := got["live"]; s.Unread || s.Behind != 0 {
		t.Errorf("live: unread %v behind %s; want nothing unread", s.Unread, s.Behind)
	}
	if rep.Maintainer == nil || rep.Maintainer.Owner != "w2" || rep.Maintainer.Renewing {
		t.Errorf("maintainer %+v: want w2, not renewing", rep.Maintainer)
	}
	var maintProblem bool
	for _, p := range rep.Problems {
		maintProblem = maintProblem || (p.Subject == "maintainer" && !p.Critical)
	}
	if !maintProblem {
		t.Errorf("problems %+v: want a non-critical maintainer problem", rep.Problems)
	}
	if len(rep.Workers) != 2 || rep.Workers[1].ID != "w2" || rep.Workers[1].Alive {
		t.Errorf("workers %+v: want w1 alive and w2 dead", rep.Workers)
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Healthy bool `json:"healthy"`
		Shards  []struct {
			Shard  string  `json:"shard"`
			State  string  `json:"state"`
			Behind float64 `json:"behind_seconds"`
		} `json:"shards"`
		Sample float64 `json:"sample_seconds"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Healthy || back.Sample != 2 || len(back.Shards) != len(rep.Shards) || back.Shards[0].Shard != "dead" || back.Shards[0].Behind != 5 {
		t.Errorf("JSON lost facts: %s", js.String())
	}
	var tbl bytes.Buffer
	if err := rep.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"UNHEALTHY", "PROBLEMS", "dead  stalled  w2", "NOT renewing", "COMMITTED", "3s ago"} {
		if !strings.Contains(strings.Join(strings.Fields(tbl.String()), "  "), strings.Join(strings.Fields(w), "  ")) {
			t.Errorf("table lacks %q:\n%s", w, tbl.String())
		}
	}
}

func TestCheckHealthyAndFinished(t *testing.T) {
	after := []lease.Lease{
		{Key: "a", Owner: "w1", Counter: 3, Checkpoint: lease.CheckpointShardEnd, ChildShardIDs: []string{"b"}},
		{Key: "b", Owner: "w1", Counter: 9, ParentShardIDs: []string{"a"}},
	}
	before := []lease.Lease{after[0], {Key: "b", Owner: "w1", Counter: 8, ParentShardIDs: []string{"a"}}}
	rep, err := Check(context.Background(), Config{Sample: time.Second, StallAfter: time.Minute,
		Sleep: func(context.Context, time.Duration) error { return nil }}, Deps{
		Stream:  "s",
		Shards:  fakeShards{{ID: "a", Closed: true}, {ID: "b", Parents: []string{"a"}}},
		Leases:  &fakeLeases{twoReads[[]lease.Lease]{first: before, second: after}},
		Table:   &fakeTable{twoReads[TableState]{first: TableState{Positions: map[string]string{"a": "5", "b": "7"}}, second: TableState{Positions: map[string]string{"a": "5", "b": "7"}}}},
		Records: fakeRecords{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Healthy || len(rep.Problems) != 0 {
		t.Errorf("healthy %v problems %+v; want healthy, none (a finished lease does not move)", rep.Healthy, rep.Problems)
	}
	if rep.Shards[0].State != StateFinished || rep.Shards[1].State != StateReading {
		t.Errorf("states %s, %s; want finished, reading", rep.Shards[0].State, rep.Shards[1].State)
	}
	if len(rep.Workers) != 1 || len(rep.Workers[0].Shards) != 1 {
		t.Errorf("workers %+v: want w1 holding only b (a finished shard is not held work)", rep.Workers)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "--sample") || !strings.Contains(err.Error(), "--stall-after") {
		t.Errorf("zero config: %v", err)
	}
}
