package iceberg

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
)

func TestDeadLetterWriteOverwriteRead(t *testing.T) {
	wh := fileURL(filepath.Join(t.TempDir(), "warehouse"))
	testDeadLetter(t, wh)
}

func testDeadLetter(t *testing.T, wh string) {
	t.Helper()
	ctx := context.Background()
	ident := table.Identifier{"netflix_revenue_raw", "subscription_payments"}
	reg := prometheus.NewRegistry()
	dl := NewDeadLetter(wh, "", ident, reg)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	binary := []byte{0xff, 0xfe, 'x', 0x00}
	recs := []commit.Rejected{
		{Raw: []byte(`{"event_id":"e1","amount_usd":"abc"}`), Reasons: []string{"amount_usd: not a number"}, Shard: "shardId-1", Sequence: "12", ArrivedAt: at},
		{Raw: binary, Reasons: []string{"not JSON", "not UTF-8"}, Shard: "shardId-1", Sequence: "9", ArrivedAt: at},
	}
	loc, err := dl.Write(ctx, "shardId-1", "5", "20", recs)
	if err != nil {
		t.Fatal(err)
	}
	if want := wh + "/_dead_letter/netflix_revenue_raw.subscription_payments/shardId-1/5-20.ndjson"; loc != want {
		t.Errorf("location = %s\nwant %s", loc, want)
	}
	// A replay of the same batch rewrites the same object.
	if loc2, err := dl.Write(ctx, "shardId-1", "5", "20", recs); err != nil || loc2 != loc {
		t.Fatalf("replay: %s, %v", loc2, err)
	}
	if _, err := dl.Write(ctx, "shardId-2", "1", "1", []commit.Rejected{{Raw: []byte("x"), Reasons: []string{"r"}, Sequence: "1", ArrivedAt: at}}); err != nil {
		t.Fatal(err)
	}

	got, err := ReadDeadLetters(ctx, wh, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d records, want 3 (the replay must not duplicate): %+v", len(got), got)
	}
	// Sorted by shard then sequence as big integers: 9 before 12.
	if got[0].Sequence != "9" || got[1].Sequence != "12" || got[2].Shard != "shardId-2" {
		t.Errorf("order: %+v", got)
	}
	if !got[0].RawBase64 || got[1].RawBase64 {
		t.Errorf("raw_base64 flags = %v, %v; want true for binary, false for text", got[0].RawBase64, got[1].RawBase64)
	}
	raw, err := got[0].RawBytes()
	if err != nil || string(raw) != string(binary) {
		t.Errorf("binary raw round trip = %q, %v", raw, err)
	}
	if got[1].Raw != `{"event_id":"e1","amount_usd":"abc"}` || strings.Join(got[1].Reasons, ";") != "amount_usd: not a number" {
		t.Errorf("text record = %+v", got[1])
	}
	if !got[1].ArrivedAt.Equal(at) || got[1].Table != "netflix_revenue_raw.subscription_payments" {
		t.Errorf("record = %+v", got[1])
	}
	if got[2].Shard != "shardId-2" {
		t.Errorf("shard defaulted to %q", got[2].Shard)
	}
	if v := metricValue(t, reg, "paystream_deadletter_records_total"); v != 5 {
		t.Errorf("records metric = %v, want 5", v)
	}
	// Nothing to write: no object.
	if loc, err := dl.Write(ctx, "shardId-3", "1", "2", nil); loc != "" || err != nil {
		t.Errorf("empty write = %q, %v", loc, err)
	}
	// Another prefix is another store.
	if other, err := ReadDeadLetters(ctx, wh, "elsewhere", ident); err != nil || len(other) != 0 {
		t.Errorf("empty store read = %d records, %v", len(other), err)
	}
}
