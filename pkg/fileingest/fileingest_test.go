package fileingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/fileingest"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
	"github.com/paystream/paystream/pkg/schema"
)

// fileEnv is an embedded SQLite catalog with the payments table in a
// temporary directory.
type fileEnv struct {
	cat       catalog.Catalog
	ident     table.Identifier
	warehouse string
	sink      *iceberg.Sink
	dl        *iceberg.DeadLetter
}

func newFileEnv(t testing.TB) *fileEnv {
	t.Helper()
	tbl := icebergtest.SQLite(t)
	return &fileEnv{
		cat: tbl.Catalog, ident: tbl.Ident, warehouse: tbl.Config.Warehouse,
		sink: tbl.Sink(iceberg.SinkConfig{}), dl: tbl.DeadLetters(),
	}
}

func (e *fileEnv) ingester(t testing.TB, mod func(*fileingest.Config)) *fileingest.Ingester {
	t.Helper()
	cfg := fileingest.Config{Table: e.sink, DeadLetters: e.dl, BatchRows: 400, TempDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	f, err := fileingest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// storedRow is the part of a table row the tests check.
type storedRow struct {
	eventID, tier, status, shard, seq string
	amount                            schema.Amount
}

// rows reads the whole table with iceberg-go.
func (e *fileEnv) rows(t testing.TB) []storedRow {
	t.Helper()
	tbl, err := e.cat.LoadTable(context.Background(), e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.CurrentSnapshot() == nil {
		return nil
	}
	at, err := tbl.Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rdr := array.NewTableReader(at, 0)
	defer rdr.Release()
	var out []storedRow
	for rdr.Next() {
		rec := rdr.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		ids := rec.Column(col(schema.ColEventID)).(*array.String)
		tiers := rec.Column(col(schema.ColSubscriptionTier)).(*array.String)
		status := rec.Column(col(schema.ColStatus)).(*array.String)
		shards := rec.Column(col(schema.ColShardID)).(*array.String)
		seqs := rec.Column(col(schema.ColSequenceNumber)).(*array.String)
		amounts := rec.Column(col(schema.ColAmountUSD)).(*array.Decimal128)
		for i := range int(rec.NumRows()) {
			if ids.IsNull(i) {
				t.Fatalf("row %d: NULL event_id reached the table", i)
			}
			out = append(out, storedRow{
				eventID: ids.Value(i), tier: tiers.Value(i), status: status.Value(i),
				shard: shards.Value(i), seq: seqs.Value(i),
				amount: schema.Amount(amounts.Value(i).LowBits()),
			})
		}
	}
	if err := rdr.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// genFile is an NDJSON file with known content.
type genFile struct {
	path    string
	valid   map[int]schema.Event // by line number
	invalid map[int]string       // line number → kind of defect
	lines   int
}

// writeFile writes n generated lines; every 7th is invalid, and a NULL
// event_id, an empty event_id and a blank line are mixed in.
func writeFile(t testing.TB, dir string, seed uint64, n int) genFile {
	t.Helper()
	now := time.Now()
	g := schema.NewGenerator(seed, now)
	gf := genFile{path: filepath.Join(dir, "events-"+strconv.FormatUint(seed, 10)+".ndjson"), valid: map[int]schema.Event{}, invalid: map[int]string{}}
	var buf bytes.Buffer
	line := 0
	for i := range n {
		line++
		switch {
		case i == 10:
			ev := g.Next(now)
			b := ev.AppendJSON(nil)
			b = bytes.Replace(b, []byte(`"event_id":"`+ev.EventID+`"`), []byte(`"event_id":null`), 1)
			buf.Write(b)
			gf.invalid[line] = "null_event_id"
		case i == 11:
			ev := g.Next(now)
			ev.EventID = ""
			buf.Write(ev.AppendJSON(nil))
			gf.invalid[line] = "empty_event_id"
		case i == 12:
			buf.WriteString("   ") // blank: ignored
		case i%7 == 3:
			raw, kind := g.NextInvalid(now)
			buf.Write(raw)
			gf.invalid[line] = kind
		default:
			ev := g.Next(now.Add(-time.Duration(i) * time.Minute))
			ev.EventTS = ev.EventTS.Truncate(time.Millisecond)
			buf.Write(ev.AppendJSON(nil))
			gf.valid[line] = ev
		}
		buf.WriteByte('\n')
	}
	gf.lines = line
	if err := os.WriteFile(gf.path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return gf
}

func TestIngestFileRowsAndDeadLetters(t *testing.T) {
	e := newFileEnv(t)
	gf := writeFile(t, t.TempDir(), 1, 2000)
	st, err := e.ingester(t, nil).IngestPath(t.Context(), gf.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != int64(len(gf.valid)) || st.Rejected != int64(len(gf.invalid)) || st.Blank != 1 || st.Lines != int64(gf.lines) || st.Skipped != 0 {
		t.Fatalf("stats = %+v, want %d rows, %d rejected, 1 blank, %d lines", st, len(gf.valid), len(gf.invalid), gf.lines)
	}
	if st.Commits != 5 { // 2000 lines / 400 per batch
		t.Errorf("commits = %d, want 5", st.Commits)
	}
	if !strings.HasPrefix(st.Source, fileingest.SourcePrefix+"b3-") || len(st.Source) != len(fileingest.SourcePrefix+"b3-")+32 {
		t.Errorf("source id = %q", st.Source)
	}

	// Every valid event is in the table once, with its lineage; nothing else is.
	rows := e.rows(t)
	if len(rows) != len(gf.valid) {
		t.Fatalf("table has %d rows, want %d", len(rows), len(gf.valid))
	}
	seen := map[int]bool{}
	for _, r := range rows {
		n, err := strconv.Atoi(r.seq)
		if err != nil {
			t.Fatalf("sequence_number %q is not a line number", r.seq)
		}
		ev, ok := gf.valid[n]
		switch {
		case !ok:
			t.Errorf("row for line %d, which is not a valid line (%s)", n, gf.invalid[n])
		case seen[n]:
			t.Errorf("line %d stored twice", n)
		case r.eventID != ev.EventID || r.amount != ev.AmountUSD || r.tier != ev.SubscriptionTier || r.status != ev.Status:
			t.Errorf("line %d stored as %+v, want %+v", n, r, ev)
		case r.shard != st.Source:
			t.Errorf("line %d: shard_id %q, want %q", n, r.shard, st.Source)
		case r.eventID == "":
			t.Errorf("line %d: empty event_id in the table", n)
		}
		seen[n] = true
	}

	// Every invalid line is in the dead-letter store with reasons and its raw bytes.
	dls, err := iceberg.ReadDeadLetters(t.Context(), e.warehouse, "", e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(gf.invalid) {
		t.Fatalf("dead letters = %d, want %d", len(dls), len(gf.invalid))
	}
	raw, err := os.ReadFile(gf.path)
	if err != nil {
		t.Fatal(err)
	}
	fileLines := strings.Split(string(raw), "\n")
	for _, d := range dls {
		n, _ := strconv.Atoi(d.Sequence)
		kind, ok := gf.invalid[n]
		if !ok {
			t.Errorf("dead letter for line %d, which is valid", n)
			continue
		}
		if d.Shard != st.Source || len(d.Reasons) == 0 || d.Reasons[0] == "" {
			t.Errorf("line %d (%s): dead letter %+v lacks shard or reasons", n, kind, d)
		}
		if b, err := d.RawBytes(); err != nil || string(b) != fileLines[n-1] {
			t.Errorf("line %d (%s): raw %q, want %q", n, kind, b, fileLines[n-1])
		}
		if kind == "null_event_id" || kind == "empty_event_id" || kind == "missing_event_id" {
			if !strings.Contains(strings.Join(d.Reasons, ";"), "event_id") {
				t.Errorf("line %d (%s): reasons %q do not name event_id", n, kind, d.Reasons)
			}
		}
	}
}

func TestIngestFileTwiceAddsNothing(t *testing.T) {
	e := newFileEnv(t)
	gf := writeFile(t, t.TempDir(), 2, 1000)
	f := e.ingester(t, nil)
	first, err := f.IngestPath(t.Context(), gf.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := e.snapshotID(t)

	again, err := f.IngestPath(t.Context(), gf.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rows != 0 || again.Rejected != 0 || again.Commits != 0 || again.Skipped != int64(gf.lines) || again.Source != first.Source {
		t.Fatalf("second run stats = %+v, want nothing written and every line skipped", again)
	}
	// The same bytes on standard input are the same source.
	content, err := os.ReadFile(gf.path)
	if err != nil {
		t.Fatal(err)
	}
	viaStdin, err := f.IngestPath(t.Context(), "-", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if viaStdin.Source != first.Source || viaStdin.Rows != 0 || viaStdin.Commits != 0 {
		t.Fatalf("stdin run stats = %+v, want source %s and nothing written", viaStdin, first.Source)
	}
	if got := e.snapshotID(t); got != snap {
		t.Errorf("snapshot moved from %d to %d: a re-run committed something", snap, got)
	}
	if got := len(e.rows(t)); got != len(gf.valid) {
		t.Errorf("table has %d rows after re-runs, want %d", got, len(gf.valid))
	}
}

func (e *fileEnv) snapshotID(t testing.TB) int64 {
	t.Helper()
	tbl, err := e.cat.LoadTable(context.Background(), e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if s := tbl.CurrentSnapshot(); s != nil {
		return s.SnapshotID
	}
	return 0
}

// failingSink fails the commit number failAt (1-based) without committing.
type failingSink struct {
	commit.Table
	n, failAt int
}

var errInjected = errors.New("injected commit failure")

func (s *failingSink) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	s.n++
	if s.n == s.failAt {
		return commit.Result{}, errInjected
	}
	return s.Table.Commit(ctx, b)
}

func TestIngestFileResumesAfterInterruption(t *testing.T) {
	e := newFileEnv(t)
	gf := writeFile(t, t.TempDir(), 3, 2000)
	broken := e.ingester(t, func(c *fileingest.Config) { c.Table = &failingSink{Table: e.sink, failAt: 3} })
	st, err := broken.IngestPath(t.Context(), gf.path, nil)
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected failure", err)
	}
	if st.Commits != 2 {
		t.Fatalf("interrupted run made %d commits, want 2", st.Commits)
	}
	resumed, err := e.ingester(t, nil).IngestPath(t.Context(), gf.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Skipped != 800 || resumed.Commits != 3 {
		t.Errorf("resumed run stats = %+v, want 800 lines skipped and 3 commits", resumed)
	}
	if st.Rows+resumed.Rows != int64(len(gf.valid)) {
		t.Errorf("rows committed %d + %d, want %d", st.Rows, resumed.Rows, len(gf.valid))
	}
	rows := e.rows(t)
	ids := map[string]int{}
	for _, r := range rows {
		ids[r.eventID]++
	}
	if len(rows) != len(gf.valid) || len(ids) != len(gf.valid) {
		t.Errorf("table has %d rows with %d distinct ids, want %d each", len(rows), len(ids), len(gf.valid))
	}
	dls, err := iceberg.ReadDeadLetters(t.Context(), e.warehouse, "", e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(gf.invalid) {
		// The failed batch's dead letters were rewritten under the same name, not added.
		t.Errorf("dead letters = %d, want %d", len(dls), len(gf.invalid))
	}
}

// TestIngestFileResumesUnderAnEarlierVersionsID: content that an earlier
// version committed in part under its SHA-256 id ("file-" and 32 hex
// digits) resumes under that id instead of being ingested again under its
// BLAKE3 id; other content gets a BLAKE3 id on the same table.
func TestIngestFileResumesUnderAnEarlierVersionsID(t *testing.T) {
	e := newFileEnv(t)
	gf := writeFile(t, t.TempDir(), 7, 1000)
	content := must(os.ReadFile(gf.path))
	sum := sha256.Sum256(content)
	legacy := fileingest.SourcePrefix + hex.EncodeToString(sum[:16])

	// What the earlier version's first commit left: lines 1-400.
	var rows []schema.Row
	for n, line := range bytes.Split(content, []byte("\n"))[:400] {
		if ev, err := schema.Decode(line, time.Now()); err == nil {
			rows = append(rows, schema.Row{Event: ev, ShardID: legacy, SequenceNumber: strconv.Itoa(n + 1), SubSequence: -1})
		}
	}
	step := must(commit.NewStep(commit.Config{Table: e.sink, DeadLetters: e.dl}))
	if _, err := step.Commit(t.Context(), []commit.Part{{Shard: legacy, Last: "400", Rows: rows}}); err != nil {
		t.Fatal(err)
	}

	st, err := e.ingester(t, nil).IngestPath(t.Context(), gf.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Source != legacy || st.Skipped != 400 || st.Commits != 2 {
		t.Fatalf("stats = %+v, want source %s, 400 lines skipped, 2 commits", st, legacy)
	}
	stored := e.rows(t)
	ids := map[string]int{}
	for _, r := range stored {
		ids[r.eventID]++
		if r.shard != legacy {
			t.Fatalf("row of line %s has shard_id %q, want %q", r.seq, r.shard, legacy)
		}
	}
	if len(stored) != len(gf.valid) || len(ids) != len(gf.valid) {
		t.Errorf("table has %d rows with %d distinct ids, want %d each", len(stored), len(ids), len(gf.valid))
	}

	other := writeFile(t, t.TempDir(), 8, 50)
	st, err = e.ingester(t, nil).IngestPath(t.Context(), other.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Source, fileingest.SourcePrefix+"b3-") || st.Rows != int64(len(other.valid)) {
		t.Errorf("new content: stats = %+v, want a file-b3- id and %d rows", st, len(other.valid))
	}
}

func TestIngestFileDropsRepeatedEventIDs(t *testing.T) {
	e := newFileEnv(t)
	now := time.Now()
	g := schema.NewGenerator(4, now)
	var buf bytes.Buffer
	var events []schema.Event
	for range 900 {
		ev := g.Next(now)
		events = append(events, ev)
		buf.Write(ev.AppendJSON(nil))
		buf.WriteByte('\n')
	}
	// Repeat 100 events: some within the same batch, some across batches.
	for i := 0; i < 900; i += 9 {
		buf.Write(events[i].AppendJSON(nil))
		buf.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "dups.ndjson")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	newIngester := func() *fileingest.Ingester {
		filter, err := dedup.New(dedup.Config{})
		if err != nil {
			t.Fatal(err)
		}
		return e.ingester(t, func(c *fileingest.Config) {
			c.Dedup = filter
		})
	}
	// Interrupt after the first batch, so the resumed run must remember
	// the ids of lines committed before it started.
	st, err := e.ingester(t, func(c *fileingest.Config) {
		filter, _ := dedup.New(dedup.Config{})
		c.Dedup = filter
		c.Table = &failingSink{Table: e.sink, failAt: 2}
	}).IngestPath(t.Context(), path, nil)
	if !errors.Is(err, errInjected) || st.Rows != 400 {
		t.Fatalf("first run: rows %d err %v, want 400 rows then the injected failure", st.Rows, err)
	}
	st, err = newIngester().IngestPath(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Duplicates != 100 || st.Rows != 500 {
		t.Errorf("resumed run stats = %+v, want 500 rows and 100 duplicates", st)
	}
	rows := e.rows(t)
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.eventID] = true
	}
	if len(rows) != 900 || len(ids) != 900 {
		t.Errorf("table has %d rows, %d distinct ids; want 900 each", len(rows), len(ids))
	}
}

func TestIngestFileOverlongLineIsRejected(t *testing.T) {
	e := newFileEnv(t)
	g := schema.NewGenerator(5, time.Now())
	ev := g.Next(time.Now())
	var buf bytes.Buffer
	buf.Write(ev.AppendJSON(nil))
	buf.WriteString("\n{\"event_id\":\"" + strings.Repeat("x", 3<<20) + "\"}\r\n")
	ev2 := g.Next(time.Now())
	buf.Write(ev2.AppendJSON(nil)) // no final newline
	path := filepath.Join(t.TempDir(), "long.ndjson")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := e.ingester(t, nil).IngestPath(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 2 || st.Rejected != 1 || st.Lines != 3 {
		t.Fatalf("stats = %+v, want 2 rows, 1 rejected, 3 lines", st)
	}
	dls, err := iceberg.ReadDeadLetters(t.Context(), e.warehouse, "", e.ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Sequence != "2" || !strings.Contains(dls[0].Reasons[0], "1 MiB") || len(dls[0].Raw) > schema.MaxRecordBytes+1 {
		t.Fatalf("dead letter = seq %s reasons %q raw %d bytes", dls[0].Sequence, dls[0].Reasons, len(dls[0].Raw))
	}
	got := []string{}
	for _, r := range e.rows(t) {
		got = append(got, r.seq)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"1", "3"}) {
		t.Errorf("stored lines %v, want 1 and 3", got)
	}
}

func TestFileConfigValidate(t *testing.T) {
	if _, err := fileingest.New(fileingest.Config{}); err == nil {
		t.Error("no sink: no error")
	}
	e := newFileEnv(t)
	_, err := fileingest.New(fileingest.Config{Table: e.sink, DeadLetters: e.dl, BatchRows: -1})
	if err == nil || !strings.Contains(err.Error(), "--batch-rows") {
		t.Errorf("negative batch rows: err = %v", err)
	}
}

func TestSourceIDCountsLines(t *testing.T) {
	for _, tc := range []struct {
		in    string
		lines int64
	}{
		{"", 0}, {"a", 1}, {"a\n", 1}, {"a\nb", 2}, {"a\n\n", 2}, {"\n", 1},
	} {
		id, size, lines, err := fileingest.SourceID(strings.NewReader(tc.in))
		if err != nil || size != int64(len(tc.in)) || lines != tc.lines || !strings.HasPrefix(id, fileingest.SourcePrefix) {
			t.Errorf("SourceID(%q) = %s, %d, %d, %v; want %d lines", tc.in, id, size, lines, err, tc.lines)
		}
	}
	a, _, _, _ := fileingest.SourceID(strings.NewReader("a\n"))
	b, _, _, _ := fileingest.SourceID(strings.NewReader("b\n"))
	if a == b {
		t.Error("different content, same id")
	}
}

func TestIngestFileRefusesForeignPosition(t *testing.T) {
	e := newFileEnv(t)
	gf := writeFile(t, t.TempDir(), 6, 20)
	id, _, _, err := fileingest.SourceID(bytes.NewReader(must(os.ReadFile(gf.path))))
	if err != nil {
		t.Fatal(err)
	}
	f := e.ingester(t, func(c *fileingest.Config) { c.Table = positionSinkFor{e.sink, id, "21"} })
	_, err = f.IngestPath(t.Context(), gf.path, nil)
	if err == nil || !strings.Contains(err.Error(), "line 21 but the input has 20 lines") {
		t.Fatalf("err = %v, want a refusal naming the position and the line count", err)
	}
	if got := len(e.rows(t)); got != 0 {
		t.Errorf("%d rows written", got)
	}
}

// positionSinkFor reports pos for source id.
type positionSinkFor struct {
	commit.Table
	id, pos string
}

func (s positionSinkFor) Positions(context.Context) (map[string]string, error) {
	return map[string]string{s.id: s.pos}, nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
