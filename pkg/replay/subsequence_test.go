package replay_test

import (
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
	"github.com/paystream/paystream/pkg/replay"
	"github.com/paystream/paystream/pkg/schema"
)

// A replayed user record of a KPL aggregate keeps its sub-sequence number
// on its row; a replayed plain record has none (NULL).
func TestReplayKeepsSubSequence(t *testing.T) {
	ctx := context.Background()
	tbl := icebergtest.SQLite(t)
	store := tbl.DeadLetters()
	gen := schema.NewGenerator(11, arrived)
	user, plain := gen.Next(arrived), gen.Next(arrived)
	recs := []commit.Rejected{
		{Raw: user.AppendJSON(nil), Reasons: []string{"old"}, Shard: "k", Sequence: "7", SubSequence: 3, ArrivedAt: arrived},
		{Raw: plain.AppendJSON(nil), Reasons: []string{"old"}, Shard: "k", Sequence: "8", SubSequence: -1, ArrivedAt: arrived},
	}
	id := uuid.NewString()
	if _, err := store.Stage(ctx, id, "k", recs[0].Position(), recs[1].Position(), recs); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Publish(ctx, id); err != nil {
		t.Fatal(err)
	}
	sum, err := replay.Run(ctx, replay.Config{Table: tbl.Sink(iceberg.SinkConfig{}), Store: store})
	if err != nil || sum.Replayed != 2 {
		t.Fatalf("replay: %+v, %v; want 2 replayed", sum, err)
	}

	it, err := tbl.Catalog.LoadTable(ctx, tbl.Ident)
	if err != nil {
		t.Fatal(err)
	}
	at, err := it.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	got := map[string]string{} // event_id -> sequence[:sub]
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	for tr.Next() {
		rec := tr.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		ids := rec.Column(col(schema.ColEventID)).(*array.String)
		seqs := rec.Column(col(schema.ColSequenceNumber)).(*array.String)
		subs := rec.Column(col(schema.ColSubSequence)).(*array.Int64)
		for i := range int(rec.NumRows()) {
			sub := int64(-1)
			if subs.IsValid(i) {
				sub = subs.Value(i)
			}
			got[ids.Value(i)] = commit.FormatPosition(seqs.Value(i), sub)
		}
	}
	if got[user.EventID] != "7:3" || got[plain.EventID] != "8" || len(got) != 2 {
		t.Errorf("rows at %v; want %s at 7:3 and %s at 8 (sub_sequence_number NULL)", got, user.EventID, plain.EventID)
	}
}
