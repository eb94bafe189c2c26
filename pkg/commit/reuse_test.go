package commit_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// flakyDeadLetters fails the first fail Stage calls, then stages in the
// real store.
type flakyDeadLetters struct {
	commit.DeadLetters
	fail int
}

func (f *flakyDeadLetters) Stage(ctx context.Context, commitID, shard, first, last string, recs []commit.Rejected) (string, error) {
	if f.fail > 0 {
		f.fail--
		return "", errors.New("disk full")
	}
	return f.DeadLetters.Stage(ctx, commitID, shard, first, last, recs)
}

// TestStepBatchesHoldTheirOwnRows commits batches of different shards,
// sizes and values through one Step, one of them first failing after its
// rows were appended (the dead-letter store refuses it), and reads the
// table back: it holds exactly the rows of the committed batches, every
// column as given, nothing of the failed attempt twice and nothing of one
// batch in another.
func TestStepBatchesHoldTheirOwnRows(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.step(t, func(c *commit.Config) { c.DeadLetters = &flakyDeadLetters{DeadLetters: e.dl, fail: 1} })

	var want []string
	commitParts := func(parts ...commit.Part) error {
		out, err := s.Commit(ctx, parts)
		if err != nil {
			return err
		}
		for _, p := range parts {
			rows := slices.Clone(p.Rows)
			for i := range rows {
				rows[i].IngestedAt = out.IngestedAt
			}
			rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
			want = append(want, rowStrings(rec)...)
			rec.Release()
		}
		return nil
	}

	a := part("a", "", 1, 300)
	reject(&a, "301")
	if err := commitParts(a); err == nil {
		t.Fatal("the first commit went through a failing dead-letter store")
	}
	if err := commitParts(a); err != nil { // the same part again
		t.Fatal(err)
	}
	if err := commitParts(part("a", "301", 302, 40), part("b", "", 1, 1000)); err != nil {
		t.Fatal(err)
	}
	c := part("c", "", 1, 20)
	for i := range c.Rows {
		c.Rows[i].SubSequence = int64(i % 3)
		c.Rows[i].CountryCode = "Z" + strconv.Itoa(i%5)
	}
	if err := commitParts(c); err != nil {
		t.Fatal(err)
	}

	got := tableRows(t, e)
	slices.Sort(got)
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("table holds %d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("table row\n%s\nwant\n%s", got[i], want[i])
		}
	}
}

// tableRows returns every row of e's table, as rowStrings renders them.
func tableRows(t *testing.T, e *env) []string {
	t.Helper()
	ctx := context.Background()
	tbl, err := e.cat.LoadTable(ctx, e.ident)
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 0)
	defer rdr.Release()
	var rows []string
	for rdr.Next() {
		rows = append(rows, rowStrings(rdr.RecordBatch())...)
	}
	return rows
}

// rowStrings renders each row of rec as its columns' values in
// schema.Columns order.
func rowStrings(rec arrow.RecordBatch) []string {
	out := make([]string, rec.NumRows())
	for _, c := range schema.Columns {
		col := rec.Column(rec.Schema().FieldIndices(c.Name)[0])
		for i := range out {
			out[i] += c.Name + "=" + valueString(col, i) + " "
		}
	}
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func valueString(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "NULL"
	}
	switch a := col.(type) {
	case *array.Dictionary:
		return valueString(a.Dictionary(), a.GetValueIndex(i))
	case *array.String:
		return strconv.Quote(a.Value(i))
	case *array.Timestamp:
		return strconv.FormatInt(int64(a.Value(i)), 10)
	case *array.Decimal128:
		return a.Value(i).ToString(2)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	}
	return col.ValueStr(i)
}
