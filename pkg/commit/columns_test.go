package commit_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// columnsPart builds a part of shard whose events are in an
// EventColumns: n generated events at sequence numbers first, first+1, …,
// with the event ids given (by row) or "<shard>-<sequence>".
func columnsPart(t *testing.T, shard, after string, first, n int, ids map[int]string) commit.Part {
	t.Helper()
	gen := schema.NewGenerator(uint64(first), time.Now())
	cols := schema.NewEventColumns(memory.DefaultAllocator)
	t.Cleanup(cols.Release)
	cols.Begin(shard, n)
	p := commit.Part{Shard: shard, After: after, Columns: cols}
	for i := range n {
		ev := gen.Next(time.Now())
		seq := first + i
		ev.EventID = shard + "-" + strconv.Itoa(seq)
		if id, ok := ids[i]; ok {
			ev.EventID = id
		}
		if err := cols.Decode(ev.AppendJSON(nil), time.Now(), int64(seq)); err != nil {
			t.Fatal(err)
		}
		p.Last = strconv.Itoa(seq)
	}
	return p
}

// TestStepColumnsPartKeepsFirstCopies commits a part whose events are in
// columns, with ids repeated inside the batch (across the window's check
// groups) and one a committed batch already holds: the table gets each id
// once, from its first copy, the outcome counts the duplicates, and the
// columns are empty afterwards.
func TestStepColumnsPartKeepsFirstCopies(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	step := e.step(t, nil)
	if _, err := step.Commit(ctx, []commit.Part{columnsPart(t, "f", "", 1, 10, nil)}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	repeats := map[int]int{5: 4, 64: 63, 65: 63, 130: 7, 199: 128} // row → the earlier row it repeats
	ids := map[int]string{0: "f-3"}                                // committed by the first batch
	for r, of := range repeats {
		ids[r] = "f-" + strconv.Itoa(11+of)
	}
	p := columnsPart(t, "f", "10", 11, n, ids)
	out, err := step.Commit(ctx, []commit.Part{p})
	if err != nil {
		t.Fatal(err)
	}
	if want := n - len(repeats) - 1; out.Kept["f"] != want || out.Duplicates["f"] != len(repeats)+1 || out.Rows != int64(want) {
		t.Fatalf("kept %d, duplicates %d, table rows %d; want %d, %d, %d", out.Kept["f"], out.Duplicates["f"], out.Rows, want, len(repeats)+1, want)
	}
	if p.Columns.Len() != 0 {
		t.Fatalf("the part's columns hold %d rows after the commit, want 0", p.Columns.Len())
	}

	seqOf := map[string][]string{} // event_id → sequence numbers in the table
	for _, row := range tableRows(t, e) {
		id := between(row, `event_id="`, `"`)
		seqOf[id] = append(seqOf[id], between(row, `sequence_number="`, `"`))
	}
	if len(seqOf) != 10+n-len(repeats)-1 {
		t.Fatalf("table holds %d distinct ids, want %d", len(seqOf), 10+n-len(repeats)-1)
	}
	for id, seqs := range seqOf {
		if len(seqs) != 1 {
			t.Fatalf("table holds %s %d times (sequence numbers %v)", id, len(seqs), seqs)
		}
	}
	for _, of := range repeats { // each repeated id from its first row
		id := "f-" + strconv.Itoa(11+of)
		if want := strconv.Itoa(11 + of); !slices.Equal(seqOf[id], []string{want}) {
			t.Errorf("%s comes from sequence numbers %v, want its first copy's %s", id, seqOf[id], want)
		}
	}
	if !slices.Equal(seqOf["f-3"], []string{"3"}) {
		t.Errorf("f-3 comes from %v, want the first batch's 3", seqOf["f-3"])
	}
}

// TestStepRefusesColumnsBesideOtherParts: a columns part is committed
// alone, holds no Rows, and its columns are of its own shard.
func TestStepRefusesColumnsBesideOtherParts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	step := e.step(t, nil)
	withRows := columnsPart(t, "f", "", 1, 3, nil)
	withRows.Rows = part("f", "", 4, 1).Rows
	for name, c := range map[string]struct {
		parts []commit.Part
		want  string
	}{
		"beside a rows part": {[]commit.Part{columnsPart(t, "f", "", 1, 3, nil), part("a", "", 1, 2)}, "not committed alone"},
		"with rows too":      {[]commit.Part{withRows}, "both rows and columns"},
		"of another shard":   {[]commit.Part{func() commit.Part { p := columnsPart(t, "f", "", 1, 3, nil); p.Shard = "g"; return p }()}, "columns of shard f"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := step.Commit(ctx, c.parts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
	pos, err := e.sink.Positions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 0 {
		t.Fatalf("positions %v after refused commits, want none", pos)
	}
}
