//go:build linux

package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// A producer call without an answer may have landed before the producer
// sent its records again; the sent log then names only the second copies.
// The checker must take the first copies from the stream (a row or a dead
// letter of one is correct), and still refuse a row of a record nobody
// sent. Seen in a scenario on a loaded machine: 21 entries of unknown
// outcome, rows of their first copies reported as wrong lineage.
func TestResentCopiesAreFoundInTheStream(t *testing.T) {
	ctx := context.Background()
	env := motoStream(t)
	put := func(data []byte) (shard, seq string) {
		out, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(env.Stream), PartitionKey: aws.String("k"), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ShardId), aws.ToString(out.SequenceNumber)
	}
	now := time.Now()
	g := schema.NewGenerator(1, now)
	a, b, foreign := g.Next(now), g.Next(now), g.Next(now)
	invalid := []byte(`{"event_id":"bad","amount_usd":"x"}`)

	shard, a1 := put(a.AppendJSON(nil)) // landed, its call unanswered
	_, a2 := put(a.AppendJSON(nil))     // the resend, in the sent log
	_, i1 := put(invalid)
	_, i2 := put(invalid)
	_, f1 := put(foreign.AppendJSON(nil)) // never sent by the producer
	agg, err := kpl.NewAggregator(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []schema.Event{b, a} {
		if err := agg.Add(kpl.UserRecord{PartitionKey: "k", Data: ev.AppendJSON(nil)}); err != nil {
			t.Fatal(err)
		}
	}
	aggregate, _ := agg.Flush()
	_, g1 := put(aggregate.Data)
	_, b2 := put(b.AppendJSON(nil))

	sent := []Sent{
		{EventID: a.EventID, Kind: "valid", ShardID: shard, SequenceNumber: a2},
		{Kind: "invalid", ShardID: shard, SequenceNumber: i2},
		{EventID: b.EventID, Kind: "valid", ShardID: shard, SequenceNumber: b2},
	}
	shards, err := env.Shards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := ResentCopies(ctx, env, shards, sent)
	if err != nil {
		t.Fatal(err)
	}
	zero, one := int64(0), int64(1)
	want := []Sent{
		{EventID: a.EventID, Kind: "duplicate", ShardID: shard, SequenceNumber: a1, Resent: true},
		{Kind: "invalid", ShardID: shard, SequenceNumber: i1, Resent: true},
		{EventID: b.EventID, Kind: "duplicate", ShardID: shard, SequenceNumber: g1, SubSequenceNumber: &zero, Resent: true},
		{EventID: a.EventID, Kind: "duplicate", ShardID: shard, SequenceNumber: g1, SubSequenceNumber: &one, Resent: true},
	}
	if len(extra) != len(want) {
		t.Fatalf("found %d copies beyond the sent log, want %d: %+v", len(extra), len(want), extra)
	}
	for i, w := range want {
		if e := extra[i]; e.EventID != w.EventID || e.Kind != w.Kind || e.Position() != w.Position() || e.ShardID != w.ShardID || !e.Resent {
			t.Errorf("copy %d = %+v (%s), want %+v (%s)", i, e, e.Position(), w, w.Position())
		}
	}

	// Rows of the first copies, and the first invalid copy's dead letter.
	rows := []Row{
		{EventID: a.EventID, Customer: a.CustomerID, Shard: shard, Seq: a1, Commit: 1},
		{EventID: b.EventID, Customer: b.CustomerID, Shard: shard, Seq: g1 + ":0", Commit: 1},
	}
	dls := []DeadLetter{{Shard: shard, Sequence: i1, Object: "o1"}, {Shard: shard, Sequence: i2, Object: "o2"}}
	st := &TableState{Rows: rows, ScanRows: int64(len(rows))}
	if r := Check(sent, st, dls, shards, nil); r.OK() || r.BadLineage != 2 || r.DeadExtra != 1 {
		t.Fatalf("without the stream's copies: %+v, want 2 rows of wrong lineage and 1 dead letter not invalid", r)
	}
	r := Check(append(sent, extra...), st, dls, shards, nil)
	if !r.OK() || r.Produced != len(sent) {
		t.Fatalf("with the stream's copies: %+v (%v), want OK and %d produced", r, r.Problems, len(sent))
	}
	st.Rows = append(st.Rows, Row{EventID: foreign.EventID, Customer: foreign.CustomerID, Shard: shard, Seq: f1, Commit: 2})
	st.ScanRows++
	if r := Check(append(sent, extra...), st, dls, shards, nil); r.OK() || r.Unexpected != 1 {
		t.Errorf("a row of a record nobody sent: %+v, want it unexpected", r)
	}
}
