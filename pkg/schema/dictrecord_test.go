package schema

import (
	"testing"

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
		for i, f := range got.Schema().Fields() {
			d, ok := got.Column(i).(*array.Dictionary)
			if !ok {
				continue
			}
			seen := map[string]bool{}
			w := want.Column(i).(*array.String)
			for r := range w.Len() {
				seen[w.Value(r)] = true
			}
			if d.Dictionary().Len() != len(seen) {
				t.Errorf("column %s: dictionary of %d values for %d distinct", f.Name, d.Dictionary().Len(), len(seen))
			}
		}
		want.Release()
		got.Release()
	}
}
