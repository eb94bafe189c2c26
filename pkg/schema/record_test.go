package schema

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"
)

// The Arrow and Iceberg schemas derive from the same column table; this
// test catches a builder that appends in a different order than Columns.
func TestRecordBuilderMatchesColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	e := NewGenerator(1, now).Next(now)
	row := Row{Event: e, ShardID: "shardId-000000000001", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", SubSequence: 3, IngestedAt: now.Add(time.Second)}
	plain := row
	plain.SubSequence = -1
	rec := BuildRecordBatch(mem, []Row{row, plain})
	defer rec.Release()
	if rec.NumRows() != 2 || int(rec.NumCols()) != len(Columns) {
		t.Fatalf("rows=%d cols=%d", rec.NumRows(), rec.NumCols())
	}
	want := map[string]string{
		ColEventID: e.EventID, ColEventType: e.EventType, ColCustomerID: e.CustomerID, ColCurrency: e.Currency,
		ColSubscriptionTier: e.SubscriptionTier, ColStatus: e.Status, ColCountryCode: e.CountryCode,
		ColPaymentProcessor: e.PaymentProcessor, ColShardID: row.ShardID, ColSequenceNumber: row.SequenceNumber,
	}
	for i, f := range rec.Schema().Fields() {
		col := rec.Column(i)
		switch f.Name {
		case ColAmountUSD:
			d := col.(*array.Decimal128).Value(0)
			if d.LowBits() != uint64(e.AmountUSD) {
				t.Errorf("amount %v, want %d cents", d, e.AmountUSD)
			}
		case ColEventTS:
			if got := col.(*array.Timestamp).Value(0); got != arrow.Timestamp(e.EventTS.UnixMicro()) {
				t.Errorf("event_ts %v", got)
			}
		case ColIngestedAt:
			if got := col.(*array.Timestamp).Value(0); got != arrow.Timestamp(row.IngestedAt.UnixMicro()) {
				t.Errorf("ingested_at %v", got)
			}
		case ColSubSequence:
			c := col.(*array.Int64)
			if c.IsNull(0) || c.Value(0) != 3 {
				t.Errorf("sub_sequence_number of a user record = %v, want 3", c.ValueStr(0))
			}
			if !c.IsNull(1) {
				t.Errorf("sub_sequence_number of a plain record = %v, want NULL", c.ValueStr(1))
			}
		default:
			if got := col.(*array.String).Value(0); got != want[f.Name] {
				t.Errorf("%s = %q, want %q", f.Name, got, want[f.Name])
			}
		}
	}
}

// TestRecordBuilderReservesTheLastBatch: a builder reused for batches of
// the same size starts each batch with room for all of it, and the batches
// hold the same rows a fresh builder makes.
func TestRecordBuilderReservesTheLastBatch(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	g := NewGenerator(2, now)
	rows := make([]Row, 1000)
	for i := range rows {
		rows[i] = Row{Event: g.Next(now), ShardID: "s", SequenceNumber: "1", IngestedAt: now}
	}
	rb := NewRecordBuilder(mem)
	defer rb.Release()
	for batch := range 3 {
		for i := range rows {
			rb.Append(&rows[i])
			if batch == 0 || i > 0 {
				continue
			}
			for c, f := range rb.b.Fields() {
				data := rb.lastData[c]
				if sb, ok := f.(*array.StringBuilder); ok {
					data = sb.DataCap()
				}
				if f.Cap() < len(rows) || data < rb.lastData[c] {
					t.Fatalf("batch %d, column %s: room for %d rows and %d bytes after one row, want %d and %d",
						batch, Columns[c].Name, f.Cap(), data, len(rows), rb.lastData[c])
				}
			}
		}
		got := rb.NewRecordBatch()
		want := BuildRecordBatch(mem, rows)
		if !array.RecordEqual(got, want) {
			t.Fatalf("batch %d differs from a fresh builder's", batch)
		}
		got.Release()
		want.Release()
	}
}

func TestArrowSchemaConvertsToIcebergSchema(t *testing.T) {
	got, err := table.ArrowSchemaToIceberg(ArrowSchema(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := IcebergSchema()
	if len(got.Fields()) != len(want.Fields()) {
		t.Fatalf("arrow schema converts to\n%s\nwant\n%s", got, want)
	}
	for i, w := range want.Fields() {
		g := got.Fields()[i]
		if g.ID != w.ID || g.Name != w.Name || !g.Type.Equals(w.Type) || g.Required != w.Required {
			t.Errorf("column %d: arrow gives %d %s %s required=%v; iceberg has %d %s %s required=%v",
				i, g.ID, g.Name, g.Type, g.Required, w.ID, w.Name, w.Type, w.Required)
		}
	}
	if f, _ := want.FindFieldByName(ColEventID); !f.Required {
		t.Error("event_id must be required")
	}
	if f, _ := want.FindFieldByName(ColAmountUSD); f.Type.String() != "decimal(12, 2)" {
		t.Errorf("amount_usd type %s", f.Type)
	}
}

// countingAllocator counts the buffer growths an allocator is asked for.
type countingAllocator struct {
	memory.Allocator
	reallocs int
}

func (a *countingAllocator) Reallocate(size int, b []byte) []byte {
	a.reallocs++
	return a.Allocator.Reallocate(size, b)
}

func TestRecordBuilderGrowMakesRoomForRows(t *testing.T) {
	checked := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer checked.AssertSize(t, 0)
	mem := &countingAllocator{Allocator: checked}
	g := NewGenerator(3, now)
	parts := [][]Row{make([]Row, 700), make([]Row, 1300)}
	var all []Row
	for p, rows := range parts {
		for i := range rows {
			seq := strings.Repeat("7", 1+i%40) // lengths vary, as sequence numbers do
			rows[i] = Row{Event: g.Next(now), ShardID: "shardId-00" + strconv.Itoa(p), SequenceNumber: seq, IngestedAt: now}
		}
		all = append(all, rows...)
	}
	rb := NewRecordBuilder(mem)
	defer rb.Release()
	for _, rows := range parts {
		rb.Grow(rows)
	}
	mem.reallocs = 0
	for i := range all {
		rb.Append(&all[i])
	}
	if mem.reallocs != 0 {
		t.Errorf("appending %d rows after Grow reallocated %d buffers, want 0", len(all), mem.reallocs)
	}
	got := rb.NewRecordBatch()
	defer got.Release()
	want := BuildRecordBatch(checked, all)
	defer want.Release()
	if !array.RecordEqual(got, want) {
		t.Error("rows appended after Grow differ from a fresh builder's")
	}
}
