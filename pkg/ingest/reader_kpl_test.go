package ingest

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paystream/paystream/pkg/kpl"
	"github.com/paystream/paystream/pkg/schema"
)

// kplRecords returns a GetRecords answer from records given as lists of
// user records: one element is a plain record, more an aggregate.
func kplRecords(t *testing.T, recs map[string][][]byte, order []string) *kinesis.GetRecordsOutput {
	t.Helper()
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(7)}
	for _, seq := range order {
		users := recs[seq]
		data := users[0]
		if len(users) > 1 {
			a, err := kpl.NewAggregator(kpl.MaxAggregateBytes)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				if err := a.Add(kpl.UserRecord{PartitionKey: "pk", Data: u}); err != nil {
					t.Fatal(err)
				}
			}
			agg, _ := a.Flush()
			data = agg.Data
		}
		out.Records = append(out.Records, ktypes.Record{SequenceNumber: aws.String(seq), Data: data})
	}
	return out
}

type chunkSummary struct {
	rows     []string // "SEQ/SUB" per row
	rejected []string
	last     string
	cp       string // the lease checkpoint
}

func summarize(cs []chunk) []chunkSummary {
	var out []chunkSummary
	for _, c := range cs {
		s := chunkSummary{last: c.last, cp: c.checkpoint}
		for _, r := range c.rows {
			s.rows = append(s.rows, r.SequenceNumber+"/"+itoa(r.SubSequence))
		}
		for _, r := range c.rejected {
			s.rejected = append(s.rejected, r.Sequence+"/"+itoa(r.SubSequence))
		}
		out = append(out, s)
	}
	return out
}

func itoa(n int64) string {
	if n < 0 {
		return "-"
	}
	return string(rune('0' + n)) // test subs stay below 10
}

func TestDecodeDeaggregates(t *testing.T) {
	now := time.Now().UTC()
	g := schema.NewGenerator(1, now)
	ev := func() []byte { e := g.Next(now); return e.AppendJSON(nil) }
	bad := []byte(`{"event_id":"broken"`)
	corrupt := kplRecords(t, map[string][][]byte{"9": {ev(), ev()}}, []string{"9"}).Records[0].Data
	corrupt[len(corrupt)-1] ^= 0xff // MD5 no longer matches

	recs := map[string][][]byte{
		"5":  {ev()},                        // plain
		"7":  {ev(), bad, ev(), ev(), ev()}, // aggregate, user record 1 invalid
		"11": {ev()},                        // plain
	}
	out := kplRecords(t, recs, []string{"5", "7", "11"})
	out.Records = slices.Insert(out.Records, 2, ktypes.Record{SequenceNumber: aws.String("9"), Data: corrupt})

	for _, tc := range []struct {
		name    string
		maxRows int
		skip    skip
		want    []chunkSummary
	}{
		{
			name: "one chunk", maxRows: 100,
			want: []chunkSummary{{
				rows:     []string{"5/-", "7/0", "7/2", "7/3", "7/4", "11/-"},
				rejected: []string{"7/1", "9/-"},
				last:     "11", cp: "11",
			}},
		},
		{
			name: "cut inside the aggregate", maxRows: 3,
			want: []chunkSummary{
				{rows: []string{"5/-", "7/0"}, rejected: []string{"7/1"}, last: "7:1", cp: "7:1"},
				{rows: []string{"7/2", "7/3", "7/4"}, last: "7", cp: "7:4"},
				{rows: []string{"11/-"}, rejected: []string{"9/-"}, last: "11", cp: "11"},
			},
		},
		{
			name: "cut at the aggregate's end", maxRows: 6,
			want: []chunkSummary{
				{rows: []string{"5/-", "7/0", "7/2", "7/3", "7/4"}, rejected: []string{"7/1"}, last: "7", cp: "7:4"},
				{rows: []string{"11/-"}, rejected: []string{"9/-"}, last: "11", cp: "11"},
			},
		},
		{
			// Resumed after "5": AFTER_SEQUENCE_NUMBER, nothing dropped.
			name: "skip names another record", maxRows: 100, skip: skip{seq: "4", through: 3},
			want: []chunkSummary{{
				rows:     []string{"5/-", "7/0", "7/2", "7/3", "7/4", "11/-"},
				rejected: []string{"7/1", "9/-"},
				last:     "11", cp: "11",
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &shardReader{shard: "s", maxRows: tc.maxRows, skip: tc.skip, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
			got := summarize(r.decode(out))
			if !slices.EqualFunc(got, tc.want, func(a, b chunkSummary) bool {
				return a.last == b.last && a.cp == b.cp && slices.Equal(a.rows, b.rows) && slices.Equal(a.rejected, b.rejected)
			}) {
				t.Fatalf("chunks:\n got %+v\nwant %+v", got, tc.want)
			}
			if r.skip != (skip{}) {
				t.Errorf("skip %+v not cleared by the first record", r.skip)
			}
		})
	}

	t.Run("metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		r := &shardReader{shard: "s", metrics: NewMetrics(reg), log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
		r.decode(out)
		want := `
# HELP paystream_ingest_kpl_aggregates_read_total Kinesis records read that are KPL aggregates, by shard.
# TYPE paystream_ingest_kpl_aggregates_read_total counter
paystream_ingest_kpl_aggregates_read_total{shard="s"} 2
# HELP paystream_ingest_kpl_deaggregation_failures_total KPL aggregates that did not de-aggregate (bad MD5, malformed) and went to the dead-letter store whole, by shard.
# TYPE paystream_ingest_kpl_deaggregation_failures_total counter
paystream_ingest_kpl_deaggregation_failures_total{shard="s"} 1
# HELP paystream_ingest_records_read_total Kinesis records read, by shard.
# TYPE paystream_ingest_records_read_total counter
paystream_ingest_records_read_total{shard="s"} 4
# HELP paystream_ingest_records_rejected_total Records that failed decoding or validation and went to the dead-letter store, by shard.
# TYPE paystream_ingest_records_rejected_total counter
paystream_ingest_records_rejected_total{shard="s"} 2
# HELP paystream_ingest_user_records_read_total User records read (a plain Kinesis record is one, a KPL aggregate holds many), by shard.
# TYPE paystream_ingest_user_records_read_total counter
paystream_ingest_user_records_read_total{shard="s"} 8
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"paystream_ingest_kpl_aggregates_read_total", "paystream_ingest_kpl_deaggregation_failures_total",
			"paystream_ingest_records_read_total", "paystream_ingest_records_rejected_total", "paystream_ingest_user_records_read_total"); err != nil {
			t.Error(err)
		}
	})

	t.Run("reasons", func(t *testing.T) {
		r := &shardReader{shard: "s", log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
		cs := r.decode(out)
		var rej = cs[0].rejected
		if len(rej) != 2 {
			t.Fatalf("%d rejected, want 2", len(rej))
		}
		if string(rej[0].Raw) != string(bad) {
			t.Errorf("rejected user record raw = %q, want its own bytes %q", rej[0].Raw, bad)
		}
		if string(rej[1].Raw) != string(corrupt) {
			t.Errorf("corrupt aggregate not dead-lettered whole")
		}
		if len(rej[1].Reasons) != 1 || !strings.Contains(rej[1].Reasons[0], "MD5 mismatch") {
			t.Errorf("corrupt aggregate reasons = %q, want the MD5 mismatch", rej[1].Reasons)
		}
		if cs[0].behindMS != 7 {
			t.Errorf("behindMS = %d, want 7", cs[0].behindMS)
		}
	})
}

// Resuming after "SEQ:SUB" drops user records 0..SUB of record SEQ, the
// first record read (AT_SEQUENCE_NUMBER SEQ), and nothing after it.
func TestDecodeSkipsCommittedUserRecords(t *testing.T) {
	now := time.Now().UTC()
	g := schema.NewGenerator(2, now)
	ev := func() []byte { e := g.Next(now); return e.AppendJSON(nil) }
	out := kplRecords(t, map[string][][]byte{
		"7": {ev(), ev(), ev(), ev()},
		"8": {ev(), ev()},
	}, []string{"7", "8"})
	for _, tc := range []struct {
		after string
		want  []chunkSummary
	}{
		{"7:1", []chunkSummary{{rows: []string{"7/2", "7/3", "8/0", "8/1"}, last: "8", cp: "8:1"}}},
		{"7:0", []chunkSummary{{rows: []string{"7/1", "7/2", "7/3", "8/0", "8/1"}, last: "8", cp: "8:1"}}},
		// Every user record of 7 committed: the position still moves to
		// the whole record, and 8 is read.
		{"7:3", []chunkSummary{{rows: []string{"8/0", "8/1"}, last: "8", cp: "8:1"}}},
	} {
		t.Run(tc.after, func(t *testing.T) {
			start, sk, err := startingPosition(tc.after, InitialPosition{Type: ktypes.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			if start.Type != ktypes.ShardIteratorTypeAtSequenceNumber || aws.ToString(start.SequenceNumber) != "7" {
				t.Fatalf("start = %s %s, want AT_SEQUENCE_NUMBER 7", start.Type, aws.ToString(start.SequenceNumber))
			}
			r := &shardReader{shard: "s", skip: sk, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
			got := summarize(r.decode(out))
			if !slices.EqualFunc(got, tc.want, func(a, b chunkSummary) bool {
				return a.last == b.last && a.cp == b.cp && slices.Equal(a.rows, b.rows) && slices.Equal(a.rejected, b.rejected)
			}) {
				t.Fatalf("chunks:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	// All of 7 committed and nothing else in the answer: an empty chunk
	// that still moves the position to "7".
	r := &shardReader{shard: "s", skip: skip{seq: "7", through: 3}, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	one := &kinesis.GetRecordsOutput{Records: out.Records[:1]}
	if got := r.decode(one); len(got) != 1 || got[0].last != "7" || got[0].checkpoint != "7:3" || len(got[0].rows) != 0 {
		t.Fatalf("chunks %+v, want one empty chunk ending at 7", summarize(got))
	}
}

func TestStartingPosition(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		after   string
		initial InitialPosition
		typ     ktypes.ShardIteratorType
		seq     string
		skip    skip
		wantErr string
	}{
		{after: "", initial: InitialPosition{Type: ktypes.ShardIteratorTypeLatest}, typ: ktypes.ShardIteratorTypeLatest},
		{after: "", initial: InitialPosition{Type: ktypes.ShardIteratorTypeAtTimestamp, Timestamp: ts}, typ: ktypes.ShardIteratorTypeAtTimestamp},
		{after: "123", typ: ktypes.ShardIteratorTypeAfterSequenceNumber, seq: "123"},
		{after: "123:4", typ: ktypes.ShardIteratorTypeAtSequenceNumber, seq: "123", skip: skip{seq: "123", through: 4}},
		{after: "123:x", wantErr: `sub-sequence number "x" is not a decimal number`},
	} {
		t.Run(tc.after, func(t *testing.T) {
			start, sk, err := startingPosition(tc.after, tc.initial)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || start.Type != tc.typ || aws.ToString(start.SequenceNumber) != tc.seq || sk != tc.skip {
				t.Fatalf("startingPosition(%q) = %s %q %+v %v, want %s %q %+v", tc.after, start.Type, aws.ToString(start.SequenceNumber), sk, err, tc.typ, tc.seq, tc.skip)
			}
			if tc.typ == ktypes.ShardIteratorTypeAtTimestamp && !aws.ToTime(start.Timestamp).Equal(ts) {
				t.Errorf("timestamp = %v, want %v", start.Timestamp, ts)
			}
		})
	}
}
