package iceberg

import (
	"context"
	"errors"
	"testing"
)

func TestCommitAndPositions(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})

	pos, err := s.Positions(ctx)
	if err != nil || len(pos) != 0 {
		t.Fatalf("fresh table positions = %v, %v; want empty", pos, err)
	}
	res, err := s.Commit(ctx, makeBatch(t, "shardId-000", "", 1, 50))
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if res.Rows != 50 || res.DataFiles < 1 || res.Bytes <= 0 || res.SnapshotID == 0 {
		t.Errorf("result = %+v", res)
	}
	if _, err := s.Commit(ctx, makeBatch(t, "shardId-000", "50", 51, 10)); err != nil {
		t.Fatalf("second commit: %v", err)
	}
	pos, err = s.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pos["shardId-000"] != "60" || len(pos) != 1 {
		t.Errorf("positions = %v, want shardId-000=60", pos)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("shardId-000", 1, 60))
}

func TestPositionMovedNothingAppended(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	if _, err := s.Commit(ctx, makeBatch(t, "s1", "", 1, 5)); err != nil {
		t.Fatal(err)
	}
	before, _ := env.cat.LoadTable(ctx, env.ident)
	for _, after := range []string{"", "3", "6"} {
		_, err := s.Commit(ctx, makeBatch(t, "s1", after, 7, 5))
		if !errors.Is(err, ErrPositionMoved) {
			t.Errorf("after=%q: err = %v, want ErrPositionMoved", after, err)
		}
	}
	after, _ := env.cat.LoadTable(ctx, env.ident)
	if before.CurrentSnapshot().SnapshotID != after.CurrentSnapshot().SnapshotID {
		t.Error("a rejected batch made a snapshot")
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), ids("s1", 1, 5))
}
