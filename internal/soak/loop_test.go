//go:build linux

package soak_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/chaos"
	"github.com/paystream/paystream/internal/promreport"
	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/internal/soak"
)

// soak starts the workers and the producer, measures a slice at every
// tenth of cfg.Commits, then stops the producer, drains and compares the
// table with what was produced.
func (r *run) soak(ctx context.Context) (*result, error) {
	if err := r.startWorkers(); err != nil {
		return nil, err
	}
	if err := r.startProducer(); err != nil {
		return nil, err
	}
	r.start = time.Now()
	res := &result{}
	if err := r.measure(ctx, res); err != nil {
		_, _ = r.stopProducer()
		return nil, err
	}
	sum, err := r.stopProducer()
	if err != nil {
		return nil, err
	}
	res.exact, err = r.drainAndCheck(ctx, sum)
	r.stopWorkers()
	return res, err
}

func (r *run) measure(ctx context.Context, res *result) error {
	fmt.Printf("soak: %d commits, catalog %s, producer %.0f records/s, load %s\n", r.cfg.Commits, r.env.Catalog, r.cfg.Rate, loadAvg())
	fmt.Println(soak.Header)
	var prev promreport.Snapshot
	prevAt := r.start
	for next := 1; next <= 10; {
		if err := retry.Sleep(ctx, 2*time.Second); err != nil {
			return fmt.Errorf("%w after %d%% of the commits", err, (next-1)*10)
		}
		snap, err := r.scrape(ctx)
		if err != nil {
			if time.Since(r.start) < time.Minute && !strings.Contains(err.Error(), "exited") {
				continue // the workers are still starting
			}
			return err
		}
		commits := snap.Sum(commitsMetric)
		r.samples = append(r.samples, sample{at: time.Now(), batches: r.batchesLanded(snap)})
		meta, err := r.metadataStats(ctx)
		if err != nil {
			return err
		}
		res.maxMetadata = max(res.maxMetadata, meta.newest)
		if commits < float64(next*r.cfg.Commits)/10 {
			continue
		}
		s, err := r.slice(ctx, next*10, snap, prev, prevAt, meta)
		if err != nil {
			return err
		}
		soak.WriteSlice(os.Stdout, s)
		res.slices = append(res.slices, s)
		prev, prevAt, next = snap, time.Now(), next+1
	}
	return nil
}

// drainAndCheck reads back every record of the stream (the producer has
// stopped), waits until the table holds each distinct valid event id found
// there and its row count has stopped moving, then checks rows = distinct
// event_ids = unique ids in the stream. The producer's sent log is only
// reported: a PutRecords that lands as the producer is stopped is in the
// stream but may be missing from the log.
func (r *run) drainAndCheck(ctx context.Context, sum chaos.ProducerSummary) (soak.Verdict, error) {
	sent, err := chaos.ReadSentLog(filepath.Join(r.cfg.Out, "sent.ndjson"))
	if err != nil {
		return soak.Verdict{}, err
	}
	stream, err := soak.StreamIDs(ctx, r.env.Kinesis, r.env.Stream, time.Now())
	if err != nil {
		return soak.Verdict{}, fmt.Errorf("read the stream back: %w", err)
	}
	var rows, distinct, last int64 = 0, 0, -1
	stable, began := 0, time.Now()
	for stable < 3 && time.Since(began) < 5*time.Minute {
		if err := retry.Sleep(ctx, 3*time.Second); err != nil {
			return soak.Verdict{}, err
		}
		if rows, distinct, err = r.counts(ctx); err != nil {
			return soak.Verdict{}, err
		}
		stable++
		if rows != last || distinct < stream.Unique {
			stable = 0
		}
		last = rows
	}
	v := soak.Exact(rows, distinct, stream, uniqueIDs(sent))
	v.Detail += fmt.Sprintf(" (producer report: %d sent, %d unique, %d unknown outcome, %d failed), drained in %s",
		sum.Sent, sum.UniqueEventIDs, sum.UnknownOutcomeEntries, sum.FailedAfterRetries, time.Since(began).Round(time.Second))
	return v, nil
}

func uniqueIDs(sent []chaos.Sent) int64 {
	ids := map[string]bool{}
	for _, s := range sent {
		if s.Kind != "invalid" {
			ids[s.EventID] = true
		}
	}
	return int64(len(ids))
}

func (r *run) stopWorkers() {
	for _, p := range r.workers {
		_ = p.Signal(syscall.SIGTERM)
	}
	for _, p := range r.workers {
		if !p.Wait(60 * time.Second) {
			p.Kill()
		}
	}
}

// sql runs one query through the query binary and returns its rows
// (header dropped) and how long the binary took.
func (r *run) sql(ctx context.Context, args ...string) ([][]string, time.Duration, error) {
	full := append([]string{"--catalog", r.env.Catalog, "--warehouse", r.env.Warehouse, "--table", r.env.Table, "--format", "csv"}, args...)
	cmd := exec.CommandContext(ctx, r.query, full...)
	cmd.Env = r.env.AWSEnv(r.env.Moto)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	begin := time.Now()
	out, err := cmd.Output()
	took := time.Since(begin)
	if err != nil {
		return nil, took, fmt.Errorf("query %q: %w\n%s", args, err, stderr.String())
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return nil, took, fmt.Errorf("query %q: output is not CSV: %w\n%s", args, err, out)
	}
	if len(recs) == 0 {
		return nil, took, fmt.Errorf("query %q: no header line in the output", args)
	}
	return recs[1:], took, nil
}

// oneRow runs a query returning one row of integers.
func (r *run) oneRow(ctx context.Context, args ...string) ([]int64, error) {
	recs, _, err := r.sql(ctx, args...)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("query %q: %d rows, want 1", args, len(recs))
	}
	var out []int64
	for _, c := range recs[0] {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: %q is not a whole number", args, c)
		}
		out = append(out, n)
	}
	return out, nil
}

func (r *run) counts(ctx context.Context) (rows, distinct int64, err error) {
	v, err := r.oneRow(ctx, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM "+r.env.Table)
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

// partitions counts the table's day(event_ts) partitions.
func (r *run) partitions(ctx context.Context) (int64, error) {
	v, err := r.oneRow(ctx, "SELECT COUNT(DISTINCT floor(epoch(event_ts) / 86400)) FROM "+r.env.Table)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// liveFiles is the data file count of the current snapshot (query --tables).
func (r *run) liveFiles(ctx context.Context) (int64, error) {
	recs, _, err := r.sql(ctx, "--tables")
	if err != nil {
		return 0, err
	}
	for _, rec := range recs {
		if len(rec) > 3 && rec[0] == r.env.Table {
			return strconv.ParseInt(rec[3], 10, 64)
		}
	}
	return 0, fmt.Errorf("query --tables does not list %s: %q", r.env.Table, recs)
}

// metadataStats are the size of the newest metadata.json of the warehouse
// and the number of metadata.json files there.
type metadataStats struct{ newest, files int64 }

// settled is how old a metadata.json must be to be measured: the newest
// file may still be being written (the size then reads 0 or short).
const settled = time.Second

func (r *run) metadataStats(ctx context.Context) (metadataStats, error) {
	if r.store != nil {
		return r.store.metadataStats(ctx)
	}
	var st metadataStats
	var newest time.Time
	cutoff := time.Now().Add(-settled)
	err := filepath.WalkDir(r.env.WarehouseDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".metadata.json") {
			return nil // files vanish under expiry; skip what cannot be read
		}
		st.files++
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) && fi.ModTime().After(newest) {
			newest, st.newest = fi.ModTime(), fi.Size()
		}
		return nil
	})
	return st, err
}

// rss is VmRSS of pid in bytes (0 when unreadable).
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:min(3, len(strings.Fields(string(b))))], " ")
}
