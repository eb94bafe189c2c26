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

func TestDeadLetterStagePublishRead(t *testing.T) {
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
	const c1, c2 = "0b6f3c8e-0000-4000-8000-000000000001", "0b6f3c8e-0000-4000-8000-000000000002"
	loc, err := dl.Stage(ctx, c1, "shardId-1", "5", "20", recs)
	if err != nil {
		t.Fatal(err)
	}
	if want := wh + "/_dead_letter_pending/netflix_revenue_raw.subscription_payments/" + c1 + "/shardId-1/5-20.ndjson"; loc != want {
		t.Errorf("pending location = %s\nwant %s", loc, want)
	}
	if got, err := ReadDeadLetters(ctx, wh, "", ident); err != nil || len(got) != 0 {
		t.Fatalf("staged records are readable before their commit landed: %d, %v", len(got), err)
	}
	if _, err := dl.Stage(ctx, c1, "shardId-2", "1", "1", []commit.Rejected{{Raw: []byte("x"), Reasons: []string{"r"}, Sequence: "1", ArrivedAt: at}}); err != nil {
		t.Fatal(err)
	}
	// Publishing twice (the writer, then the maintainer's sweep) is the same.
	for range 2 {
		if _, err := dl.Publish(ctx, c1); err != nil {
			t.Fatal(err)
		}
	}
	// An attempt that did not land is discarded and never readable.
	if _, err := dl.Stage(ctx, c2, "shardId-1", "5", "20", recs); err != nil {
		t.Fatal(err)
	}
	if err := dl.Discard(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if pending, err := dl.listPending(ctx, dl.PendingDir()); err != nil || len(pending) != 0 {
		t.Errorf("pending objects left after publish and discard: %+v, %v", pending, err)
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
	if loc, err := dl.Stage(ctx, c1, "shardId-3", "1", "2", nil); loc != "" || err != nil {
		t.Errorf("empty write = %q, %v", loc, err)
	}
	// Another prefix is another store.
	if other, err := ReadDeadLetters(ctx, wh, "elsewhere", ident); err != nil || len(other) != 0 {
		t.Errorf("empty store read = %d records, %v", len(other), err)
	}
}

// A rejected user record of a KPL aggregate carries its sub-sequence
// number; a plain record and an aggregate rejected whole carry none. The
// store's order is by position.
func TestDeadLetterSubSequence(t *testing.T) {
	wh := fileURL(filepath.Join(t.TempDir(), "warehouse"))
	ctx := context.Background()
	ident := table.Identifier{"netflix_revenue_raw", "subscription_payments"}
	dl := NewDeadLetter(wh, "", ident, prometheus.NewRegistry())
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	recs := []commit.Rejected{
		{Raw: []byte("a"), Reasons: []string{"r"}, Shard: "s", Sequence: "7", SubSequence: 10, ArrivedAt: at},
		{Raw: []byte("b"), Reasons: []string{"r"}, Shard: "s", Sequence: "7", SubSequence: 2, ArrivedAt: at},
		{Raw: []byte("c"), Reasons: []string{"KPL aggregate MD5 mismatch"}, Shard: "s", Sequence: "8", SubSequence: -1, ArrivedAt: at},
	}
	const c1 = "0b6f3c8e-0000-4000-8000-000000000003"
	loc, err := dl.Stage(ctx, c1, "s", recs[0].Position(), recs[2].Position(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/s/7:10-8.ndjson") {
		t.Errorf("pending location %s, want one named by the positions 7:10-8", loc)
	}
	if _, err := dl.Publish(ctx, c1); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDeadLetters(ctx, wh, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	var pos []string
	for _, r := range got {
		pos = append(pos, r.Position())
	}
	if strings.Join(pos, " ") != "7:2 7:10 8" {
		t.Fatalf("positions %v, want [7:2 7:10 8]", pos)
	}
	if got[2].SubSequence != nil {
		t.Errorf("aggregate rejected whole has sub_sequence_number %d, want none", *got[2].SubSequence)
	}
	line, err := EncodeDeadLetters(got[:1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(line), `"sequence_number":"7","sub_sequence_number":2,`) {
		t.Errorf("dead-letter line %s lacks sub_sequence_number 2", line)
	}
}
