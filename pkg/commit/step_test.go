package commit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
	"github.com/paystream/paystream/pkg/schema"
)

// env is a real table on the embedded SQLite catalog, its dead-letter
// store and a dedup window.
type env struct {
	warehouse string
	cat       catalog.Catalog
	ident     table.Identifier
	sink      *iceberg.Sink
	dl        *iceberg.DeadLetter
	dd        *dedup.Filter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tbl := icebergtest.SQLite(t)
	dd, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		warehouse: tbl.Config.Warehouse, cat: tbl.Catalog, ident: tbl.Ident, dd: dd,
		sink: tbl.Sink(iceberg.SinkConfig{}), dl: tbl.DeadLetters(),
	}
}

func (e *env) step(t *testing.T, mod func(*commit.Config)) *commit.Step {
	t.Helper()
	cfg := commit.Config{Table: e.sink, DeadLetters: e.dl, Dedup: e.dd}
	if mod != nil {
		mod(&cfg)
	}
	s, err := commit.NewStep(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// part builds a part of shard with n generated rows at sequence numbers
// first, first+1, …; a row's event id is "<shard>-<sequence>" (the same
// record read again has the same id), or the next of the ids given.
func part(shard, after string, first int, n int, ids ...string) commit.Part {
	gen := schema.NewGenerator(uint64(first), time.Now())
	p := commit.Part{Shard: shard, After: after}
	for i := range n {
		ev := gen.Next(time.Now())
		seq := strconv.Itoa(first + i)
		ev.EventID = shard + "-" + seq
		if i < len(ids) {
			ev.EventID = ids[i]
		}
		p.Rows = append(p.Rows, schema.Row{Event: ev, ShardID: shard, SequenceNumber: seq})
		p.Arrivals = append(p.Arrivals, time.Now())
		p.Last = seq
	}
	return p
}

func reject(p *commit.Part, seq string) {
	p.Rejected = append(p.Rejected, commit.Rejected{Raw: []byte("{not json"), Reasons: []string{"record: not JSON"}, Shard: p.Shard, Sequence: seq})
	if commit.CompareSeq(seq, p.Last) > 0 {
		p.Last = seq
	}
}

func TestStepCommitsRowsDeadLettersAndWindow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := part("a", "", 1, 5, "dup", "dup") // the second "dup" is a duplicate within the batch
	reject(&a, "6")
	b := part("b", "", 1, 3)
	out, err := e.step(t, nil).Commit(ctx, []commit.Part{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if out.Kept["a"] != 4 || out.Kept["b"] != 3 || out.Duplicates["a"] != 1 || out.Rejected["a"] != 1 {
		t.Errorf("outcome kept %v duplicates %v rejected %v; want a:4 b:3, a:1, a:1", out.Kept, out.Duplicates, out.Rejected)
	}
	if out.Rows != 7 || len(out.Arrivals) != 7 {
		t.Errorf("table got %d rows, %d arrivals; want 7, 7", out.Rows, len(out.Arrivals))
	}
	pos, err := e.sink.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pos["a"] != "6" || pos["b"] != "3" {
		t.Errorf("positions %v, want a=6 (the reject is covered) b=3", pos)
	}
	dls, err := iceberg.ReadDeadLetters(ctx, e.warehouse, "", e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Shard != "a" || dls[0].Sequence != "6" {
		t.Errorf("dead letters %+v, want the one reject of a at 6", dls)
	}
	if got := e.dd.Len("a"); got != 4 {
		t.Errorf("window of a holds %d ids, want the 4 committed", got)
	}
	// The window now drops a later copy of a committed id.
	again := part("a", "6", 7, 1, "dup")
	out, err = e.step(t, nil).Commit(ctx, []commit.Part{again})
	if err != nil {
		t.Fatal(err)
	}
	if out.Kept["a"] != 0 || out.Duplicates["a"] != 1 {
		t.Errorf("a later copy: kept %d duplicates %d, want 0 and 1", out.Kept["a"], out.Duplicates["a"])
	}
}

func TestStepMovedNamesTheMovedShardsOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// Another writer commits shard a first.
	if _, err := e.step(t, func(c *commit.Config) { c.Dedup = nil }).Commit(ctx, []commit.Part{part("a", "", 1, 2)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.step(t, nil).Commit(ctx, []commit.Part{part("a", "", 1, 3), part("b", "", 1, 2)})
	var moved *commit.MovedError
	if !errors.As(err, &moved) || !errors.Is(err, commit.ErrPositionMoved) {
		t.Fatalf("err = %v, want a *MovedError that is ErrPositionMoved", err)
	}
	if len(moved.Moved) != 1 || moved.Moved["a"] != "2" {
		t.Errorf("moved %v, want only a, at 2", moved.Moved)
	}
	if e.dd.Len("a") != 0 || e.dd.Len("b") != 0 {
		t.Errorf("windows hold a:%d b:%d ids after a refused batch, want none", e.dd.Len("a"), e.dd.Len("b"))
	}
	// b's part is still good as it was.
	out, err := e.step(t, nil).Commit(ctx, []commit.Part{part("b", "", 1, 2)})
	if err != nil || out.Kept["b"] != 2 {
		t.Fatalf("b again: kept %d, err %v; want 2, nil", out.Kept["b"], err)
	}
}

// failingDeadLetters refuses every write.
type failingDeadLetters struct{ calls int }

func (f *failingDeadLetters) Stage(context.Context, string, string, string, string, []commit.Rejected) (string, error) {
	f.calls++
	return "", errors.New("disk full")
}

func (f *failingDeadLetters) Publish(context.Context, string) (int, error) {
	return 0, errors.New("disk full")
}

func (f *failingDeadLetters) Discard(context.Context, string) error { return errors.New("disk full") }

func TestStepDeadLetterFailureCommitsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	fdl := &failingDeadLetters{}
	a := part("a", "", 1, 3)
	reject(&a, "4")
	_, err := e.step(t, func(c *commit.Config) { c.DeadLetters = fdl }).Commit(ctx, []commit.Part{a})
	if err == nil || fdl.calls != 1 {
		t.Fatalf("err = %v after %d dead-letter writes; want the store's error after 1", err, fdl.calls)
	}
	pos, err := e.sink.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 0 || e.dd.Len("a") != 0 {
		t.Errorf("positions %v, window %d ids after a failed dead-letter write; want none", pos, e.dd.Len("a"))
	}
	// Without a dead-letter store, a part with rejects is refused before
	// anything is written.
	_, err = e.step(t, func(c *commit.Config) { c.DeadLetters = nil }).Commit(ctx, []commit.Part{a})
	if err == nil {
		t.Fatal("rejects without a dead-letter store were accepted")
	}
}

// failingTable refuses every commit and reports no positions.
type failingTable struct{ commits int }

func (f *failingTable) Commit(context.Context, commit.Batch) (commit.Result, error) {
	f.commits++
	return commit.Result{}, errors.New("connection reset")
}

func (f *failingTable) Positions(context.Context) (map[string]string, error) { return nil, nil }

func TestStepTableFailureLeavesTheWindowAlone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ft := &failingTable{}
	a := part("a", "", 1, 4)
	if _, err := e.step(t, func(c *commit.Config) { c.Table = ft }).Commit(ctx, []commit.Part{a}); err == nil || ft.commits != 1 {
		t.Fatalf("err = %v after %d commits; want the table's error after 1", err, ft.commits)
	}
	if e.dd.Len("a") != 0 {
		t.Errorf("window holds %d ids after a failed commit, want none", e.dd.Len("a"))
	}
	// The same rows committed for real are not taken for duplicates.
	out, err := e.step(t, nil).Commit(ctx, []commit.Part{a})
	if err != nil || out.Kept["a"] != 4 || out.Duplicates["a"] != 0 {
		t.Fatalf("retry: kept %d duplicates %d err %v; want 4, 0, nil", out.Kept["a"], out.Duplicates["a"], err)
	}
	if !slices.Equal([]int{out.Kept["a"]}, []int{e.dd.Len("a")}) {
		t.Errorf("window holds %d ids, want %d", e.dd.Len("a"), out.Kept["a"])
	}
}

func TestNewStepNeedsATable(t *testing.T) {
	if _, err := commit.NewStep(commit.Config{}); err == nil {
		t.Fatal("a step without a table was accepted")
	}
}

// growCounter counts the Arrow buffers grown after their first allocation
// (not those trimmed to their length).
type growCounter struct {
	memory.Allocator
	grown atomic.Int64
}

func (a *growCounter) Reallocate(size int, b []byte) []byte {
	if size > len(b) {
		a.grown.Add(1)
	}
	return a.Allocator.Reallocate(size, b)
}

func TestStepSizesTheBatchBeforeAppending(t *testing.T) {
	e := newEnv(t)
	mem := &growCounter{Allocator: memory.DefaultAllocator}
	parts := []commit.Part{part("a", "", 1, 600), part("b", "", 1, 900)}
	out, err := e.step(t, func(c *commit.Config) { c.Mem = mem }).Commit(context.Background(), parts)
	if err != nil {
		t.Fatal(err)
	}
	if out.Rows != 1500 {
		t.Fatalf("table got %d rows, want 1500", out.Rows)
	}
	if n := mem.grown.Load(); n != 0 {
		t.Errorf("building the 1,500-row batch grew Arrow buffers %d times, want 0 (room made for all parts first)", n)
	}
}

// refusingTable refuses every commit with err, its positions at pos.
type refusingTable struct {
	err error
	pos map[string]string
}

func (f *refusingTable) Commit(context.Context, commit.Batch) (commit.Result, error) {
	return commit.Result{}, f.err
}

func (f *refusingTable) Positions(context.Context) (map[string]string, error) { return f.pos, nil }

// discardCounter counts Discard calls of a real dead-letter store.
type discardCounter struct {
	commit.DeadLetters
	discards int
}

func (d *discardCounter) Discard(ctx context.Context, id string) error {
	d.discards++
	return d.DeadLetters.Discard(ctx, id)
}

// A refused batch's staged dead letters are discarded when the table is
// sure the batch did not land, and left for the maintainer's sweep when an
// earlier attempt's outcome is unknown (it may have landed).
func TestStepKeepsDeadLettersOfAnAttemptThatMayHaveLanded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
		want int // Discard calls
	}{
		{"certainly not landed", commit.ErrPositionMoved, 1},
		{"outcome unknown", fmt.Errorf("%w: %w", commit.ErrOutcomeUnknown, commit.ErrPositionMoved), 0},
	} {
		dl := &discardCounter{DeadLetters: e.dl}
		tbl := &refusingTable{err: tc.err, pos: map[string]string{"a": "9"}}
		a := part("a", "", 1, 3)
		reject(&a, "4")
		_, err := e.step(t, func(c *commit.Config) { c.Table, c.DeadLetters = tbl, dl }).Commit(ctx, []commit.Part{a})
		var moved *commit.MovedError
		if !errors.As(err, &moved) || moved.Moved["a"] != "9" {
			t.Fatalf("%s: err = %v, want a *MovedError naming a at 9", tc.name, err)
		}
		if dl.discards != tc.want {
			t.Errorf("%s: %d discards, want %d", tc.name, dl.discards, tc.want)
		}
	}
}

// TestStepKeepsFirstCopiesAcrossCheckGroups commits a part long enough to
// be checked against the window in several groups, with repeated ids
// inside a group, across the boundary of two groups and far apart: the
// first copy of each id is kept, in row order (the arrivals returned are
// those of exactly the rows kept), and the table holds each id once.
func TestStepKeepsFirstCopiesAcrossCheckGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 200
	p := part("a", "", 1, n)
	repeats := map[int]int{ // row → the earlier row whose id it repeats
		5: 4, 64: 63, 65: 63, 130: 7, 199: 128,
	}
	for r, of := range repeats {
		p.Rows[r].EventID = p.Rows[of].EventID
	}
	base := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range p.Arrivals {
		p.Arrivals[i] = base.Add(time.Duration(i) * time.Second)
	}
	var want []time.Time
	for i := range n {
		if _, ok := repeats[i]; !ok {
			want = append(want, p.Arrivals[i])
		}
	}
	out, err := e.step(t, nil).Commit(ctx, []commit.Part{p})
	if err != nil {
		t.Fatal(err)
	}
	if out.Kept["a"] != n-len(repeats) || out.Duplicates["a"] != len(repeats) {
		t.Fatalf("kept %d duplicates %d, want %d and %d", out.Kept["a"], out.Duplicates["a"], n-len(repeats), len(repeats))
	}
	if !slices.Equal(out.Arrivals, want) {
		t.Fatalf("arrivals of the kept rows:\n%v\nwant\n%v", out.Arrivals, want)
	}
	ids := map[string]int{}
	if err := e.sink.RecentEventIDs(ctx, []string{"a"}, time.Time{}, func(_, id string, _ time.Time) { ids[id]++ }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != n-len(repeats) {
		t.Fatalf("table holds %d distinct ids, want %d", len(ids), n-len(repeats))
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("table holds id %s %d times", id, c)
		}
	}
}
