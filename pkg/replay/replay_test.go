package replay_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
	"github.com/paystream/paystream/pkg/replay"
	"github.com/paystream/paystream/pkg/schema"
)

var arrived = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// env is a real table and its dead-letter store holding, for shard a, two
// events an older decoder rejected but that are valid now and one record
// that is still not JSON; for shard b, one still-invalid record.
type env struct {
	tbl   *icebergtest.Table
	sink  *iceberg.Sink
	store *iceberg.DeadLetter
	ids   []string
}

func newEnv(t *testing.T, tbl *icebergtest.Table) *env {
	t.Helper()
	e := &env{tbl: tbl, sink: tbl.Sink(iceberg.SinkConfig{}), store: tbl.DeadLetters()}
	gen := schema.NewGenerator(7, arrived)
	var a []commit.Rejected
	for i := range 2 {
		ev := gen.Next(arrived)
		e.ids = append(e.ids, ev.EventID)
		a = append(a, commit.Rejected{Raw: ev.AppendJSON(nil), Reasons: []string{"currency: not supported (old decoder)"},
			Shard: "a", Sequence: strconv.Itoa(10 + i), ArrivedAt: arrived})
	}
	a = append(a, commit.Rejected{Raw: []byte("{not json"), Reasons: []string{"old reason"}, Shard: "a", Sequence: "12", ArrivedAt: arrived})
	b := []commit.Rejected{{Raw: []byte("[]"), Reasons: []string{"old reason"}, Shard: "b", Sequence: "5", ArrivedAt: arrived.Add(time.Hour)}}
	ctx := context.Background()
	id := uuid.NewString()
	for _, recs := range [][]commit.Rejected{a, b} {
		if _, err := e.store.Stage(ctx, id, recs[0].Shard, recs[0].Sequence, recs[len(recs)-1].Sequence, recs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.Publish(ctx, id); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) run(t *testing.T, store replay.Store, mod func(*replay.Config)) (replay.Summary, error) {
	t.Helper()
	cfg := replay.Config{Table: e.sink, Store: store}
	if mod != nil {
		mod(&cfg)
	}
	return replay.Run(context.Background(), cfg)
}

// tableIDs counts the event ids of the table's rows of the given shards.
func (e *env) tableIDs(t *testing.T, shards ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := e.sink.RecentEventIDs(context.Background(), shards, time.Time{}, func(_, id string, _ time.Time) {
		out[id]++
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) deadLetters(t *testing.T) []iceberg.DeadLetterRecord {
	t.Helper()
	got, err := iceberg.ReadDeadLetters(context.Background(), e.tbl.Config.Warehouse, "", e.tbl.Ident)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReplayCommitsOnceAndKeepsWhatStillFails(t *testing.T) {
	testReplay(t, icebergtest.SQLite(t))
}

func testReplay(t *testing.T, tbl *icebergtest.Table) {
	e := newEnv(t, tbl)
	sum, err := e.run(t, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Objects != 2 || sum.Replayed != 2 || sum.StillRejected != 2 {
		t.Errorf("summary %+v, want 2 objects, 2 replayed, 2 still rejected", sum)
	}
	if got := e.tableIDs(t, "a"); len(got) != 2 || got[e.ids[0]] != 1 || got[e.ids[1]] != 1 {
		t.Errorf("table ids %v, want %v once each", got, e.ids)
	}
	dls := e.deadLetters(t)
	if len(dls) != 2 || dls[0].Sequence != "12" || dls[1].Shard != "b" {
		t.Fatalf("store after replay %+v, want a/12 and b/5 only", dls)
	}
	if slices.Contains(dls[0].Reasons, "old reason") || len(dls[0].Reasons) == 0 {
		t.Errorf("a/12 reasons %v, want the current decoder's", dls[0].Reasons)
	}

	// A second run adds nothing: no row, no commit.
	before := positions(t, e.sink)
	again, err := e.run(t, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Replayed != 0 || again.StillRejected != 2 || len(e.tableIDs(t, "a")) != 2 {
		t.Errorf("second run %+v, table %v; want nothing replayed", again, e.tableIDs(t, "a"))
	}
	if after := positions(t, e.sink); len(after) != len(before) {
		t.Errorf("second run committed: positions %v, then %v", before, after)
	}
}

func positions(t *testing.T, s *iceberg.Sink) map[string]string {
	t.Helper()
	p, err := s.Positions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// failingReplace crashes the run between the commit and the rewrite.
type failingReplace struct{ replay.Store }

func (failingReplace) Replace(context.Context, string, []iceberg.DeadLetterRecord) error {
	return errors.New("killed")
}

func TestReplayInterruptedAfterCommitResumesWithoutDuplicates(t *testing.T) {
	e := newEnv(t, icebergtest.SQLite(t))
	if _, err := e.run(t, failingReplace{e.store}, nil); err == nil {
		t.Fatal("the run survived its rewrite failing")
	}
	sum, err := e.run(t, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Replayed != 0 || sum.Resumed != 1 {
		t.Errorf("resumed run %+v, want nothing replayed again, 1 object resumed", sum)
	}
	if got := e.tableIDs(t, "a"); len(got) != 2 || got[e.ids[0]] != 1 || got[e.ids[1]] != 1 {
		t.Errorf("table ids %v, want %v once each", got, e.ids)
	}
	if dls := e.deadLetters(t); len(dls) != 2 {
		t.Errorf("store %+v, want the 2 still failing records", dls)
	}
}

func TestReplayShardAndSince(t *testing.T) {
	e := newEnv(t, icebergtest.SQLite(t))
	sum, err := e.run(t, e.store, func(c *replay.Config) { c.Shard = "b" })
	if err != nil || sum.Objects != 1 || sum.Replayed != 0 {
		t.Fatalf("--shard b: %+v, %v; want only b's object, nothing replayed", sum, err)
	}
	sum, err = e.run(t, e.store, func(c *replay.Config) { c.Since = arrived.Add(time.Minute) })
	if err != nil || sum.Objects != 1 {
		t.Fatalf("--since: %+v, %v; want only b's later object", sum, err)
	}
	_, err = e.run(t, e.store, func(c *replay.Config) { c.Shard = "shardId-9" })
	if !errors.Is(err, replay.ErrUnknownShard) {
		t.Fatalf("unknown shard: err = %v, want ErrUnknownShard", err)
	}
}
