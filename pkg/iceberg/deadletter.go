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
	Table     string    `json:"table"`
	Shard     string    `json:"shard_id"`
	Sequence  string    `json:"sequence_number"`
	ArrivedAt time.Time `json:"arrived_at"`
	Reasons   []string  `json:"reasons"`
	Raw       string    `json:"raw"`
	RawBase64 bool      `json:"raw_base64,omitempty"`
}

// RawBytes returns the record's original bytes.
func (r DeadLetterRecord) RawBytes() ([]byte, error) {
	if r.RawBase64 {
		return base64.StdEncoding.DecodeString(r.Raw)
	}
	return []byte(r.Raw), nil
}

// DeadLetter writes rejected records as NDJSON objects under
// WAREHOUSE/PREFIX/NAMESPACE.TABLE/SHARD/FIRST-LAST.ndjson, beside the
// table's own folder. The name depends only on the shard and the sequence
// range, so a batch replayed after a crash rewrites its object instead of
// adding a second copy. Works for file:// and s3:// warehouses (AWS
// settings from the standard chain). Safe for concurrent use.
type DeadLetter struct {
	dir     string
	table   string
	records prometheus.Counter
	objects prometheus.Counter
}

// NewDeadLetter returns the dead-letter store for table ident. prefix ""
// means DefaultDeadLetterPrefix. reg (may be nil) receives
// paystream_deadletter_records_total and paystream_deadletter_objects_total.
func NewDeadLetter(warehouse, prefix string, ident table.Identifier, reg prometheus.Registerer) *DeadLetter {
	return &DeadLetter{
		dir:   deadLetterDir(warehouse, prefix, ident),
		table: strings.Join(ident, "."),
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

// Dir is the folder holding this table's dead letters.
func (d *DeadLetter) Dir() string { return d.dir }

// Location is the object that Write uses for shard's range firstSeq..lastSeq.
func (d *DeadLetter) Location(shard, firstSeq, lastSeq string) string {
	return d.dir + "/" + url.PathEscape(shard) + "/" + firstSeq + "-" + lastSeq + ".ndjson"
}

// Write stores recs (all from shard, sequence numbers within
// firstSeq..lastSeq — the batch's range) as one NDJSON object and returns
// its location. Call it before committing the batch's good rows, so a crash
// between the two replays the batch and rewrites the same object. No
// records: nothing is written and the location is "".
func (d *DeadLetter) Write(ctx context.Context, shard, firstSeq, lastSeq string, recs []commit.Rejected) (string, error) {
	if len(recs) == 0 {
		return "", nil
	}
	if shard == "" || firstSeq == "" || lastSeq == "" {
		return "", fmt.Errorf("dead letter: shard %q and range %q..%q must not be empty", shard, firstSeq, lastSeq)
	}
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
			return "", fmt.Errorf("dead letter: encode record %s/%s: %w", shard, r.Sequence, err)
		}
	}
	loc := d.Location(shard, firstSeq, lastSeq)
	if err := writeObject(ctx, loc, buf.Bytes()); err != nil {
		return "", fmt.Errorf("dead letter: write %s: %w", loc, err)
	}
	d.records.Add(float64(len(recs)))
	d.objects.Inc()
	return loc, nil
}

func writeObject(ctx context.Context, loc string, data []byte) error {
	fsys, err := icebergio.LoadFS(ctx, storageProps(), loc)
	if err != nil {
		return err
	}
	wfs, ok := fsys.(icebergio.WriteFileIO)
	if !ok {
		return fmt.Errorf("storage for %s cannot write files", loc)
	}
	return wfs.WriteFile(loc, data)
}

// ReadDeadLetters returns every dead-letter record of table ident, ordered
// by shard and sequence number (for tests and tools). A missing folder is
// no records.
func ReadDeadLetters(ctx context.Context, warehouse, prefix string, ident table.Identifier) ([]DeadLetterRecord, error) {
	dir := deadLetterDir(warehouse, prefix, ident)
	fsys, err := icebergio.LoadFS(ctx, storageProps(), dir)
	if err != nil {
		return nil, err
	}
	lfs, ok := fsys.(icebergio.ListableIO)
	if !ok {
		return nil, fmt.Errorf("storage for %s cannot list files", dir)
	}
	var paths []string
	err = lfs.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasSuffix(path, ".ndjson") {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []DeadLetterRecord
	for _, p := range paths {
		data, err := readObject(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var r DeadLetterRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return nil, fmt.Errorf("parse %s: %w", p, err)
			}
			out = append(out, r)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Shard != out[j].Shard {
			return out[i].Shard < out[j].Shard
		}
		return commit.CompareSeq(out[i].Sequence, out[j].Sequence) < 0
	})
	return out, nil
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
