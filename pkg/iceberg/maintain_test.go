package iceberg

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
)

// The orphan sweep removes a killed writer's data files once they are older
// than OrphanAge, and never the data files of a commit in flight (written,
// not yet committed, younger than the age): that commit lands afterwards
// and every row reads back.
func TestMaintainOrphanSweepSparesInFlightCommit(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	first := makeBatch(t, "s", "", 1, 10)
	if _, err := NewSink(env.cat, env.ident, SinkConfig{}).Commit(ctx, first); err != nil {
		t.Fatal(err)
	}

	// A writer killed after writing its data files: orphans, aged two days.
	dead := &scriptedCatalog{Catalog: env.cat, before: func(int) error { return errors.New("killed") }}
	if _, err := NewSink(dead, env.ident, SinkConfig{MaxRetries: -1}).Commit(ctx, makeBatch(t, "s", first.Ranges[0].Last, 11, 10)); err == nil {
		t.Fatal("commit through a dead catalog succeeded")
	}
	live := liveDataFiles(t, env)
	var orphans []string
	for _, p := range parquetFiles(t, env) {
		if !live[p] {
			orphans = append(orphans, p)
		}
	}
	if len(orphans) == 0 {
		t.Fatal("the killed writer left no data files")
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range orphans {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	// A commit in flight: its data files are written; the sweep runs just
	// before its catalog commit.
	reg := prometheus.NewRegistry()
	sweeper := NewSink(env.cat, env.ident, SinkConfig{Registerer: reg})
	var swept MaintainResult
	var sweepErr error
	var inFlight []string
	writer := &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
		if n != 0 {
			return nil
		}
		for _, p := range parquetFiles(t, env) {
			if !live[p] && !slices.Contains(orphans, p) {
				inFlight = append(inFlight, p)
			}
		}
		swept, sweepErr = sweeper.Maintain(ctx, MaintainOptions{OrphanAge: 24 * time.Hour})
		return nil
	}}
	second := makeBatch(t, "s", first.Ranges[0].Last, 21, 10)
	if _, err := NewSink(writer, env.ident, SinkConfig{}).Commit(ctx, second); err != nil {
		t.Fatalf("in-flight commit after the sweep: %v", err)
	}
	if sweepErr != nil {
		t.Fatalf("Maintain: %v", sweepErr)
	}
	if len(inFlight) == 0 {
		t.Fatal("no in-flight data files seen: the sweep did not run during the commit")
	}
	if swept.OrphansRemoved != len(orphans) {
		t.Errorf("orphans removed = %d, want the killed writer's %d", swept.OrphansRemoved, len(orphans))
	}
	if got := metricValue(t, reg, "paystream_sink_orphan_files_removed_total"); got != float64(len(orphans)) {
		t.Errorf("paystream_sink_orphan_files_removed_total = %v, want %d", got, len(orphans))
	}
	for _, p := range orphans {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("orphan %s older than the age is still there (%v)", p, err)
		}
	}
	for _, p := range inFlight {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("in-flight data file %s: %v", p, err)
		}
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), append(ids("s", 1, 10), ids("s", 21, 10)...))
}

const (
	goneShard = "shardId-000000000000"
	liveShard = "shardId-000000000001"
	fileShard = "file-0123456789abcdef0123456789abcdef"
)

func listing(ids ...string) func(context.Context) ([]string, error) {
	return func(context.Context) ([]string, error) { return ids, nil }
}

func tableProperties(t *testing.T, env *testEnv) map[string]string {
	t.Helper()
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	return maps.Clone(map[string]string(tbl.Properties()))
}

// Maintain drops the position of a shard the stream no longer lists and
// nothing else: other shards' positions, file positions and every other
// table property stay as they were; an empty list drops nothing.
func TestMaintainDropsPositionsOfVanishedShards(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	w := NewSink(env.cat, env.ident, SinkConfig{})
	for _, shard := range []string{goneShard, liveShard, fileShard} {
		if _, err := w.Commit(ctx, makeBatch(t, shard, "", 1, 5)); err != nil {
			t.Fatal(err)
		}
	}
	before := tableProperties(t, env)

	reg := prometheus.NewRegistry()
	m := NewSink(env.cat, env.ident, SinkConfig{Registerer: reg})
	res, err := m.Maintain(ctx, MaintainOptions{LiveShards: listing()})
	if err != nil || len(res.PositionsDropped) != 0 {
		t.Fatalf("with an empty shard list: dropped %v, %v; want nothing", res.PositionsDropped, err)
	}
	if got := tableProperties(t, env); !maps.Equal(got, before) {
		t.Fatalf("properties changed with an empty shard list:\n%v\nwant %v", got, before)
	}

	res, err = m.Maintain(ctx, MaintainOptions{LiveShards: listing(liveShard, "shardId-000000000002")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.PositionsDropped, []string{goneShard}) {
		t.Errorf("dropped %v, want [%s]", res.PositionsDropped, goneShard)
	}
	want := maps.Clone(before)
	delete(want, PositionPropertyPrefix+goneShard)
	if got := tableProperties(t, env); !maps.Equal(got, want) {
		t.Errorf("properties after the drop:\n%v\nwant %v", got, want)
	}
	if got := metricValue(t, reg, "paystream_sink_positions_dropped_total"); got != 1 {
		t.Errorf("paystream_sink_positions_dropped_total = %v, want 1", got)
	}
	res, err = m.Maintain(ctx, MaintainOptions{LiveShards: listing(liveShard)})
	if err != nil || len(res.PositionsDropped) != 0 {
		t.Errorf("second run dropped %v, %v; want nothing", res.PositionsDropped, err)
	}
	var all []string
	for _, shard := range []string{goneShard, liveShard, fileShard} {
		all = append(all, ids(shard, 1, 5)...)
	}
	assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), all)
}

// Commits that race the drop land, whichever reaches the catalog first:
// an append that lands between the drop's table load and its commit makes
// the drop retry (and a shard it adds, created after the list call, keeps
// its position); an append whose table was loaded before the drop landed
// still lands and does not bring the dropped position back (the catalog
// applies its updates to the current metadata: the drop moved no snapshot,
// so the append's pin on main holds).
func TestDropPositionsRacingAppendsLand(t *testing.T) {
	t.Run("append lands first", func(t *testing.T) {
		env := newSQLiteEnv(t)
		ctx := context.Background()
		w := NewSink(env.cat, env.ident, SinkConfig{})
		mustCommit := func(b commit.Batch) {
			t.Helper()
			if _, err := w.Commit(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		mustCommit(makeBatch(t, goneShard, "", 1, 5))
		mustCommit(makeBatch(t, liveShard, "", 1, 5))
		cat := &scriptedCatalog{Catalog: env.cat}
		m := NewSink(cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
		callsAtList := -1
		lister := func(context.Context) ([]string, error) {
			mustCommit(makeBatch(t, liveShard, "5", 6, 5))
			mustCommit(makeBatch(t, "shardId-000000000002", "", 1, 5)) // created after the list
			cat.mu.Lock()
			callsAtList = cat.calls
			cat.mu.Unlock()
			return []string{liveShard}, nil
		}
		res, err := m.Maintain(ctx, MaintainOptions{LiveShards: lister})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.PositionsDropped, []string{goneShard}) {
			t.Errorf("dropped %v, want [%s]", res.PositionsDropped, goneShard)
		}
		if n := cat.calls - callsAtList; callsAtList < 0 || n != 2 {
			t.Errorf("drop made %d catalog commits after the list, want 2 (refused, then retried)", n)
		}
		pos, err := w.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{liveShard: "10", "shardId-000000000002": "5"}
		if !maps.Equal(pos, want) {
			t.Errorf("positions = %v, want %v", pos, want)
		}
		assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident),
			slices.Concat(ids(goneShard, 1, 5), ids(liveShard, 1, 10), ids("shardId-000000000002", 1, 5)))
	})
	t.Run("drop lands first", func(t *testing.T) {
		env := newSQLiteEnv(t)
		ctx := context.Background()
		w := NewSink(env.cat, env.ident, SinkConfig{})
		for _, shard := range []string{goneShard, liveShard} {
			if _, err := w.Commit(ctx, makeBatch(t, shard, "", 1, 5)); err != nil {
				t.Fatal(err)
			}
		}
		m := NewSink(env.cat, env.ident, SinkConfig{})
		var dropped []string
		var dropErr error
		appender := &scriptedCatalog{Catalog: env.cat, before: func(n int) error {
			if n == 0 { // the append's table is loaded and its files written
				var res MaintainResult
				res, dropErr = m.Maintain(ctx, MaintainOptions{LiveShards: listing(liveShard)})
				dropped = res.PositionsDropped
			}
			return nil
		}}
		res, err := NewSink(appender, env.ident, SinkConfig{MinBackoff: time.Millisecond}).Commit(ctx, makeBatch(t, liveShard, "5", 6, 5))
		if err != nil {
			t.Fatalf("append racing the drop: %v", err)
		}
		if dropErr != nil || !slices.Equal(dropped, []string{goneShard}) {
			t.Fatalf("drop: %v, %v; want [%s]", dropped, dropErr, goneShard)
		}
		if res.Rows != 5 {
			t.Errorf("append result %+v, want 5 rows", res)
		}
		pos, err := w.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{liveShard: "10"}; !maps.Equal(pos, want) {
			t.Errorf("positions = %v, want %v", pos, want)
		}
		assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), slices.Concat(ids(goneShard, 1, 5), ids(liveShard, 1, 10)))
	})
}
