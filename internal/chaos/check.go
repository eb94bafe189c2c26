//go:build linux

package chaos

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/glue"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // registers s3:// for the glue trials' warehouse
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/paystream/paystream/pkg/commit"
)

// The checker reads what the consumers wrote through iceberg-go and Parquet
// directly, not through pkg/iceberg, so a defect in the consumer's own read
// path (positions, recent ids) cannot hide a defect in its write path. The
// names below are the on-disk contract (DESIGN §3, §4).
const (
	catalogName      = "paystream"           // the name every binary opens the SQLite catalog under
	positionPrefix   = "paystream.position." // table property per shard: last committed sequence number
	deadLetterFolder = "_dead_letter"        // under the warehouse: NAMESPACE.TABLE/SHARD/FIRST-LAST.ndjson
)

// Sent is one line of the producer's --sent-log.
type Sent struct {
	EventID        string `json:"event_id"`
	Kind           string `json:"kind"` // valid, duplicate or invalid
	PartitionKey   string `json:"partition_key"`
	ShardID        string `json:"shard_id"`
	SequenceNumber string `json:"sequence_number"`
	// SubSequenceNumber is the user record's index in its KPL aggregate
	// (producer --aggregate); nil for a record sent on its own.
	SubSequenceNumber *int64 `json:"sub_sequence_number,omitempty"`
	// Resent marks a copy found in the stream but not in the sent log
	// (ResentCopies); it does not count as produced.
	Resent bool `json:"-"`
}

// Position is where the record is in its shard: "SEQ", or "SEQ:SUB" for a
// user record of a KPL aggregate (as the consumer writes positions).
func (s Sent) Position() string {
	if s.SubSequenceNumber == nil {
		return s.SequenceNumber
	}
	return commit.FormatPosition(s.SequenceNumber, *s.SubSequenceNumber)
}

// ReadSentLog reads a --sent-log file.
func ReadSentLog(path string) ([]Sent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []Sent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var s Sent
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Row is what the checker needs of one table row. Seq is its position:
// "SEQ", or "SEQ:SUB" for a user record of a KPL aggregate.
type Row struct {
	EventID, Customer, Shard, Seq string
	Commit                        int64 // data sequence number of the commit that added the row
}

// TableState is the table as the checker read it.
type TableState struct {
	Rows        []Row
	Positions   map[string]string
	SnapshotID  int64
	DataFiles   int
	DeleteFiles int
	ScanRows    int64 // row count through iceberg-go's own scan, as a cross-check
}

// openCatalog opens the trial's catalog with iceberg-go directly: the
// SQLite file, or Glue and S3 straight at the emulator (no proxy, no
// faults). The closer releases it.
func openCatalog(ctx context.Context, e *Env) (catalog.Catalog, func(), error) {
	if e.Glue() {
		props := iceberggo.Properties{
			"warehouse": e.Warehouse, icebergio.S3EndpointURL: e.Moto, icebergio.S3Region: e.AWS.Region,
			icebergio.S3AccessKeyID: "test", icebergio.S3SecretAccessKey: "test",
		}
		cat, err := glue.NewCatalog(glue.WithAwsConfig(e.AWS), glue.WithAwsProperties(glue.AwsProperties(props)))
		if err != nil {
			return nil, nil, err
		}
		return cat, func() {}, nil
	}
	dsn := "file:" + e.CatalogPath() + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)"
	if sqliteshim.DriverName() == "sqlite3" {
		dsn = "file:" + e.CatalogPath() + "?_busy_timeout=30000&_journal_mode=WAL"
	}
	db, err := sql.Open(sqliteshim.ShimName, dsn)
	if err != nil {
		return nil, nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	cat, err := sqlcat.NewCatalog(catalogName, db, sqlcat.SQLite, iceberggo.Properties{"warehouse": e.Warehouse})
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return cat, func() { _ = cat.Close(); _ = db.Close() }, nil
}

// ErrNoTable means the consumers have not created the table yet.
var ErrNoTable = errors.New("table does not exist yet")

func loadTable(ctx context.Context, e *Env) (*table.Table, func(), error) {
	if !e.Glue() {
		if _, err := os.Stat(e.CatalogPath()); err != nil {
			return nil, nil, ErrNoTable
		}
	}
	cat, closeAll, err := openCatalog(ctx, e)
	if err != nil {
		return nil, nil, fmt.Errorf("open catalog: %w", err)
	}
	tbl, err := cat.LoadTable(ctx, table.Identifier(strings.Split(e.Table, ".")))
	if err != nil {
		closeAll()
		if isNoTable(err) {
			return nil, nil, ErrNoTable
		}
		return nil, nil, fmt.Errorf("load table: %w", err)
	}
	return tbl, closeAll, nil
}

// isNoTable recognises a table (or its namespace) not created yet.
func isNoTable(err error) bool {
	msg := err.Error()
	return errors.Is(err, catalog.ErrNoSuchTable) || errors.Is(err, catalog.ErrNoSuchNamespace) ||
		errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "no such table") ||
		strings.Contains(strings.ToLower(msg), "not found") || strings.Contains(msg, "does not exist")
}

// Positions returns the table's per-shard positions and the current
// snapshot id (0 when none).
func Positions(ctx context.Context, e *Env) (map[string]string, int64, error) {
	tbl, closeAll, err := loadTable(ctx, e)
	if errors.Is(err, ErrNoTable) {
		return map[string]string{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer closeAll()
	var snap int64
	if s := tbl.CurrentSnapshot(); s != nil {
		snap = s.SnapshotID
	}
	return tablePositions(tbl), snap, nil
}

func tablePositions(tbl *table.Table) map[string]string {
	out := map[string]string{}
	for k, v := range tbl.Properties() {
		if id, ok := strings.CutPrefix(k, positionPrefix); ok {
			out[id] = v
		}
	}
	return out
}

// ReadTable reads every live row with the commit that added it: the current
// snapshot's manifests give the live data files and their data sequence
// numbers, and each Parquet file is read directly.
func ReadTable(ctx context.Context, e *Env) (*TableState, error) {
	st := &TableState{Positions: map[string]string{}}
	tbl, closeAll, err := loadTable(ctx, e)
	if errors.Is(err, ErrNoTable) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	defer closeAll()
	st.Positions = tablePositions(tbl)
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return st, nil
	}
	st.SnapshotID = snap.SnapshotID
	fsys, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("table file IO: %w", err)
	}
	manifests, err := snap.Manifests(fsys)
	if err != nil {
		return nil, fmt.Errorf("manifest list: %w", err)
	}
	for _, m := range manifests {
		for ent, err := range m.Entries(fsys, true) {
			if err != nil {
				return nil, fmt.Errorf("manifest %s: %w", m.FilePath(), err)
			}
			df := ent.DataFile()
			if df.ContentType() != iceberggo.EntryContentData {
				st.DeleteFiles++
				continue
			}
			st.DataFiles++
			rows, err := readDataFile(ctx, fsys, df.FilePath(), ent.SequenceNum())
			if err != nil {
				return nil, err
			}
			if int64(len(rows)) != df.Count() {
				return nil, fmt.Errorf("data file %s: manifest says %d rows, file has %d", df.FilePath(), df.Count(), len(rows))
			}
			st.Rows = append(st.Rows, rows...)
		}
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	st.ScanRows = at.NumRows()
	at.Release()
	return st, nil
}

type stringValues interface {
	Value(int) string
	Len() int
}

// readDataFile reads the Parquet file at loc through the table's file IO
// (local or S3).
func readDataFile(ctx context.Context, fsys icebergio.IO, loc string, commit int64) ([]Row, error) {
	path := loc
	f, err := fsys.Open(loc)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = pf.Close() }()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	at, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer at.Release()
	cols := map[string][]stringValues{}
	for _, name := range []string{"event_id", "customer_id", "shard_id", "sequence_number"} {
		idx := at.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return nil, fmt.Errorf("%s: column %s missing", path, name)
		}
		for _, ch := range at.Column(idx[0]).Data().Chunks() {
			sv, ok := ch.(stringValues)
			if !ok {
				return nil, fmt.Errorf("%s: column %s is %s, not a string", path, name, ch.DataType())
			}
			cols[name] = append(cols[name], sv)
		}
	}
	// sub_sequence_number (a user record of a KPL aggregate) makes the
	// row's position "SEQ:SUB"; NULL or a file without it, "SEQ".
	var subs []*array.Int64
	if idx := at.Schema().FieldIndices("sub_sequence_number"); len(idx) == 1 {
		for _, ch := range at.Column(idx[0]).Data().Chunks() {
			iv, ok := ch.(*array.Int64)
			if !ok {
				return nil, fmt.Errorf("%s: column sub_sequence_number is %s, not a long", path, ch.DataType())
			}
			subs = append(subs, iv)
		}
	}
	var rows []Row
	for ci := range cols["event_id"] {
		ids, cust, shard, seq := cols["event_id"][ci], cols["customer_id"][ci], cols["shard_id"][ci], cols["sequence_number"][ci]
		for i := 0; i < ids.Len(); i++ {
			pos := seq.Value(i)
			if ci < len(subs) && subs[ci].IsValid(i) {
				pos += ":" + strconv.FormatInt(subs[ci].Value(i), 10)
			}
			rows = append(rows, Row{EventID: ids.Value(i), Customer: cust.Value(i), Shard: shard.Value(i), Seq: pos, Commit: commit})
		}
	}
	return rows, nil
}

var _ = []stringValues{(*array.String)(nil), (*array.LargeString)(nil), (*array.StringView)(nil)}
var _ arrow.DataType = arrow.BinaryTypes.String

// DeadLetter is one line of a dead-letter object (the fields the checker
// uses). Sequence is the record's position: parseDeadLetters appends
// ":SUB" for a user record of a KPL aggregate.
type DeadLetter struct {
	Shard       string `json:"shard_id"`
	Sequence    string `json:"sequence_number"`
	SubSequence *int64 `json:"sub_sequence_number,omitempty"`
	Raw         string `json:"raw"`
	Object      string `json:"-"` // the object holding the line
}

// ReadDeadLetters reads every dead-letter object of the trial's table: from
// the warehouse folder, or on glue from the bucket, straight at the
// emulator.
func ReadDeadLetters(ctx context.Context, e *Env) ([]DeadLetter, error) {
	if e.Glue() {
		return readS3DeadLetters(ctx, e)
	}
	dir := filepath.Join(e.WarehouseDir(), deadLetterFolder, e.Table)
	var out []DeadLetter
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".ndjson") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		dls, err := parseDeadLetters(path, f)
		out = append(out, dls...)
		return err
	})
	return out, err
}

// readS3DeadLetters lists and reads the dead-letter objects under the
// warehouse in the trial's bucket.
func readS3DeadLetters(ctx context.Context, e *Env) ([]DeadLetter, error) {
	_, prefix, _ := strings.Cut(strings.TrimPrefix(e.Warehouse, "s3://"), "/")
	prefix += "/" + deadLetterFolder + "/" + e.Table + "/"
	var out []DeadLetter
	p := s3.NewListObjectsV2Paginator(e.S3, &s3.ListObjectsV2Input{Bucket: aws.String(Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasSuffix(key, ".ndjson") {
				continue
			}
			obj, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(Bucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("get s3://%s/%s: %w", Bucket, key, err)
			}
			dls, err := parseDeadLetters(key, obj.Body)
			_ = obj.Body.Close()
			if err != nil {
				return nil, err
			}
			out = append(out, dls...)
		}
	}
	return out, nil
}

// parseDeadLetters reads the NDJSON dead-letter object name from r.
func parseDeadLetters(name string, r io.Reader) ([]DeadLetter, error) {
	var out []DeadLetter
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		dl := DeadLetter{Object: name}
		if err := json.Unmarshal(sc.Bytes(), &dl); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if dl.SubSequence != nil {
			dl.Sequence = commit.FormatPosition(dl.Sequence, *dl.SubSequence)
		}
		out = append(out, dl)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// Result is the checker's verdict on one trial.
type Result struct {
	Produced     int // records the stream acknowledged
	Valid        int // distinct valid event_ids
	DupsSent     int // extra copies of valid events
	InvalidSent  int
	Rows         int
	ScanRows     int64
	Missing      int // valid event_ids not in the table
	Duplicated   int // extra rows of an event_id
	Unexpected   int // rows whose event_id was never sent
	BadLineage   int // rows whose shard/sequence is not a copy of that event
	Aged         int // valid event_ids missing whose every copy was in a shard aged out of the stream (expected, not a failure)
	DeadLettered int // distinct shard/sequence in the dead-letter store
	DeadMissing  int // invalid records not in the dead-letter store
	DeadExtra    int // dead letters that were not invalid records
	OrderErrors  int // a child-shard row committed before a parent-shard row of the same customer, or a shard committed out of order
	OrderPairs   int // customer × (parent, child) pairs the order check covered
	DeleteFiles  int
	Problems     []string // the first few findings, for people

	// DeadDuplicated counts extra copies of a dead letter: a record in two
	// objects, or twice in one, and objects of a shard whose ranges overlap.
	DeadDuplicated int
}

// OK reports no loss, no duplicate and every check passed.
func (r *Result) OK() bool {
	return r.Missing == 0 && r.Duplicated == 0 && r.Unexpected == 0 && r.BadLineage == 0 &&
		r.DeadMissing == 0 && r.DeadExtra == 0 && r.DeadDuplicated == 0 && r.OrderErrors == 0 && r.DeleteFiles == 0 &&
		int64(r.Rows) == r.ScanRows
}

func (r *Result) problem(format string, args ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// Check compares the table and the dead letters with what was sent.
// shards gives the parent links for the order check. Records in the
// shards of aged (aged out of the stream before they were read) may be
// missing: an event missing with every copy in one of them is counted in
// Aged, not Missing, and an invalid record there need not be dead-lettered;
// nothing else changes (no duplicates, nothing foreign).
func Check(sent []Sent, st *TableState, dls []DeadLetter, shards []Shard, aged map[string]bool) *Result {
	r := &Result{Rows: len(st.Rows), ScanRows: st.ScanRows, DeleteFiles: st.DeleteFiles}
	for _, s := range sent {
		if !s.Resent {
			r.Produced++
		}
	}
	copies := map[string][]loc{} // event_id → where each copy landed
	invalid := map[loc]bool{}
	for _, s := range sent {
		switch s.Kind {
		case "valid":
			r.Valid++
			copies[s.EventID] = append(copies[s.EventID], loc{s.ShardID, s.Position()})
		case "duplicate":
			r.DupsSent++
			copies[s.EventID] = append(copies[s.EventID], loc{s.ShardID, s.Position()})
		case "invalid":
			r.InvalidSent++
			invalid[loc{s.ShardID, s.Position()}] = true
		}
	}
	seen := map[string]int{}
	for _, row := range st.Rows {
		seen[row.EventID]++
		cs, ok := copies[row.EventID]
		if !ok {
			r.Unexpected++
			r.problem("row %s (%s/%s) was never sent", row.EventID, row.Shard, row.Seq)
			continue
		}
		if !containsLoc(cs, loc{row.Shard, row.Seq}, func(a, b loc) bool { return a == b }) {
			r.BadLineage++
			r.problem("row %s says %s/%s, but its copies were sent to %v", row.EventID, row.Shard, row.Seq, cs)
		}
	}
	ids := make([]string, 0, len(copies))
	for id := range copies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		switch n := seen[id]; {
		case n == 0 && allAged(copies[id], aged):
			r.Aged++
		case n == 0:
			r.Missing++
			r.problem("missing %s (sent to %v)", id, copies[id])
		case n > 1:
			r.Duplicated += n - 1
			r.problem("%s stored %d times", id, n)
		}
	}
	if int64(r.Rows) != r.ScanRows {
		r.problem("Parquet files hold %d rows but iceberg-go's scan returned %d", r.Rows, r.ScanRows)
	}
	if r.DeleteFiles > 0 {
		r.problem("table has %d delete files", r.DeleteFiles)
	}

	got := map[loc]bool{}
	for _, d := range dls {
		got[loc{d.Shard, d.Sequence}] = true
	}
	r.DeadLettered = len(got)
	r.DeadDuplicated = deadLetterCopies(dls, r)
	for l := range invalid {
		if !got[l] && !aged[l.shard] {
			r.DeadMissing++
			r.problem("invalid record %s/%s not in the dead-letter store", l.shard, l.seq)
		}
	}
	for l := range got {
		if !invalid[l] {
			r.DeadExtra++
			r.problem("dead letter %s/%s was not an invalid record", l.shard, l.seq)
		}
	}
	r.OrderErrors, r.OrderPairs = checkOrder(st.Rows, shards, r)
	return r
}

// loc is where a record landed.
type loc struct{ shard, seq string }

// allAged reports whether every copy of an event landed in an aged-out
// shard.
func allAged(copies []loc, aged map[string]bool) bool {
	for _, c := range copies {
		if !aged[c.shard] {
			return false
		}
	}
	return len(copies) > 0
}

// deadLetterCopies demands exactly once by record and by object: it
// counts every extra copy of a shard/sequence and every object whose
// sequence range overlaps another object's of the same shard.
func deadLetterCopies(dls []DeadLetter, r *Result) int {
	type span struct{ first, last, object string }
	copies := map[string]int{}
	spans := map[string]map[string]*span{} // shard → object → its range
	for _, d := range dls {
		copies[d.Shard+"/"+d.Sequence]++
		if spans[d.Shard] == nil {
			spans[d.Shard] = map[string]*span{}
		}
		sp := spans[d.Shard][d.Object]
		if sp == nil {
			sp = &span{first: d.Sequence, last: d.Sequence, object: d.Object}
			spans[d.Shard][d.Object] = sp
		}
		if commit.CompareSeq(d.Sequence, sp.first) < 0 {
			sp.first = d.Sequence
		}
		if commit.CompareSeq(d.Sequence, sp.last) > 0 {
			sp.last = d.Sequence
		}
	}
	extra := 0
	for rec, n := range copies {
		if n > 1 {
			extra += n - 1
			r.problem("dead letter %s stored %d times", rec, n)
		}
	}
	for shard, objs := range spans {
		list := make([]*span, 0, len(objs))
		for _, sp := range objs {
			list = append(list, sp)
		}
		sort.Slice(list, func(i, j int) bool { return commit.CompareSeq(list[i].first, list[j].first) < 0 })
		for i := 1; i < len(list); i++ {
			if commit.CompareSeq(list[i].first, list[i-1].last) <= 0 {
				extra++
				r.problem("dead-letter objects of %s overlap: %s and %s", shard, list[i-1].object, list[i].object)
			}
		}
	}
	return extra
}

func containsLoc[T any](xs []T, x T, eq func(a, b T) bool) bool {
	for _, y := range xs {
		if eq(x, y) {
			return true
		}
	}
	return false
}

// checkOrder checks commit order, using each row's commit (data sequence
// number): within a shard, a record with a higher sequence number is never
// committed before one with a lower; and for each customer, every row of a
// parent shard (or any ancestor) is committed strictly before every row of
// its child shards.
func checkOrder(rows []Row, shards []Shard, r *Result) (errs, pairs int) {
	byShard := map[string][]Row{}
	for _, row := range rows {
		byShard[row.Shard] = append(byShard[row.Shard], row)
	}
	for id, rs := range byShard {
		sort.Slice(rs, func(i, j int) bool { return commit.CompareSeq(rs[i].Seq, rs[j].Seq) < 0 })
		var maxCommit int64
		var at string
		for _, row := range rs {
			if row.Commit < maxCommit {
				errs++
				r.problem("shard %s: sequence %s committed in commit %d, before sequence %s (commit %d)", id, row.Seq, row.Commit, at, maxCommit)
			}
			if row.Commit > maxCommit {
				maxCommit, at = row.Commit, row.Seq
			}
		}
	}
	parents := map[string][]string{}
	for _, s := range shards {
		parents[s.ID] = s.Parents
	}
	ancestors := func(id string) map[string]bool {
		out := map[string]bool{}
		stack := append([]string(nil), parents[id]...)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if !out[p] {
				out[p] = true
				stack = append(stack, parents[p]...)
			}
		}
		return out
	}
	type span struct{ min, max int64 }
	perCustomer := map[string]map[string]*span{}
	for _, row := range rows {
		m := perCustomer[row.Customer]
		if m == nil {
			m = map[string]*span{}
			perCustomer[row.Customer] = m
		}
		s := m[row.Shard]
		if s == nil {
			m[row.Shard] = &span{row.Commit, row.Commit}
			continue
		}
		s.min, s.max = min(s.min, row.Commit), max(s.max, row.Commit)
	}
	anc := map[string]map[string]bool{}
	for _, s := range shards {
		anc[s.ID] = ancestors(s.ID)
	}
	for cust, m := range perCustomer {
		for child, cs := range m {
			for parent := range anc[child] {
				ps, ok := m[parent]
				if !ok {
					continue
				}
				pairs++
				if ps.max >= cs.min {
					errs++
					r.problem("customer %s: a row of child shard %s (commit %d) is not after every row of ancestor %s (last commit %d)", cust, child, cs.min, parent, ps.max)
				}
			}
		}
	}
	return errs, pairs
}

// DrainTarget is, per shard, the last sequence number the producer got
// acknowledged, leaving out the shards in aged (nothing more is read from
// them).
func DrainTarget(sent []Sent, aged map[string]bool) map[string]string {
	out := map[string]string{}
	for _, s := range sent {
		if s.ShardID == "" || aged[s.ShardID] {
			continue
		}
		if cur, ok := out[s.ShardID]; !ok || commit.CompareSeq(s.SequenceNumber, cur) > 0 {
			out[s.ShardID] = s.SequenceNumber
		}
	}
	return out
}

// Behind lists the shards whose table position is short of target.
func Behind(pos, target map[string]string) []string {
	var out []string
	for id, last := range target {
		if p, ok := pos[id]; !ok || commit.CompareSeq(p, last) < 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}
