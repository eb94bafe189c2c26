package iceberg

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	icebergio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/commit"
)

// DefaultDeadLetterPrefix is the folder under the warehouse that holds
// rejected records.
const DefaultDeadLetterPrefix = "_dead_letter"

// DeadLetterRecord is one line of a dead-letter object. Raw holds the
// record as text when it is valid UTF-8, otherwise standard base64 with
// RawBase64 set; RawBytes undoes that.
type DeadLetterRecord struct {
	Table    string `json:"table"`
	Shard    string `json:"shard_id"`
	Sequence string `json:"sequence_number"`
	// SubSequence is the user record's index in the KPL aggregate
	// Sequence; absent for a plain record or an aggregate rejected whole.
	SubSequence *int64    `json:"sub_sequence_number,omitempty"`
	ArrivedAt   time.Time `json:"arrived_at"`
	Reasons     []string  `json:"reasons"`
	Raw         string    `json:"raw"`
	RawBase64   bool      `json:"raw_base64,omitempty"`
}

// Position is the record's position, "SEQ" or "SEQ:SUB".
func (r DeadLetterRecord) Position() string {
	if r.SubSequence == nil {
		return r.Sequence
	}
	return commit.FormatPosition(r.Sequence, *r.SubSequence)
}

// RawBytes returns the record's original bytes.
func (r DeadLetterRecord) RawBytes() ([]byte, error) {
	if r.RawBase64 {
		return base64.StdEncoding.DecodeString(r.Raw)
	}
	return []byte(r.Raw), nil
}

// DeadLetter stores rejected records as NDJSON objects in two stages
// (DESIGN.md beside this file, "Dead letters"). Stage writes a commit
// attempt's rejects of one shard to a pending object named by the
// attempt's commit id, under WAREHOUSE/PREFIX_pending/NAMESPACE.TABLE/
// COMMIT/SHARD/FIRST-LAST.ndjson, which no reader looks at. Once the
// attempt's commit is known to have landed, Publish copies each of its
// pending objects to its final name WAREHOUSE/PREFIX/NAMESPACE.TABLE/
// SHARD/FIRST-LAST.ndjson and removes the pending one. Only landed commits
// are published and landed commits cover disjoint ranges of a shard, so a
// record is readable in exactly one object; an attempt that never lands
// (refused, fenced, crashed) is never readable. Works for file:// and
// s3:// warehouses (AWS settings from the standard chain); every object is
// written whole (file: temporary name and rename; S3: one PUT). Safe for
// concurrent use.
type DeadLetter struct {
	dir     string
	pending string
	table   string
	records prometheus.Counter
	objects prometheus.Counter
}

// NewDeadLetter returns the dead-letter store for table ident. prefix ""
// means DefaultDeadLetterPrefix. reg (may be nil) receives
// paystream_deadletter_records_total and paystream_deadletter_objects_total.
func NewDeadLetter(warehouse, prefix string, ident table.Identifier, reg prometheus.Registerer) *DeadLetter {
	return &DeadLetter{
		dir:     deadLetterDir(warehouse, prefix, ident),
		pending: pendingDir(warehouse, prefix, ident),
		table:   strings.Join(ident, "."),
		records: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_deadletter_records_total",
			Help: "Rejected records written to the dead-letter store.",
		})),
		objects: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "paystream_deadletter_objects_total",
			Help: "Dead-letter objects written (one per shard and batch).",
		})),
	}
}

func deadLetterDir(warehouse, prefix string, ident table.Identifier) string {
	if prefix == "" {
		prefix = DefaultDeadLetterPrefix
	}
	return strings.TrimRight(warehouse, "/") + "/" + strings.Trim(prefix, "/") + "/" + strings.Join(ident, ".")
}

// pendingDir is beside the readable store, not inside it: readers
// (ReadDeadLetters, an Athena table over Dir) never see pending objects.
func pendingDir(warehouse, prefix string, ident table.Identifier) string {
	if prefix == "" {
		prefix = DefaultDeadLetterPrefix
	}
	return strings.TrimRight(warehouse, "/") + "/" + strings.Trim(prefix, "/") + PendingSuffix + "/" + strings.Join(ident, ".")
}

// PendingSuffix follows the dead-letter prefix in the folder of staged,
// not yet published objects ("_dead_letter_pending").
const PendingSuffix = "_pending"

// Dir is the folder holding this table's readable dead letters.
func (d *DeadLetter) Dir() string { return d.dir }

// PendingDir is the folder holding this table's staged dead letters.
func (d *DeadLetter) PendingDir() string { return d.pending }

// Location is the final object of shard's rejects firstSeq..lastSeq.
func (d *DeadLetter) Location(shard, firstSeq, lastSeq string) string {
	return d.dir + "/" + objectName(shard, firstSeq, lastSeq)
}

func objectName(shard, firstSeq, lastSeq string) string {
	return url.PathEscape(shard) + "/" + firstSeq + "-" + lastSeq + ".ndjson"
}

// Stage writes recs (all from shard, sorted by sequence number, the first
// firstSeq and the last lastSeq) as a pending object of the commit attempt
// commitID and returns its location. Call it before the attempt's commit;
// after the commit call Publish if it landed, Discard if it certainly did
// not, and neither if the outcome is unknown (the maintainer's
// SweepDeadLetters decides). No records: nothing is written, "" returned.
func (d *DeadLetter) Stage(ctx context.Context, commitID, shard, firstSeq, lastSeq string, recs []commit.Rejected) (string, error) {
	if len(recs) == 0 {
		return "", nil
	}
	if shard == "" || !commit.IsPosition(firstSeq) || !commit.IsPosition(lastSeq) || !validCommitID(commitID) {
		return "", fmt.Errorf("dead letter: commit id %q, shard %q and range %q..%q must be set (a range of positions, SEQ or SEQ:SUB)", commitID, shard, firstSeq, lastSeq)
	}
	data, err := d.encode(shard, recs)
	if err != nil {
		return "", err
	}
	loc := d.pending + "/" + commitID + "/" + objectName(shard, firstSeq, lastSeq)
	if err := writeObject(ctx, loc, data); err != nil {
		return "", fmt.Errorf("dead letter: write %s: %w", loc, err)
	}
	d.records.Add(float64(len(recs)))
	d.objects.Inc()
	return loc, nil
}

// validCommitID accepts ids that are one path segment.
func validCommitID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\\\x00")
}

func (d *DeadLetter) encode(shard string, recs []commit.Rejected) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		line := DeadLetterRecord{
			Table:     d.table,
			Shard:     r.Shard,
			Sequence:  r.Sequence,
			ArrivedAt: r.ArrivedAt.UTC(),
			Reasons:   r.Reasons,
		}
		if r.SubSequence >= 0 {
			line.SubSequence = &r.SubSequence
		}
		if line.Shard == "" {
			line.Shard = shard
		}
		if line.Reasons == nil {
			line.Reasons = []string{}
		}
		if utf8.Valid(r.Raw) {
			line.Raw = string(r.Raw)
		} else {
			line.Raw, line.RawBase64 = base64.StdEncoding.EncodeToString(r.Raw), true
		}
		if err := enc.Encode(&line); err != nil {
			return nil, fmt.Errorf("dead letter: encode record %s/%s: %w", shard, r.Sequence, err)
		}
	}
	return buf.Bytes(), nil
}

// Publish makes the objects staged by commitID readable under their final
// names and removes the pending ones; it returns how many it published.
// Call it only for a commit that landed. Idempotent: a final object is a
// copy of the same bytes whoever publishes it (the committing writer, or
// the maintainer's sweep after a crash), and nothing else has its name.
func (d *DeadLetter) Publish(ctx context.Context, commitID string) (int, error) {
	if !validCommitID(commitID) {
		return 0, fmt.Errorf("dead letter: bad commit id %q", commitID)
	}
	objs, err := d.listPending(ctx, d.pending+"/"+commitID)
	if err != nil {
		return 0, err
	}
	for i, o := range objs {
		if err := d.publish(ctx, o); err != nil {
			return i, err
		}
	}
	return len(objs), nil
}

// Discard removes the objects staged by commitID. Call it only for a
// commit that certainly did not land.
func (d *DeadLetter) Discard(ctx context.Context, commitID string) error {
	if !validCommitID(commitID) {
		return fmt.Errorf("dead letter: bad commit id %q", commitID)
	}
	objs, err := d.listPending(ctx, d.pending+"/"+commitID)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := removeObject(ctx, o.loc); err != nil {
			return fmt.Errorf("dead letter: remove %s: %w", o.loc, err)
		}
	}
	return nil
}

// pendingObject is one staged object: its location, the commit attempt
// that staged it, its final name relative to Dir and when it was written.
type pendingObject struct {
	loc, commitID, rel string
	written            time.Time
}

func (d *DeadLetter) publish(ctx context.Context, o pendingObject) error {
	data, err := readLocation(ctx, o.loc)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // published (or discarded) by someone else meanwhile
	}
	if err != nil {
		return fmt.Errorf("dead letter: read %s: %w", o.loc, err)
	}
	final := d.dir + "/" + o.rel
	// Never overwrite: a published object may since have been rewritten
	// by a replay (Replace), and whoever published first wrote these bytes.
	if exists, err := objectExists(ctx, final); err != nil {
		return fmt.Errorf("dead letter: publish %s: %w", final, err)
	} else if !exists {
		if err := writeObject(ctx, final, data); err != nil {
			return fmt.Errorf("dead letter: publish %s: %w", final, err)
		}
	}
	if err := removeObject(ctx, o.loc); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dead letter: remove published %s: %w", o.loc, err)
	}
	return nil
}

// listPending lists the staged objects under root (the whole pending
// folder, or one commit's). A missing folder is none.
func (d *DeadLetter) listPending(ctx context.Context, root string) ([]pendingObject, error) {
	var out []pendingObject
	err := walkObjects(ctx, root, func(loc string, info fs.FileInfo) {
		rest, ok := strings.CutPrefix(loc, d.pending+"/")
		if !ok {
			return
		}
		id, rel, ok := strings.Cut(rest, "/")
		if !ok || !strings.HasSuffix(rel, ".ndjson") {
			return
		}
		out = append(out, pendingObject{loc: loc, commitID: id, rel: rel, written: info.ModTime()})
	})
	return out, err
}

// Objects returns every published object of the store with its records,
// ordered by name.
func (d *DeadLetter) Objects(ctx context.Context) ([]DeadLetterObject, error) {
	return readDeadLetterObjects(ctx, d.dir)
}

// Replace rewrites the published object name (DeadLetterObject.Name) whole
// with recs, or removes it when recs is empty: a replay keeps there only
// the records that still fail, with their new reasons.
func (d *DeadLetter) Replace(ctx context.Context, name string, recs []DeadLetterRecord) error {
	loc := d.dir + "/" + name
	if len(recs) == 0 {
		if err := removeObject(ctx, loc); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("dead letter: remove %s: %w", loc, err)
		}
		return nil
	}
	data, err := EncodeDeadLetters(recs)
	if err != nil {
		return err
	}
	if err := writeObject(ctx, loc, data); err != nil {
		return fmt.Errorf("dead letter: rewrite %s: %w", loc, err)
	}
	return nil
}

// EncodeDeadLetters returns recs as the NDJSON of a dead-letter object.
func EncodeDeadLetters(recs []DeadLetterRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return nil, fmt.Errorf("dead letter: encode record %s/%s: %w", recs[i].Shard, recs[i].Sequence, err)
		}
	}
	return buf.Bytes(), nil
}

// ReadDeadLetters returns every readable dead-letter record of table
// ident (published objects only), ordered by shard and sequence number
// (for tests and tools). A missing folder is no records.
func ReadDeadLetters(ctx context.Context, warehouse, prefix string, ident table.Identifier) ([]DeadLetterRecord, error) {
	objs, err := ReadDeadLetterObjects(ctx, warehouse, prefix, ident)
	if err != nil {
		return nil, err
	}
	var out []DeadLetterRecord
	for _, o := range objs {
		out = append(out, o.Records...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Shard != out[j].Shard {
			return out[i].Shard < out[j].Shard
		}
		return commit.CompareSeq(out[i].Position(), out[j].Position()) < 0
	})
	return out, nil
}

// DeadLetterObject is one published dead-letter object.
type DeadLetterObject struct {
	Location string // full location (file:// or s3://)
	Name     string // relative to the store: SHARD/FIRST-LAST.ndjson
	Shard    string // the shard id, unescaped
	Written  time.Time
	Data     []byte // the object's bytes
	Records  []DeadLetterRecord
}

// ReadDeadLetterObjects returns every published dead-letter object of
// table ident with its records, ordered by name. A missing folder is none.
func ReadDeadLetterObjects(ctx context.Context, warehouse, prefix string, ident table.Identifier) ([]DeadLetterObject, error) {
	return readDeadLetterObjects(ctx, deadLetterDir(warehouse, prefix, ident))
}

func readDeadLetterObjects(ctx context.Context, dir string) ([]DeadLetterObject, error) {
	var objs []DeadLetterObject
	err := walkObjects(ctx, dir, func(loc string, info fs.FileInfo) {
		rel, ok := strings.CutPrefix(loc, dir+"/")
		if !ok || !strings.HasSuffix(rel, ".ndjson") {
			return
		}
		escaped, _, _ := strings.Cut(rel, "/")
		shard, err := url.PathUnescape(escaped)
		if err != nil {
			shard = escaped
		}
		objs = append(objs, DeadLetterObject{Location: loc, Name: rel, Shard: shard, Written: info.ModTime()})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Name < objs[j].Name })
	for i := range objs {
		o := &objs[i]
		if o.Data, err = readLocation(ctx, o.Location); err != nil {
			return nil, fmt.Errorf("read %s: %w", o.Location, err)
		}
		if o.Records, err = ParseDeadLetters(o.Data); err != nil {
			return nil, fmt.Errorf("parse %s: %w", o.Location, err)
		}
	}
	return objs, nil
}

// ParseDeadLetters parses the NDJSON lines of a dead-letter object.
func ParseDeadLetters(data []byte) ([]DeadLetterRecord, error) {
	var out []DeadLetterRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r DeadLetterRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func readObject(fsys icebergio.IO, path string) ([]byte, error) {
	if r, ok := fsys.(icebergio.ReadFileIO); ok {
		return r.ReadFile(path)
	}
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}
