package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/schema"
)

// File ingest: NDJSON files (producer --output, exports, replays) through
// the same decode → validate → dedup → write → commit path as the stream.
//
// A file is one "shard" of the table's position protocol. Its shard id is
// "file-" + the first 128 bits of the SHA-256 of its content, so the same
// bytes get the same id whatever their name or whether they came on
// standard input; its sequence numbers are line numbers (1-based). Every
// commit moves the file's position to the last line it covers, in the same
// Iceberg commit as the rows, so re-running on the same file adds nothing
// and an interrupted run resumes after the last committed line. Rows carry
// shard_id = the file's id and sequence_number = its line number.

// DefaultFileBatchRows is the default number of lines per commit.
const DefaultFileBatchRows = 100_000

// FileSourcePrefix starts every file ingest shard id.
const FileSourcePrefix = "file-"

// FileSink is the part of *iceberg.Sink file ingest uses.
type FileSink interface {
	Commit(ctx context.Context, b iceberg.Batch) (iceberg.CommitResult, error)
	Positions(ctx context.Context) (map[string]string, error)
}

// FileDeadLetters is the part of *iceberg.DeadLetter file ingest uses.
type FileDeadLetters interface {
	Write(ctx context.Context, shard, firstSeq, lastSeq string, recs []iceberg.Rejected) (string, error)
}

var (
	_ FileSink        = (*iceberg.Sink)(nil)
	_ FileDeadLetters = (*iceberg.DeadLetter)(nil)
)

// DedupBatch is one micro-batch of an event_id de-duplication window, as
// pkg/dedup's *Batch: Check each event, then Commit once the batch is in the
// table, or Abort.
type DedupBatch interface {
	Check(eventID string) (duplicate bool)
	Commit(at time.Time) error
	Abort()
}

// FileConfig configures file ingest. The zero value plus a Sink and
// DeadLetters works.
type FileConfig struct {
	Sink        FileSink
	DeadLetters FileDeadLetters
	// Dedup, when set, starts a de-duplication batch for a shard id
	// (usually func(s string) DedupBatch { return filter.Begin(s) }).
	// Events whose event_id was already seen in the same file are dropped
	// and counted as duplicates. Nil: no de-duplication.
	Dedup func(shard string) DedupBatch
	// BatchRows is the number of lines per commit (flag --batch-rows);
	// default DefaultFileBatchRows.
	BatchRows int
	// TempDir holds the copy of standard input (its id is the hash of its
	// content, known only at its end); empty means os.TempDir().
	TempDir string
	// Progress, when set, receives a one-line progress bar redrawn with
	// "\r" (a terminal); the caller decides whether it is one.
	Progress io.Writer
	// Now is the clock (ingested_at, future-timestamp check); default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Validate reports settings that cannot work, naming the flag.
func (c FileConfig) Validate() error {
	var errs []error
	if c.Sink == nil {
		errs = append(errs, errors.New("file ingest: no sink"))
	}
	if c.DeadLetters == nil {
		errs = append(errs, errors.New("file ingest: no dead-letter store"))
	}
	if c.BatchRows < 0 {
		errs = append(errs, fmt.Errorf("--batch-rows %d: must be positive (or 0 for the default %d)", c.BatchRows, DefaultFileBatchRows))
	}
	return errors.Join(errs...)
}

// FileStats summarises the ingest of one input.
type FileStats struct {
	Name       string // path, or "-" for standard input
	Source     string // shard id: "file-" + content hash
	Bytes      int64  // size of the input
	Lines      int64  // lines in the input
	Skipped    int64  // lines committed by an earlier run, not written again
	Rows       int64  // rows committed by this run
	Rejected   int64  // lines sent to the dead-letter store by this run
	Duplicates int64  // lines dropped as repeated event_ids by this run
	Blank      int64  // empty lines, ignored
	Commits    int
	Elapsed    time.Duration
}

// FileIngester ingests NDJSON inputs. One goroutine uses it at a time.
type FileIngester struct {
	cfg FileConfig
	log *slog.Logger
	mem memory.Allocator
}

// NewFileIngester checks cfg and returns an ingester. It starts no goroutines.
func NewFileIngester(cfg FileConfig) (*FileIngester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchRows == 0 {
		cfg.BatchRows = DefaultFileBatchRows
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FileIngester{cfg: cfg, log: log, mem: memory.NewGoAllocator()}, nil
}

// IngestPath ingests the file at path, or standard input (stdin) when path
// is "-". Standard input is first copied to a temporary file, to hash it.
func (f *FileIngester) IngestPath(ctx context.Context, path string, stdin io.Reader) (FileStats, error) {
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return FileStats{Name: path}, fmt.Errorf("ingest %s: %w", path, err)
		}
		defer func() { _ = file.Close() }()
		return f.IngestFile(ctx, path, file)
	}
	tmp, err := os.CreateTemp(f.cfg.TempDir, "paystream-stdin-*.ndjson")
	if err != nil {
		return FileStats{Name: path}, fmt.Errorf("ingest standard input: temporary copy: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if _, err := io.Copy(tmp, contextReader{ctx, stdin}); err != nil {
		return FileStats{Name: path}, fmt.Errorf("ingest standard input: copy to %s: %w", tmp.Name(), err)
	}
	return f.IngestFile(ctx, path, tmp)
}

// contextReader stops a copy when ctx ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SourceID returns the shard id of content read from r: "file-" and 32 hex
// digits of its SHA-256. It also returns the content's size and its number
// of lines (a last line without a newline counts).
func SourceID(r io.Reader) (id string, size, lines int64, err error) {
	h := &hashLines{h: sha256.New()}
	size, err = io.Copy(h, r)
	if err != nil {
		return "", size, 0, err
	}
	lines = h.newlines
	if size > 0 && h.last != '\n' {
		lines++
	}
	return FileSourcePrefix + hex.EncodeToString(h.h.Sum(nil)[:16]), size, lines, nil
}

// hashLines hashes what is written to it and counts newlines.
type hashLines struct {
	h        hash.Hash
	newlines int64
	last     byte
}

func (w *hashLines) Write(p []byte) (int, error) {
	w.newlines += int64(bytes.Count(p, []byte{'\n'}))
	if len(p) > 0 {
		w.last = p[len(p)-1]
	}
	return w.h.Write(p)
}

// IngestFile ingests one NDJSON input from its start; name is for messages
// and stats. It reads the input twice: once to compute its id, once to
// ingest it.
//
// Each line is decoded and validated (schema.Decode). Valid events not
// rejected by Dedup are appended to the table; invalid lines go to the
// dead-letter store with their reasons, written before the commit of the
// same batch. Every BatchRows lines are one commit that also moves the
// file's position. Lines up to the position committed by an earlier run are
// not written again (they still pass through Dedup, so a resumed run drops
// duplicates of lines committed before the interruption).
//
// Errors: ctx ending stops the run (committed batches stay; a re-run
// resumes); iceberg.ErrPositionMoved means another run committed this
// content at the same time (re-run to resume); other errors come from
// reading, the dead-letter store or the commit.
func (f *FileIngester) IngestFile(ctx context.Context, name string, r io.ReadSeeker) (FileStats, error) {
	start := time.Now()
	st := FileStats{Name: name}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("ingest %s: rewind: %w", name, err)
	}
	src, size, lines, err := SourceID(contextReader{ctx, r})
	if err != nil {
		return st, fmt.Errorf("ingest %s: read: %w", name, err)
	}
	st.Source, st.Bytes = src, size
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("ingest %s: rewind: %w", name, err)
	}
	positions, err := f.cfg.Sink.Positions(ctx)
	if err != nil {
		return st, fmt.Errorf("ingest %s: read positions: %w", name, err)
	}
	after := positions[src]
	resume, err := lineNumber(after)
	if err != nil {
		return st, fmt.Errorf("ingest %s: table position of %s: %w", name, src, err)
	}
	f.log.Info("ingest file", "name", name, "source", src, "bytes", size, "lines", lines, "resume_after_line", resume)
	switch {
	case resume > lines:
		return st, fmt.Errorf("ingest %s: the table's position for %s is line %d but the input has %d lines; "+
			"the position was not written by file ingest of this content", name, src, resume, lines)
	case resume == lines:
		// Everything was committed by earlier runs: nothing to read.
		st.Lines, st.Skipped, st.Elapsed = lines, lines, time.Since(start)
		return st, nil
	}

	run := &fileRun{
		f: f, ctx: ctx, st: &st, src: src, after: after,
		rb:       schema.NewRecordBuilder(f.mem),
		progress: newProgressBar(f.cfg.Progress, size, start),
	}
	defer run.rb.Release()
	err = run.read(bufio.NewReaderSize(r, 1<<20), resume)
	st.Elapsed = time.Since(start)
	run.progress.done(&st)
	if err != nil {
		return st, fmt.Errorf("ingest %s (%s): %w", name, src, err)
	}
	f.log.Info("ingested file", "name", name, "source", src, "rows", st.Rows, "rejected", st.Rejected,
		"duplicates", st.Duplicates, "skipped", st.Skipped, "commits", st.Commits, "elapsed", st.Elapsed)
	return st, nil
}

func lineNumber(pos string) (int64, error) {
	if pos == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(pos, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a line number", pos)
	}
	return n, nil
}

// fileRun is the state of one IngestFile call.
type fileRun struct {
	f        *FileIngester
	ctx      context.Context
	st       *FileStats
	src      string
	after    string // table position before the current batch ("" for none)
	rb       *schema.RecordBuilder
	progress *progressBar

	// current batch
	now      time.Time
	first    int64 // first line of the batch
	last     int64 // last line read into the batch
	content  bool  // the batch holds a non-blank line
	rejected []iceberg.Rejected
	dups     int64
	dedup    DedupBatch
}

// maxLine bounds how much of an over-long line is kept (for the dead-letter
// store); the rest is read and dropped.
const maxLine = schema.MaxRecordBytes + 1

func (run *fileRun) read(br *bufio.Reader, resume int64) error {
	var (
		long    []byte // assembles lines longer than the reader's buffer
		lineNo  int64
		offset  int64
		tooLong int64 // bytes of the current line before its last chunk
	)
	if resume > 0 {
		run.beginBatch()
	}
	for {
		chunk, err := br.ReadSlice('\n')
		offset += int64(len(chunk))
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) < maxLine {
				long = append(long, chunk[:min(len(chunk), maxLine-len(long))]...)
			}
			tooLong += int64(len(chunk))
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read line %d: %w", lineNo+1, err)
		}
		if len(chunk) == 0 && errors.Is(err, io.EOF) && tooLong == 0 {
			break
		}
		line := chunk
		if tooLong > 0 {
			if len(long) < maxLine {
				long = append(long, chunk[:min(len(chunk), maxLine-len(long))]...)
			}
			line = long
		}
		full := tooLong + int64(len(chunk))
		lineNo++
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))

		if lineNo <= resume {
			run.replay(line)
			if lineNo == resume {
				if err := run.endReplay(); err != nil {
					return err
				}
			}
		} else {
			if run.first == 0 {
				run.beginBatch()
				run.first = lineNo
			}
			run.last = lineNo
			run.add(line, lineNo, full)
			if run.last-run.first+1 >= int64(run.f.cfg.BatchRows) {
				if err := run.flush(); err != nil {
					return err
				}
			}
		}
		long, tooLong = long[:0], 0
		if lineNo&1023 == 0 {
			if err := run.ctx.Err(); err != nil {
				return err
			}
			run.st.Lines = lineNo
			run.progress.update(offset, run.st)
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	run.st.Lines = lineNo
	if resume > lineNo { // the input changed since it was hashed
		if run.dedup != nil {
			run.dedup.Abort()
		}
		return fmt.Errorf("the input has %d lines, fewer than the %d hashed: did it change while being read?", lineNo, resume)
	}
	return run.flush()
}

// beginBatch starts a batch: clock and dedup window.
func (run *fileRun) beginBatch() {
	run.now = run.f.cfg.Now().UTC()
	if run.f.cfg.Dedup != nil {
		run.dedup = run.f.cfg.Dedup(run.src)
	}
}

// replay passes a line committed by an earlier run through decode and
// dedup only, so the dedup window knows its event_id.
func (run *fileRun) replay(line []byte) {
	run.st.Skipped++
	if run.dedup == nil || len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ev, err := schema.Decode(line, run.now)
	if err != nil {
		return
	}
	run.dedup.Check(ev.EventID)
}

// endReplay commits the replayed ids into the dedup window.
func (run *fileRun) endReplay() error {
	if run.dedup != nil {
		if err := run.dedup.Commit(run.now); err != nil {
			return fmt.Errorf("dedup: %w", err)
		}
	}
	run.dedup = nil
	return nil
}

// add decodes one line into the current batch.
func (run *fileRun) add(line []byte, lineNo, fullLen int64) {
	if len(bytes.TrimSpace(line)) == 0 {
		run.st.Blank++
		return
	}
	run.content = true
	seq := strconv.FormatInt(lineNo, 10)
	if fullLen > schema.MaxRecordBytes {
		run.reject(line, seq, []string{fmt.Sprintf("record: is %d bytes; the limit is %d bytes (1 MiB); the raw record here is cut to its first %d bytes",
			fullLen, schema.MaxRecordBytes, len(line))})
		return
	}
	ev, err := schema.Decode(line, run.now)
	if err != nil {
		var inv *schema.InvalidError
		reasons := []string{err.Error()}
		if errors.As(err, &inv) {
			reasons = inv.Reasons()
		}
		run.reject(line, seq, reasons)
		return
	}
	if run.dedup != nil && run.dedup.Check(ev.EventID) {
		run.dups++
		return
	}
	run.rb.Append(&schema.Row{Event: ev, ShardID: run.src, SequenceNumber: seq, IngestedAt: run.now})
}

func (run *fileRun) reject(line []byte, seq string, reasons []string) {
	run.rejected = append(run.rejected, iceberg.Rejected{
		Raw:       bytes.Clone(line),
		Reasons:   reasons,
		Shard:     run.src,
		Sequence:  seq,
		ArrivedAt: run.now,
	})
}

// flush writes the batch's rejects to the dead-letter store, then commits
// its rows and the new position in one commit. A batch of blank lines only
// is not committed.
func (run *fileRun) flush() error {
	defer func() {
		run.first, run.last, run.content = 0, 0, false
		run.rejected, run.dups = nil, 0
		if run.dedup != nil {
			run.dedup.Abort() // no-op after Commit
			run.dedup = nil
		}
	}()
	if !run.content {
		return nil
	}
	if err := run.ctx.Err(); err != nil {
		return err
	}
	first, last := strconv.FormatInt(run.first, 10), strconv.FormatInt(run.last, 10)
	if len(run.rejected) > 0 {
		if _, err := run.f.cfg.DeadLetters.Write(run.ctx, run.src, first, last, run.rejected); err != nil {
			return fmt.Errorf("lines %s-%s: %w", first, last, err)
		}
	}
	rec := run.rb.NewRecordBatch()
	defer rec.Release()
	res, err := run.f.cfg.Sink.Commit(run.ctx, iceberg.Batch{
		Records: rec,
		Ranges:  []iceberg.ShardRange{{Shard: run.src, After: run.after, Last: last}},
	})
	if err != nil {
		if errors.Is(err, iceberg.ErrPositionMoved) {
			return fmt.Errorf("commit lines %s-%s: %w (is another ingest of the same content running? re-run to resume after what it committed)", first, last, err)
		}
		return fmt.Errorf("commit lines %s-%s: %w", first, last, err)
	}
	if run.dedup != nil {
		if err := run.dedup.Commit(run.now); err != nil {
			return fmt.Errorf("dedup: %w", err)
		}
	}
	run.after = last
	run.st.Commits++
	run.st.Rows += rec.NumRows()
	run.st.Rejected += int64(len(run.rejected))
	run.st.Duplicates += run.dups
	run.f.log.Debug("committed file batch", "source", run.src, "first_line", first, "last_line", last,
		"rows", rec.NumRows(), "rejected", len(run.rejected), "snapshot_id", res.SnapshotID)
	return nil
}

// progressBar draws "[#####.....]  45%  112.3 MiB/250.0 MiB  40.1 MiB/s  412,000 lines read  400,000 rows committed"
// on one line, at most every 200 ms.
type progressBar struct {
	w     io.Writer
	total int64
	start time.Time
	next  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, total int64, start time.Time) *progressBar {
	return &progressBar{w: w, total: total, start: start}
}

func (p *progressBar) update(offset int64, st *FileStats) {
	if p.w == nil {
		return
	}
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(200 * time.Millisecond)
	p.draw(offset, st, now)
}

func (p *progressBar) draw(offset int64, st *FileStats, now time.Time) {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(offset)/float64(p.total), 1)
	}
	fill := int(frac * width)
	rate := 0.0
	if el := now.Sub(p.start).Seconds(); el > 0 {
		rate = float64(offset) / el
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %s/%s  %s/s  %s lines read  %s rows committed ",
		strings.Repeat("#", fill), strings.Repeat(".", width-fill), frac*100,
		FormatBytes(offset), FormatBytes(p.total), FormatBytes(int64(rate)), FormatCount(st.Lines), FormatCount(st.Rows))
	p.drawn = true
}

// done draws the final state and ends the line.
func (p *progressBar) done(st *FileStats) {
	if p.w == nil || !p.drawn {
		return
	}
	p.draw(p.total, st, time.Now())
	fmt.Fprintln(p.w)
}

// FormatBytes prints a byte count with a binary unit: "112.3 MiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// FormatCount prints an integer with thousands separators: "1,234,567".
func FormatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
