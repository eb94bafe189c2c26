package schema

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const testShard = "file-b3-0271407f9fcd1f3b8a4591d467599fcd"

// rowsRecord builds the batch of what EventColumns should hold for the
// valid ones of raws (raws[i]'s sequence number is first+i+1), less those
// skip names, with the Row path: Decode, then a NewDictionaryRecordBuilder.
func rowsRecord(t *testing.T, raws [][]byte, first int, ingestedAt time.Time, skip func(int) bool) arrow.RecordBatch {
	t.Helper()
	rb := NewDictionaryRecordBuilder(memory.DefaultAllocator)
	for i, raw := range raws {
		e, err := Decode(raw, now)
		if err != nil || (skip != nil && skip(i)) {
			continue
		}
		rb.Append(&Row{Event: e, ShardID: testShard, SequenceNumber: strconv.Itoa(first + i + 1), SubSequence: -1, IngestedAt: ingestedAt})
	}
	return rb.NewRecordBatch()
}

// testRaws returns n generated records, every seventh one invalid, some
// with escapes in their ids.
func testRaws(n int) [][]byte {
	g := NewGenerator(11, now)
	raws := make([][]byte, n)
	for i := range raws {
		switch {
		case i%7 == 3:
			raws[i], _ = g.NextInvalid(now)
		case i%11 == 5:
			e := g.Next(now)
			e.CustomerID = "cus_\"quoted\"\u00e9"
			raws[i] = e.AppendJSON(nil)
		default:
			e := g.Next(now)
			raws[i] = e.AppendJSON(nil)
		}
	}
	return raws
}

// TestEventColumnsMatchesRows decodes the same records into EventColumns
// and through Rows into a dictionary builder, over three batches of
// different sizes, and checks that the two batches are equal (schema,
// values, dictionaries) and that Decode's errors are the same.
func TestEventColumnsMatchesRows(t *testing.T) {
	raws := testRaws(9000)
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	ingested := now.Add(time.Second)
	for _, part := range [][2]int{{0, 5000}, {5000, 5001}, {5001, 9000}} {
		cols.Begin(testShard, part[1]-part[0])
		valid := 0
		for i := part[0]; i < part[1]; i++ {
			err := cols.Decode(raws[i], now, int64(i+1))
			_, want := Decode(raws[i], now)
			if (err == nil) != (want == nil) || (err != nil && err.Error() != want.Error()) {
				t.Fatalf("record %d: error %v, Decode's %v", i, err, want)
			}
			if err == nil {
				valid++
			}
		}
		if cols.Len() != valid {
			t.Fatalf("Len %d, want %d", cols.Len(), valid)
		}
		got := cols.NewRecordBatch(ingested)
		want := rowsRecord(t, raws[part[0]:part[1]], part[0], ingested, nil)
		if !got.Schema().Equal(DictionaryArrowSchema()) {
			t.Fatalf("schema %s, want %s", got.Schema(), DictionaryArrowSchema())
		}
		if err := array.ValidateRecordFull(got); err != nil {
			t.Fatal(err)
		}
		if !array.RecordEqual(got, want) {
			t.Fatalf("batch of records %d-%d differs from the rows' batch:\n got  %v\n want %v", part[0], part[1], got, want)
		}
		if cols.Len() != 0 {
			t.Fatalf("Len %d after NewRecordBatch, want 0", cols.Len())
		}
		got.Release()
		want.Release()
	}
}

// TestEventColumnsDrop drops rows, among them the only ones holding some
// dictionary values, and checks the batch holds the kept rows' values in
// order, and dictionaries of exactly their distinct values (the Parquet
// statistics come from the dictionaries).
func TestEventColumnsDrop(t *testing.T) {
	g := NewGenerator(13, now)
	var raws [][]byte
	for i := range 40 {
		e := g.Next(now)
		if i%10 == 4 { // values no other row has
			e.CustomerID = "cus_only_" + strconv.Itoa(i)
			e.PaymentProcessor = "only-" + strconv.Itoa(i)
		}
		raws = append(raws, e.AppendJSON(nil))
	}
	dropped := func(i int) bool { return i%10 == 4 || i == 0 || i == 39 }
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	cols.Begin(testShard, len(raws))
	for i, raw := range raws {
		if err := cols.Decode(raw, now, int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	drop := make([]bool, cols.Len())
	for i := range drop {
		drop[i] = dropped(i)
	}
	if n := cols.Drop(drop); n != 6 {
		t.Fatalf("Drop removed %d rows, want 6", n)
	}
	if got := cols.EventID(0); got != mustDecode(t, raws[1]).EventID {
		t.Fatalf("first row's event_id %q after Drop, want the second record's", got)
	}
	got := cols.NewRecordBatch(now.Add(time.Second))
	defer got.Release()
	if err := array.ValidateRecordFull(got); err != nil {
		t.Fatal(err)
	}
	// The kept rows' values, row by row, in a dense batch (a dictionary's
	// order may differ: it keeps the order values were first seen in).
	dense := NewRecordBuilder(memory.DefaultAllocator)
	defer dense.Release()
	for i, raw := range raws {
		if !dropped(i) {
			dense.Append(&Row{Event: mustDecode(t, raw), ShardID: testShard, SequenceNumber: strconv.Itoa(i + 1), SubSequence: -1, IngestedAt: now.Add(time.Second)})
		}
	}
	want := dense.NewRecordBatch()
	defer want.Release()
	if got.NumRows() != want.NumRows() {
		t.Fatalf("%d rows after Drop, want %d", got.NumRows(), want.NumRows())
	}
	checkSameValues(t, want, got)
	checkDictionariesExact(t, want, got)
	for i, f := range got.Schema().Fields() {
		d, ok := got.Column(i).(*array.Dictionary)
		if !ok {
			continue
		}
		for k := range d.Dictionary().Len() {
			if v := d.Dictionary().(*array.String).Value(k); strings.HasPrefix(v, "cus_only_") || strings.HasPrefix(v, "only-") {
				t.Errorf("column %s: dictionary keeps %q of a dropped row", f.Name, v)
			}
		}
	}
	if n := cols.Drop(nil); n != 0 {
		t.Fatalf("Drop of an empty batch removed %d", n)
	}
}

// TestEventColumnsEmptyBatch: a batch of no valid event (a batch of
// rejects only still commits its position) is an empty record batch with
// the layout.
func TestEventColumnsEmptyBatch(t *testing.T) {
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	cols.Begin(testShard, 10)
	if err := cols.Decode([]byte(`{"event_id": 1}`), now, 1); err == nil {
		t.Fatal("an invalid record was accepted")
	}
	rec := cols.NewRecordBatch(now)
	defer rec.Release()
	if rec.NumRows() != 0 || !rec.Schema().Equal(DictionaryArrowSchema()) {
		t.Fatalf("empty batch: %d rows, schema %s", rec.NumRows(), rec.Schema())
	}
	if err := array.ValidateRecordFull(rec); err != nil {
		t.Fatal(err)
	}
}

func mustDecode(t *testing.T, raw []byte) Event {
	t.Helper()
	e, err := Decode(raw, now)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEventColumnsReuseOnlyReleasedMemory builds batches while an earlier
// one is still held: a held batch keeps its values (its memory is not
// reused), and once released its memory is reused by the next batch,
// whose values are right too.
func TestEventColumnsReuseOnlyReleasedMemory(t *testing.T) {
	raws := testRaws(3000)
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	build := func(first, last int) arrow.RecordBatch {
		cols.Begin(testShard, last-first)
		for i := first; i < last; i++ {
			_ = cols.Decode(raws[i], now, int64(i+1))
		}
		return cols.NewRecordBatch(now)
	}
	check := func(rec arrow.RecordBatch, first, last int) {
		t.Helper()
		dense := NewRecordBuilder(memory.DefaultAllocator)
		defer dense.Release()
		for i := first; i < last; i++ {
			if e, err := Decode(raws[i], now); err == nil {
				dense.Append(&Row{Event: e, ShardID: testShard, SequenceNumber: strconv.Itoa(i + 1), SubSequence: -1, IngestedAt: now})
			}
		}
		d := dense.NewRecordBatch()
		defer d.Release()
		if rec.NumRows() != d.NumRows() {
			t.Fatalf("%d rows, want %d", rec.NumRows(), d.NumRows())
		}
		checkSameColumnValues(t, d, rec)
	}
	a := build(0, 1000)
	b := build(1000, 2000) // a is held: b must not use its memory
	check(a, 0, 1000)
	check(b, 1000, 2000)
	pooled := len(cols.rb.dense.pool.free)
	if pooled != 0 {
		t.Fatalf("%d buffers pooled while both batches are held, want 0", pooled)
	}
	a.Release()
	freed := len(cols.rb.dense.pool.free)
	if freed == 0 {
		t.Fatal("no buffer came back to the pool when the batch was released")
	}
	c := build(2000, 3000) // reuses a's memory
	if len(cols.rb.dense.pool.free) >= freed {
		t.Fatalf("the next batch took none of the %d pooled buffers", freed)
	}
	check(b, 1000, 2000)
	check(c, 2000, 3000)
	b.Release()
	c.Release()
}

// TestSlicePool: Allocate reuses a freed buffer that fits (the smallest
// one, not one more than twice the size), its memory is 8-byte aligned,
// and small or unaligned buffers are not kept.
func TestSlicePool(t *testing.T) {
	var p slicePool
	big := p.Allocate(1 << 20)
	small := p.Allocate(64 << 10)
	if uintptr(unsafe.Pointer(&big[0]))%8 != 0 || uintptr(unsafe.Pointer(&small[0]))%8 != 0 {
		t.Fatal("unaligned memory")
	}
	p.Free(big)
	p.Free(small)
	if got := p.Allocate(40 << 10); &got[0] != &small[0] || len(got) != 40<<10 {
		t.Fatalf("Allocate(40 KiB) did not reuse the 64 KiB buffer")
	}
	if got := p.Allocate(100 << 10); &got[0] == &big[0] {
		t.Fatal("Allocate(100 KiB) took the 1 MiB buffer (more than twice the size)")
	}
	if got := p.Allocate(600 << 10); &got[0] != &big[0] {
		t.Fatal("Allocate(600 KiB) did not reuse the 1 MiB buffer")
	}
	p.Free(make([]byte, 100))
	odd := make([]byte, 8200)
	p.Free(odd[1:])
	if len(p.free) != 0 {
		t.Fatalf("%d small or unaligned buffers kept, want 0", len(p.free))
	}
}

// TestEventColumnsFirstBatchSizedAtOnce: Begin reserves the first batch's
// strings (a UUID-long event_id, a ten-digit sequence number per row), so
// filling it moves no column; growing by doubling would copy each about
// log2(rows) times.
func TestEventColumnsFirstBatchSizedAtOnce(t *testing.T) {
	g := NewGenerator(17, now)
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	const rows = 1000
	cols.Begin(testShard, rows)
	var idData, seqData *byte
	for i := range rows {
		e := g.Next(now)
		e.EventID = "0c6f2a1e-9d7b-4c11-8f0e-" + strconv.Itoa(100_000_000_000+i) // 36 bytes
		if err := cols.Decode(e.AppendJSON(nil), now, int64(9_000_000_000+i)); err != nil {
			t.Fatal(err)
		}
		c := cols.rb.dense
		if i == 0 {
			idData, seqData = &c.idData[:1][0], &c.seqData[:1][0]
		} else if &c.idData[:1][0] != idData || &c.seqData[:1][0] != seqData {
			t.Fatalf("row %d moved the event_id or sequence_number bytes: the batch was not sized at Begin", i)
		}
	}
}
