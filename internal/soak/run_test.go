//go:build linux

package soak_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/chaos"
	"github.com/paystream/paystream/internal/promreport"
	"github.com/paystream/paystream/internal/quantile"
	"github.com/paystream/paystream/internal/soak"
)

const (
	commitsMetric  = "paystream_sink_commits_total"
	durationMetric = "paystream_sink_commit_duration_seconds"
	// batchesPerCommitMetric is the committer's batches per table commit
	// (commit mode single).
	batchesPerCommitMetric = "paystream_committer_batches_per_commit"
	// analystQuery is the Athena-style query timed at every slice.
	analystQuery = "SELECT subscription_tier, COUNT(*), SUM(amount_usd) FROM netflix_revenue_raw.subscription_payments WHERE status='succeeded' GROUP BY 1"
	recentWindow = 2 * time.Minute // the live-file bound allows the files of this many minutes
)

// workerArgs are the consumer flags of the soak besides the stream, catalog
// and identity: commits every 250 ms, a maintainer every 10 s that
// compacts files once they are 30 s old. Time is compressed about 30-fold
// against the defaults (1 s flushes, 5 min maintenance and file age), so
// files per partition and snapshots move as over days.
var workerArgs = []string{
	"--flush-interval", "250ms", "--idle-poll", "250ms", "--maintenance-interval", "10s",
	"--compact-min-age", "30s",
	"--shard-sync-interval", "1s", "--log-format", "json", "--log-level", "info",
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

type sample struct {
	at      time.Time
	batches float64 // batches landed so far (batchesLanded)
}

type result struct {
	slices      []soak.Slice
	maxMetadata int64
	exact       soak.Verdict
}

// run is one soak: the emulator, the stream, two workers and a producer.
type run struct {
	t        *testing.T
	cfg      config
	env      *chaos.Env
	query    string // query binary
	workers  []*chaos.Proc
	metrics  []string // their /metrics URLs
	producer *exec.Cmd
	prodOut  bytes.Buffer
	store    objectStore // the S3 warehouse with SOAK_CATALOG=glue
	samples  []sample
	start    time.Time
}

func newRun(ctx context.Context, t *testing.T, cfg config) (*run, error) {
	bins, query, err := build(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	m, err := chaos.StartMoto(cfg.Out)
	if errors.Is(err, chaos.ErrNoMoto) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(m.Stop)
	env, err := chaos.NewEnv(ctx, cfg.Out, m.URL, bins, chaos.CatalogSQLite)
	if err != nil {
		return nil, err
	}
	env.AppName, env.RunAsUID = "paystream-soak", -1
	r := &run{t: t, cfg: cfg, env: env, query: query}
	if cfg.Glue {
		if err := r.useGlue(ctx); err != nil {
			return nil, err
		}
	}
	t.Logf("soak output in %s", cfg.Out)
	return r, env.CreateStream(ctx, 4)
}

// build compiles the consumer, producer and query binaries, or takes them
// from SOAK_BIN.
func build(ctx context.Context, t *testing.T) (chaos.Binaries, string, error) {
	dir := os.Getenv("SOAK_BIN")
	if dir == "" {
		mod, err := chaos.ModuleDir(ctx)
		if err != nil {
			return chaos.Binaries{}, "", err
		}
		dir = t.TempDir()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/consumer", "./cmd/producer", "./cmd/query")
		cmd.Dir = mod
		if out, err := cmd.CombinedOutput(); err != nil {
			return chaos.Binaries{}, "", fmt.Errorf("go build: %w\n%s", err, out)
		}
	}
	bins := chaos.Binaries{Consumer: filepath.Join(dir, "consumer"), Producer: filepath.Join(dir, "producer")}
	return bins, filepath.Join(dir, "query"), nil
}

func (r *run) startWorkers() error {
	for i := 1; i <= 2; i++ {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		id := "soak-" + strconv.Itoa(i)
		args := append([]string{
			"--stream", r.env.Stream, "--app-name", r.env.AppName, "--catalog", r.env.Catalog,
			"--warehouse", r.env.Warehouse, "--table", r.env.Table, "--worker-id", id, "--metrics-addr", addr,
		}, workerArgs...)
		if r.cfg.CommitMode != "" {
			args = append(args, "--commit-mode", r.cfg.CommitMode)
		}
		p, err := chaos.StartProc(chaos.ProcSpec{
			Bin: r.env.Bins.Consumer, Args: args, Env: r.env.AWSEnv(r.env.Moto),
			LogPath: filepath.Join(r.cfg.Out, id+".log"), RunAsUID: -1, Slot: i, WorkerID: id,
		})
		if err != nil {
			return err
		}
		r.t.Cleanup(p.Kill)
		r.workers = append(r.workers, p)
		r.metrics = append(r.metrics, "http://"+addr+"/metrics")
	}
	return nil
}

func freeAddr() (string, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// startProducer sends at the configured rate until stopProducer, with 1 %
// duplicates so that dedup works throughout.
func (r *run) startProducer() error {
	args := []string{
		"--stream", r.env.Stream, "--rate", strconv.FormatFloat(r.cfg.Rate, 'f', -1, 64), "--duration", "0",
		"--duplicate-rate", "0.01", "--invalid-rate", "0", "--concurrency", "1",
		"--sent-log", filepath.Join(r.cfg.Out, "sent.ndjson"), "--report", "json",
	}
	logf, err := os.Create(filepath.Join(r.cfg.Out, "producer.log"))
	if err != nil {
		return err
	}
	// Stopped by stopProducer's SIGINT, not by a context.
	r.producer = exec.CommandContext(context.Background(), r.env.Bins.Producer, args...)
	r.producer.Env = r.env.AWSEnv(r.env.Moto)
	r.producer.Stdout, r.producer.Stderr = &r.prodOut, logf
	r.producer.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.producer.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start producer: %w", err)
	}
	r.t.Cleanup(func() { _ = logf.Close() })
	return nil
}

func (r *run) stopProducer() (chaos.ProducerSummary, error) {
	var sum chaos.ProducerSummary
	_ = r.producer.Process.Signal(os.Interrupt)
	// 130 is the producer's exit after an interrupt, its report written.
	if err := r.producer.Wait(); err != nil && r.producer.ProcessState.ExitCode() != 130 {
		return sum, fmt.Errorf("producer: %w (see producer.log)", err)
	}
	if err := json.Unmarshal(r.prodOut.Bytes(), &sum); err != nil {
		return sum, fmt.Errorf("producer report: %w", err)
	}
	return sum, nil
}

// scrape reads both workers' metrics, merged.
func (r *run) scrape(ctx context.Context) (promreport.Snapshot, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	var snaps []promreport.Snapshot
	for i, u := range r.metrics {
		if r.workers[i].Exited() {
			return promreport.Snapshot{}, fmt.Errorf("worker %s exited (see its log): %w", r.workers[i], r.workers[i].ExitErr())
		}
		s, err := promreport.Fetch(ctx, client, u)
		if err != nil {
			return promreport.Snapshot{}, err
		}
		snaps = append(snaps, s)
	}
	return promreport.Merge(snaps...), nil
}

// batchesLanded counts the batches that landed in the table, each of which
// adds a file per partition it touches: one per commit with per-worker
// commits, the batches of each committer commit (its own and the staged
// ones) in commit mode single.
func (r *run) batchesLanded(snap promreport.Snapshot) float64 {
	if r.cfg.CommitMode == "single" {
		return snap.HistogramSum(batchesPerCommitMetric)
	}
	return snap.Sum(commitsMetric)
}

// recentBatches is how many batches landed in the last recentWindow.
func (r *run) recentBatches() int64 {
	if len(r.samples) == 0 {
		return 0
	}
	now := r.samples[len(r.samples)-1]
	base := 0.0
	for _, s := range r.samples {
		if now.at.Sub(s.at) >= recentWindow {
			base = s.batches
		}
	}
	return int64(now.batches - base)
}

// slice measures one tenth of the run; prev is the scrape at the previous
// slice (zero for the first).
func (r *run) slice(ctx context.Context, pct int, snap, prev promreport.Snapshot, prevAt time.Time, meta metadataStats) (soak.Slice, error) {
	now := time.Now()
	h := quantile.SubBuckets(snap.Histogram(durationMetric), prev.Histogram(durationMetric))
	s := soak.Slice{Pct: pct, Commits: snap.Sum(commitsMetric), Elapsed: now.Sub(r.start), MetadataBytes: meta.newest, MetadataFiles: meta.files}
	s.P50, _ = quantile.Buckets(0.5, h)
	s.P99, _ = quantile.Buckets(0.99, h)
	s.CommitsPerSec = (s.Commits - prev.Sum(commitsMetric)) / now.Sub(prevAt).Seconds()
	var err error
	if s.LiveFiles, err = r.liveFiles(ctx); err != nil {
		return s, err
	}
	if _, s.QueryTime, err = r.sql(ctx, analystQuery); err != nil {
		return s, err
	}
	if s.FileBound, err = r.fileBound(ctx); err != nil {
		return s, err
	}
	for _, p := range r.workers {
		s.RSS = append(s.RSS, rss(p.Pid()))
	}
	return s, nil
}

// fileBound is soak.FileBound now. Commits go on while the files are
// counted, so the recent commits are counted up to a scrape taken after.
func (r *run) fileBound(ctx context.Context) (int64, error) {
	parts, err := r.partitions(ctx)
	if err != nil {
		return 0, err
	}
	after, err := r.scrape(ctx)
	if err != nil {
		return 0, err
	}
	r.samples = append(r.samples, sample{at: time.Now(), batches: r.batchesLanded(after)})
	return soak.FileBound(parts, r.recentBatches()), nil
}
