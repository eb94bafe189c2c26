package schema

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestDictionaryRecordBuilderSameValues builds the same rows with both
// builders, over several batches of different sizes (each dictionary
// starts afresh), and checks every value of every column is the same and
// that each dictionary holds only the batch's distinct values.
func TestDictionaryRecordBuilderSameValues(t *testing.T) {
	rows := generatedRows(7000)
	rows[5].CountryCode = "" // an empty value is a value
	rows[6].SubSequence = 3
	dense := NewRecordBuilder(memory.DefaultAllocator)
	defer dense.Release()
	dict := NewDictionaryRecordBuilder(memory.DefaultAllocator)
	defer dict.Release()
	for _, part := range [][]Row{rows[:4000], rows[4000:4001], rows[4001:]} {
		dict.Grow(part)
		for i := range part {
			dense.Append(&part[i])
			dict.Append(&part[i])
		}
		want, got := dense.NewRecordBatch(), dict.NewRecordBatch()
		if !got.Schema().Equal(DictionaryArrowSchema()) {
			t.Fatalf("schema %s, want %s", got.Schema(), DictionaryArrowSchema())
		}
		if got.NumRows() != int64(len(part)) {
			t.Fatalf("%d rows, want %d", got.NumRows(), len(part))
		}
		checkSameValues(t, want, got)
		checkDictionariesExact(t, want, got)
		want.Release()
		got.Release()
	}
}

// checkDictionariesExact fails t unless each dictionary column of dict
// holds as many values as the same column of dense has distinct ones:
// a dictionary with a value no row has would widen the Parquet
// statistics taken from it.
func checkDictionariesExact(t *testing.T, dense, dict arrow.RecordBatch) {
	t.Helper()
	for i, f := range dict.Schema().Fields() {
		d, ok := dict.Column(i).(*array.Dictionary)
		if !ok {
			continue
		}
		seen := map[string]bool{}
		w := dense.Column(i).(*array.String)
		for r := range w.Len() {
			seen[w.Value(r)] = true
		}
		if d.Dictionary().Len() != len(seen) {
			t.Errorf("column %s: dictionary of %d values for %d distinct", f.Name, d.Dictionary().Len(), len(seen))
		}
	}
}

// TestDictionaryRecordBuilderBatchesIndependent builds batches of rows
// with and without sub-sequence numbers (NULL for plain records), with and
// without Grow, and checks every batch against the dense builder's after
// all of them are built: a batch's columns must not change when the
// builder goes on to the next.
func TestDictionaryRecordBuilderBatchesIndependent(t *testing.T) {
	rows := generatedRows(9000)
	for i := range rows {
		switch {
		case i < 3000: // a file's lines: no sub-sequence numbers
			rows[i].SubSequence = -1
		case i < 6000: // KPL user records mixed with plain records
			if i%3 == 0 {
				rows[i].SubSequence = -1
			} else {
				rows[i].SubSequence = int64(i % 7)
			}
		default:
			rows[i].SubSequence = int64(i)
		}
	}
	parts := []struct {
		rows []Row
		grow bool
	}{
		{rows[:3000], true},
		{rows[3000:6000], false}, // as large as the last: room from it
		{rows[6000:6001], true},
		{rows[6001:], false}, // larger than the last: grows as it goes
	}
	dense := NewRecordBuilder(memory.DefaultAllocator)
	defer dense.Release()
	dict := NewDictionaryRecordBuilder(memory.DefaultAllocator)
	defer dict.Release()
	var wants, gots []arrow.RecordBatch
	for _, p := range parts {
		if p.grow {
			dict.Grow(p.rows)
		}
		for i := range p.rows {
			dense.Append(&p.rows[i])
			dict.Append(&p.rows[i])
		}
		wants = append(wants, dense.NewRecordBatch())
		gots = append(gots, dict.NewRecordBatch())
	}
	for i := range wants {
		if gots[i].NumRows() != int64(len(parts[i].rows)) {
			t.Fatalf("batch %d: %d rows, want %d", i, gots[i].NumRows(), len(parts[i].rows))
		}
		checkSameValues(t, wants[i], gots[i])
		col := gots[i].Column(gots[i].Schema().FieldIndices(ColSubSequence)[0])
		nulls := 0
		for _, r := range parts[i].rows {
			if r.SubSequence < 0 {
				nulls++
			}
		}
		if col.NullN() != nulls {
			t.Errorf("batch %d: %d NULL sub-sequence numbers, want %d", i, col.NullN(), nulls)
		}
		wants[i].Release()
		gots[i].Release()
	}
}
