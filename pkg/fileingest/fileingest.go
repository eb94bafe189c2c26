package fileingest

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
	"lukechampine.com/blake3"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/schema"
)

// DefaultBatchRows is the default number of lines per commit.
const DefaultBatchRows = 100_000

// SourcePrefix starts every file ingest shard id.
const SourcePrefix = "file-"

// blake3Prefix starts the shard ids SourceID makes: SourcePrefix, then
// "b3-". Ids of earlier versions were SourcePrefix and 32 hex digits of
// the content's SHA-256 (legacySourceID).
const blake3Prefix = SourcePrefix + "b3-"

// Config configures file ingest. The zero value plus a Table and
// DeadLetters works.
type Config struct {
	Table       commit.Table       // *iceberg.Sink
	DeadLetters commit.DeadLetters // *iceberg.DeadLetter
	// Dedup, when set, drops events whose event_id was already seen in the
	// same input (within its window). Nil: no de-duplication.
	Dedup *dedup.Filter
	// BatchRows is the number of lines per commit (flag --batch-rows);
	// default DefaultBatchRows.
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
func (c Config) Validate() error {
	var errs []error
	if c.Table == nil {
		errs = append(errs, errors.New("file ingest: no table"))
	}
	if c.DeadLetters == nil {
		errs = append(errs, errors.New("file ingest: no dead-letter store"))
	}
	if c.BatchRows < 0 {
		errs = append(errs, fmt.Errorf("--batch-rows %d: must be positive (or 0 for the default %d)", c.BatchRows, DefaultBatchRows))
	}
	return errors.Join(errs...)
}

// Stats summarises the ingest of one input.
type Stats struct {
	Name       string // path, or "-" for standard input
	Source     string // shard id: "file-b3-" + content hash (SourceID)
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

// Ingester ingests NDJSON inputs. One goroutine uses it at a time.
type Ingester struct {
	cfg  Config
	log  *slog.Logger
	step *commit.Step
	// cols builds every batch of every input: later batches, and later
	// inputs, reuse the memory of the batches committed before.
	cols *schema.EventColumns
}

// New checks cfg and returns an ingester. It starts no goroutines.
func New(cfg Config) (*Ingester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchRows == 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mem := memory.NewGoAllocator()
	step, err := commit.NewStep(commit.Config{
		Table: cfg.Table, DeadLetters: cfg.DeadLetters, Dedup: cfg.Dedup, Now: cfg.Now, Mem: mem,
	})
	if err != nil {
		return nil, err
	}
	return &Ingester{cfg: cfg, log: log, step: step, cols: schema.NewEventColumns(mem)}, nil
}

// IngestPath ingests the file at path, or standard input (stdin) when path
// is "-". Standard input is first copied to a temporary file, to hash it.
func (f *Ingester) IngestPath(ctx context.Context, path string, stdin io.Reader) (Stats, error) {
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return Stats{Name: path}, fmt.Errorf("ingest %s: %w", path, err)
		}
		defer func() { _ = file.Close() }()
		return f.IngestFile(ctx, path, file)
	}
	tmp, err := os.CreateTemp(f.cfg.TempDir, "paystream-stdin-*.ndjson")
	if err != nil {
		return Stats{Name: path}, fmt.Errorf("ingest standard input: temporary copy: %w", err)
	}
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
	}()
	if _, err := io.Copy(tmp, contextReader{ctx, stdin}); err != nil {
		return Stats{Name: path}, fmt.Errorf("ingest standard input: copy to %s: %w", tmp.Name(), err)
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

// SourceID returns the shard id of content read from r: "file-b3-" and
// 32 hex digits of its BLAKE3 hash. It also returns the content's size and
// its number of lines (a last line without a newline counts).
//
// The id is the table's name for the content: its position property
// says how far earlier runs committed it, and every row carries it. So it
// is a cryptographic hash: the same content must get the same id in every
// process (a resumed or repeated ingest skips what is committed; a
// per-process key, as the dedup window uses, would ingest it again), and
// no two inputs may share one (the second would be skipped as committed:
// silent loss), which a fast non-cryptographic hash does not promise for
// inputs made to collide. BLAKE3 rather than SHA-256 because it hashes
// two to three times as fast on one core (BENCHMARKS.md, "One core"; the
// library uses AVX-512 where the CPU has it, AVX2 or SSE4.1 otherwise,
// with the same result: TestSourceIDIsBLAKE3); content
// committed under an earlier version's SHA-256 id is still found by that
// id (IngestFile).
func SourceID(r io.Reader) (id string, size, lines int64, err error) {
	h := &hashLines{h: blake3.New(32, nil)}
	// Large reads: BLAKE3 hashes a 1 MiB write about a third faster than
	// io.Copy's 32 KiB ones (its SIMD code takes many chunks at a time).
	size, err = io.CopyBuffer(h, r, make([]byte, hashBuffer))
	if err != nil {
		return "", size, 0, err
	}
	lines = h.newlines
	if size > 0 && h.last != '\n' {
		lines++
	}
	return blake3Prefix + hex.EncodeToString(h.h.Sum(nil)[:16]), size, lines, nil
}

// hashBuffer is the size of SourceID's reads.
const hashBuffer = 1 << 20

// legacySourceID is the shard id earlier versions gave content read from
// r: "file-" and 32 hex digits of its SHA-256.
func legacySourceID(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return SourcePrefix + hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// hasLegacyIDs reports whether positions holds a position of content
// ingested under a legacySourceID id.
func hasLegacyIDs(positions map[string]string) bool {
	for shard := range positions {
		if rest, ok := strings.CutPrefix(shard, SourcePrefix); ok && !strings.HasPrefix(shard, blake3Prefix) && len(rest) == 32 {
			return true
		}
	}
	return false
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
// ingest it (three times when the table holds positions of content
// ingested under an earlier version's ids and none under this content's
// id: the third computes its earlier id).
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
// resumes); commit.ErrPositionMoved means another run committed this
// content at the same time (re-run to resume); other errors come from
// reading, the dead-letter store or the commit.
func (f *Ingester) IngestFile(ctx context.Context, name string, r io.ReadSeeker) (Stats, error) {
	start := time.Now()
	st := Stats{Name: name}
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
	positions, err := f.cfg.Table.Positions(ctx)
	if err != nil {
		return st, fmt.Errorf("ingest %s: read positions: %w", name, err)
	}
	if _, ok := positions[src]; !ok && hasLegacyIDs(positions) {
		// An earlier version may have committed this content under its
		// SHA-256 id: resume under that id, or it would be ingested again.
		legacy, err := legacySourceID(contextReader{ctx, r})
		if err != nil {
			return st, fmt.Errorf("ingest %s: read: %w", name, err)
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return st, fmt.Errorf("ingest %s: rewind: %w", name, err)
		}
		if _, ok := positions[legacy]; ok {
			src, st.Source = legacy, legacy
		}
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

	if f.cfg.Dedup != nil {
		// Size the window for every line once (replayed and new; at most
		// the window's MaxIDs) instead of doubling it through the run.
		f.cfg.Dedup.Reserve(src, int(min(lines, dedup.MaxMaxIDs)))
	}
	run := &fileRun{
		f: f, ctx: ctx, st: &st, src: src, after: after,
		progress: newProgressBar(f.cfg.Progress, size, start),
		cols:     f.cols,
	}
	// Room for a whole batch: growing by appending copies every column
	// about log2(BatchRows) times.
	run.cols.Begin(src, int(min(int64(f.cfg.BatchRows), lines-resume)))
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
	f        *Ingester
	ctx      context.Context
	st       *Stats
	src      string
	after    string // table position before the current batch ("" for none)
	progress *progressBar

	// current batch
	now     time.Time // clock for Decode's future-timestamp check
	first   int64     // first line of the batch
	last    int64     // last line read into the batch
	content bool      // the batch holds a non-blank line
	// cols holds the batch's valid events, decoded straight into the
	// record batch's columns (sequence_number: the line number).
	cols     *schema.EventColumns
	rejected []commit.Rejected
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
		replay  *dedup.Batch
	)
	if resume > 0 && run.f.cfg.Dedup != nil {
		replay = run.f.cfg.Dedup.Begin(run.src)
		defer replay.Abort() // no-op once committed
	}
	run.now = run.f.cfg.Now().UTC()
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
			run.replay(replay, line)
			if lineNo == resume && replay != nil {
				if err := replay.Commit(run.now); err != nil {
					return fmt.Errorf("dedup: %w", err)
				}
			}
		} else {
			if run.first == 0 {
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
		return fmt.Errorf("the input has %d lines, fewer than the %d hashed: did it change while being read?", lineNo, resume)
	}
	return run.flush()
}

// replay passes a line committed by an earlier run through decode and the
// dedup window only, so the window knows its event_id.
func (run *fileRun) replay(w *dedup.Batch, line []byte) {
	run.st.Skipped++
	if w == nil || len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ev, err := schema.Decode(line, run.now)
	if err != nil {
		return
	}
	w.Check(ev.EventID)
}

// add decodes one line into the current batch.
func (run *fileRun) add(line []byte, lineNo, fullLen int64) {
	if len(bytes.TrimSpace(line)) == 0 {
		run.st.Blank++
		return
	}
	run.content = true
	if fullLen > schema.MaxRecordBytes {
		run.reject(line, strconv.FormatInt(lineNo, 10), []string{fmt.Sprintf("record: is %d bytes; the limit is %d bytes (1 MiB); the raw record here is cut to its first %d bytes",
			fullLen, schema.MaxRecordBytes, len(line))})
		return
	}
	if err := run.cols.Decode(line, run.now, lineNo); err != nil {
		run.reject(line, strconv.FormatInt(lineNo, 10), schema.Reasons(err))
	}
}

func (run *fileRun) reject(line []byte, seq string, reasons []string) {
	run.rejected = append(run.rejected, commit.Rejected{
		Raw:         bytes.Clone(line),
		Reasons:     reasons,
		Shard:       run.src,
		Sequence:    seq,
		SubSequence: -1,
		ArrivedAt:   run.now,
	})
}

// flush commits the batch through the commit step: its rejects go to the
// dead-letter store, then its rows and the file's new position in one
// commit. A batch of blank lines only is not committed.
func (run *fileRun) flush() error {
	defer func() {
		run.first, run.last, run.content = 0, 0, false
		// The commit took the columns' rows (or they go now, after an
		// error): the next batch starts empty.
		run.cols.Begin(run.src, run.f.cfg.BatchRows)
		run.rejected = nil
		run.now = run.f.cfg.Now().UTC()
	}()
	if !run.content {
		return nil
	}
	if err := run.ctx.Err(); err != nil {
		return err
	}
	first, last := strconv.FormatInt(run.first, 10), strconv.FormatInt(run.last, 10)
	out, err := run.f.step.Commit(run.ctx, []commit.Part{{
		Shard: run.src, After: run.after, Last: last, Columns: run.cols, Rejected: run.rejected,
	}})
	var werr *commit.WindowError
	switch {
	case errors.As(err, &werr):
		run.f.log.Warn("dedup window not updated", "source", run.src, "err", err.Error())
	case errors.Is(err, commit.ErrPositionMoved):
		return fmt.Errorf("commit lines %s-%s: %w (is another ingest of the same content running? re-run to resume after what it committed)", first, last, err)
	case err != nil:
		return fmt.Errorf("commit lines %s-%s: %w", first, last, err)
	}
	if out.PublishErr != nil {
		run.f.log.Warn("dead letters staged but not yet published; a consumer's maintainer publishes them", "source", run.src, "err", out.PublishErr.Error())
	}
	run.after = last
	run.st.Commits++
	run.st.Rows += int64(out.Kept[run.src])
	run.st.Rejected += int64(out.Rejected[run.src])
	run.st.Duplicates += int64(out.Duplicates[run.src])
	run.f.log.Debug("committed file batch", "source", run.src, "first_line", first, "last_line", last,
		"rows", out.Kept[run.src], "rejected", out.Rejected[run.src], "snapshot_id", out.SnapshotID)
	return nil
}
