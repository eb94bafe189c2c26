//go:build linux

package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/retry"
)

// Event is one line of a trial's timeline.
type Event struct {
	At  time.Duration `json:"at"` // since the trial started
	Msg string        `json:"msg"`
}

// ProducerSummary is the part of the producer's --report json the harness uses.
type ProducerSummary struct {
	Sent                  int64 `json:"sent"`
	UniqueEventIDs        int64 `json:"unique_event_ids"`
	DuplicatesSent        int64 `json:"duplicates_sent"`
	InvalidSent           int64 `json:"invalid_sent"`
	FailedAfterRetries    int64 `json:"failed_after_retries"`
	UnknownOutcomeEntries int64 `json:"unknown_outcome_entries"`
	// With --aggregate: shard map listings after a misrouted put, the
	// Kinesis records that landed off their predicted shard, and the
	// events whose later copies were pinned to follow them.
	ShardMapRefreshes int64   `json:"shard_map_refreshes"`
	MisroutedRecords  int64   `json:"misrouted_records"`
	PinnedEvents      int64   `json:"pinned_events"`
	AchievedRate      float64 `json:"achieved_rate"`
	ElapsedSeconds    float64 `json:"elapsed_seconds"`
	Error             string  `json:"error"`
}

// Report is what a trial found.
type Report struct {
	Config      TrialConfig
	Dir         string
	Faults      []string // faults applied, in order, described
	FaultKinds  []string
	Skipped     []string // scheduled faults that found no eligible target
	Producer    ProducerSummary
	Drained     bool
	DrainTime   time.Duration // from the end of the producer and healing to positions at the shards' ends
	Result      *Result
	Crashes     int           // consumer exits the harness did not cause
	MaxShutdown time.Duration // longest SIGTERM-to-exit
	SlowExits   int           // SIGTERMs not followed by an exit within the shutdown timeout + 2 s
	Reshards    int
	Aged        []string // shards aged out of the stream (expire)
	Proxy       ProxyStats
	LogCounts   map[string]int // warnings and errors of the consumers, by message
	Events      []Event
	Err         error // the harness itself failed
	Elapsed     time.Duration
	LoadStart   string // /proc/loadavg when the trial started and ended
	LoadEnd     string
}

// Failed reports loss, duplicates, a failed check or a harness error.
func (r *Report) Failed() bool {
	return r.Err != nil || r.Result == nil || !r.Result.OK() || !r.Drained
}

// Trial runs one trial. Construct with NewTrial; Run does the work.
type Trial struct {
	Cfg TrialConfig
	Env *Env
	// Script, when set, runs instead of Cfg.Faults, from the producer's
	// start, concurrently with it. Scenario tests drive faults with it.
	Script func(ctx context.Context, t *Trial) error

	start    time.Time
	mu       sync.Mutex
	slots    []*slot
	events   []Event
	timeline *os.File
	stopping bool
	stopCh   chan struct{}
	faultWG  sync.WaitGroup
	report   *Report

	// Overlapping windows of the same fault end when the last one does.
	readOnly int                  // open read-only windows
	diskFull map[int]int          // open disk-full windows by pid
	diskLift map[int]func() error // lifts a pid's limit
	twins    int                  // twin consumers started (names their logs)
	aged     map[string]bool      // shards made to look aged out of the stream (FaultExpire)
}

type slot struct {
	idx          int
	gen          int
	id           string
	proxy        *Proxy
	proc         *Proc
	restartDelay time.Duration // after a wanted exit; < 0 waits for Restart
	newID        bool
	clockOffset  time.Duration // FaultClock: the skew its next starts get
	restart      chan struct{}
	done         chan struct{}
}

// NewTrial prepares a trial in env.
func NewTrial(cfg TrialConfig, env *Env) *Trial {
	return &Trial{Cfg: cfg, Env: env, stopCh: make(chan struct{}), report: &Report{Config: cfg, Dir: env.Dir, LogCounts: map[string]int{}}}
}

// Since is the time since the trial started.
func (t *Trial) Since() time.Duration { return time.Since(t.start) }

// Eventf records a timeline event.
func (t *Trial) Eventf(format string, args ...any) {
	ev := Event{At: t.Since().Round(time.Millisecond), Msg: fmt.Sprintf(format, args...)}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, ev)
	if t.timeline != nil {
		fmt.Fprintf(t.timeline, "%8.3fs  %s\n", ev.At.Seconds(), ev.Msg)
	}
}

// Run runs the trial and checks the result. The error is also in the
// report; the report is always returned.
func (t *Trial) Run(ctx context.Context) *Report {
	begin := time.Now()
	r := t.report
	r.LoadStart = loadAvg()
	r.Err = t.run(ctx)
	r.Elapsed = time.Since(begin)
	r.LoadEnd = loadAvg()
	t.mu.Lock()
	r.Events = append([]Event(nil), t.events...)
	t.mu.Unlock()
	for _, s := range t.slots {
		r.Proxy.add(s.proxy.Stats())
		_ = s.proxy.Close()
	}
	t.countLogs()
	if b, err := json.MarshalIndent(r, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(t.Env.Dir, "report.json"), b, 0o644)
	}
	if t.timeline != nil {
		_ = t.timeline.Close()
	}
	return r
}

// run creates the stream, starts the consumers, runs the producer with the
// faults, waits for the consumers to drain the stream and checks the
// table against what was sent. The error is the harness's; what the check
// found goes in the report.
func (t *Trial) run(ctx context.Context) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	if err := t.startConsumers(); err != nil {
		return err
	}
	defer t.stopAll()

	if err := t.produce(ctx); err != nil {
		return err
	}
	t.faultWG.Wait() // every windowed fault healed, every paused consumer continued
	t.waitAllRunning(ctx, 15*time.Second)
	t.Eventf("faults healed; draining")

	sent, err := ReadSentLog(filepath.Join(t.Env.Dir, "sent.ndjson"))
	if err != nil {
		return fmt.Errorf("sent log: %w", err)
	}
	drainStart := time.Now()
	t.report.Drained = t.drain(ctx, DrainTarget(sent, t.agedShards()))
	t.report.DrainTime = time.Since(drainStart)
	t.Eventf("drained=%v after %s", t.report.Drained, t.report.DrainTime.Round(time.Millisecond))
	t.stopAll()
	if err := t.publishDeadLetters(ctx); err != nil {
		return err
	}
	return t.check(ctx, sent)
}

// publishDeadLetters runs what the elected maintainer runs on its next
// round: `consumer maintain` with every step that changes the table's
// files turned off, so that it only publishes the staged dead letters of
// commits that landed (a consumer killed between its commit and publishing
// leaves them staged). Expiry keeps every snapshot, so the check still
// sees each commit's files.
//
// After a `clock` fault that ran a consumer ahead, the table's newest
// snapshot can be stamped up to 40 s in the future, and iceberg-go refuses
// maintain's own commit until real time has caught up with it less a
// minute: a refusal for that reason is retried for up to 90 s.
func (t *Trial) publishDeadLetters(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := t.maintainOnce(ctx)
		if err == nil || !isClockRefusal(err) || time.Now().After(deadline) {
			return err
		}
		t.Eventf("consumer maintain refused for a snapshot stamped ahead by a skewed clock; retrying in 5s")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Second):
		}
	}
}

// isClockRefusal reports iceberg-go's refusal of a commit stamped before
// the table's last snapshot or metadata log entry.
func isClockRefusal(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "invalid update timestamp") || strings.Contains(msg, "invalid snapshot timestamp")
}

func (t *Trial) maintainOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	args := []string{"maintain",
		"--catalog", t.Env.Catalog, "--warehouse", t.Env.Warehouse, "--table", t.Env.Table,
		"--keep-snapshots", "1000000", "--retention", "0", "--compact-target-size", "0", "--orphan-age", "0",
	}
	cmd := exec.CommandContext(ctx, t.Env.Bins.Consumer, args...)
	cmd.Env = t.Env.DirectEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if t.Env.RunAsUID >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(t.Env.RunAsUID), Gid: uint32(t.Env.RunAsUID)}
	}
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(t.Env.Dir, "maintain.log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("consumer maintain (publishing staged dead letters): %w\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "dead letters:") {
			t.Eventf("after the consumers stopped: %s", strings.TrimSpace(line))
		}
	}
	return nil
}

// begin opens the timeline, saves the config as trial.json, starts the
// trial's clock and creates the stream.
func (t *Trial) begin(ctx context.Context) error {
	var err error
	t.timeline, err = os.Create(filepath.Join(t.Env.Dir, "timeline.log"))
	if err != nil {
		return err
	}
	cfgJSON, _ := json.MarshalIndent(t.Cfg, "", "  ")
	_ = os.WriteFile(filepath.Join(t.Env.Dir, "trial.json"), cfgJSON, 0o644)
	if t.Cfg.ReadMode == ReadEFO && !t.Env.EFO() {
		return errors.New("read mode efo needs a Kinesis that serves SubscribeToShard: start one with StartKinesis and hand it to Env.UseKinesis")
	}
	t.start = time.Now()
	t.Eventf("%s", t.Cfg)
	return t.Env.CreateStream(ctx, t.Cfg.Shards)
}

// startConsumers gives each consumer slot its proxy to the emulator and
// starts its consumer and supervisor, now or after the slot's StartDelay.
// An error starting a consumer now ends the loop.
func (t *Trial) startConsumers() error {
	for i := range t.Cfg.Consumers {
		var routes []Route
		if t.Env.EFO() {
			routes = append(routes, Route{Service: "kinesis", Target: t.Env.KinesisURL})
		}
		p, err := NewProxy(t.Env.Moto, t.Cfg.Seed*31+uint64(i), routes...)
		if err != nil {
			return err
		}
		s := &slot{idx: i, id: fmt.Sprintf("c%d", i), proxy: p, restart: make(chan struct{}, 1), done: make(chan struct{})}
		t.slots = append(t.slots, s)
		if d := t.Cfg.StartDelay[i]; d > 0 {
			go t.startLater(s, d)
			continue
		}
		if err := t.startProc(s); err != nil {
			return err
		}
		go t.supervise(s)
	}
	return nil
}

// startLater starts slot s's consumer after d and then supervises it. It
// gives up, closing s.done, when the trial stops first or the start fails.
func (t *Trial) startLater(s *slot, d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.stopCh:
		close(s.done)
		return
	}
	if err := t.startProc(s); err != nil {
		t.Eventf("start c%d failed: %v", s.idx, err)
		close(s.done)
		return
	}
	t.supervise(s)
}

// produce runs the producer and, alongside it, the fault script (or
// Cfg.Faults), and returns when both have finished or ctx ends.
func (t *Trial) produce(ctx context.Context) error {
	// The producer talks to the emulator directly: the faults are the
	// consumers', and its sent log must be exact.
	prodCtx, cancelProd := context.WithCancel(ctx)
	defer cancelProd()
	prodDone := make(chan error, 1)
	go func() { prodDone <- t.runProducer(prodCtx) }()

	scriptDone := make(chan error, 1)
	go func() {
		if t.Script != nil {
			scriptDone <- t.Script(ctx, t)
			return
		}
		scriptDone <- t.runSchedule(ctx)
	}()
	var prodErr, scriptErr error
	for prodDone != nil || scriptDone != nil {
		select {
		case prodErr = <-prodDone:
			prodDone = nil
			t.Eventf("producer finished: %d records sent", t.report.Producer.Sent)
		case scriptErr = <-scriptDone:
			scriptDone = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if prodErr != nil {
		return fmt.Errorf("producer: %w", prodErr)
	}
	if scriptErr != nil {
		return fmt.Errorf("fault script: %w", scriptErr)
	}
	return nil
}

// check reads the table, the dead letters and the shards, checks them
// against sent into the report's Result and puts the outcome on the
// timeline.
func (t *Trial) check(ctx context.Context, sent []Sent) error {
	st, err := ReadTable(ctx, t.Env)
	if err != nil {
		return fmt.Errorf("read table: %w", err)
	}
	dls, err := ReadDeadLetters(ctx, t.Env)
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	shards, err := t.Env.Shards(ctx)
	if err != nil {
		return err
	}
	aged := t.agedShards()
	if t.report.Producer.UnknownOutcomeEntries > 0 {
		// Calls without an answer may have landed before their records
		// were sent again: find those copies in the stream itself.
		extra, err := ResentCopies(ctx, t.Env, shards, sent)
		if err != nil {
			return fmt.Errorf("read the stream for copies of unknown outcome: %w", err)
		}
		t.Eventf("producer had %d entries of unknown outcome: %d copies in the stream beyond the sent log", t.report.Producer.UnknownOutcomeEntries, len(extra))
		sent = append(sent, extra...)
	}
	t.report.Result = Check(sent, st, dls, shards, aged)
	if !t.report.Drained {
		t.report.Result.problem("not drained within %s: shards behind %v", t.Cfg.DrainTimeout, Behind(st.Positions, DrainTarget(sent, aged)))
	}
	t.Eventf("check: rows %d, missing %d, duplicated %d, dead-lettered %d/%d, order errors %d (%d pairs)",
		t.report.Result.Rows, t.report.Result.Missing, t.report.Result.Duplicated, t.report.Result.DeadLettered,
		t.report.Result.InvalidSent, t.report.Result.OrderErrors, t.report.Result.OrderPairs)
	for _, p := range t.report.Result.Problems {
		t.Eventf("problem: %s", p)
	}
	return nil
}

// drain waits until every shard's table position reached the last record
// the producer sent to it and no commit happened for a second.
func (t *Trial) drain(ctx context.Context, target map[string]string) bool {
	deadline := time.Now().Add(t.Cfg.DrainTimeout)
	var lastSnap int64 = -1
	stable := 0
	for time.Now().Before(deadline) {
		pos, snap, err := Positions(ctx, t.Env)
		if err == nil && len(Behind(pos, target)) == 0 {
			if snap == lastSnap {
				stable++
			} else {
				stable = 0
			}
			if stable >= 2 {
				return true
			}
			lastSnap = snap
		} else if err != nil {
			t.Eventf("drain: read positions: %v", err)
		}
		if retry.Sleep(ctx, 500*time.Millisecond) != nil {
			return false
		}
	}
	return false
}

func (t *Trial) runProducer(ctx context.Context) error {
	c := t.Cfg
	args := []string{
		"--stream", t.Env.Stream, "--rate", fmtFloat(c.Rate), "--duration", c.Duration.String(),
		"--duplicate-rate", fmtFloat(c.DuplicateRate), "--duplicate-delay", c.DuplicateDelay.String(),
		"--invalid-rate", fmtFloat(c.InvalidRate), "--seed", fmt.Sprint(c.Seed),
		// moto's PutRecords is not safe for concurrent calls: two calls can
		// get the same sequence number and one record vanishes.
		"--concurrency", "1",
		"--sent-log", filepath.Join(t.Env.Dir, "sent.ndjson"), "--report", "json",
	}
	if c.Aggregate {
		args = append(args, "--aggregate")
	}
	cmd := exec.CommandContext(ctx, t.Env.Bins.Producer, args...)
	cmd.Env = t.Env.DirectEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(filepath.Join(t.Env.Dir, "producer.log"))
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd.Stderr = logf
	t.Eventf("producer started: %s", strings.Join(args, " "))
	out, err := cmd.Output()
	_ = os.WriteFile(filepath.Join(t.Env.Dir, "producer.json"), out, 0o644)
	if jerr := json.Unmarshal(out, &t.report.Producer); jerr != nil && err == nil {
		err = fmt.Errorf("producer report: %w", jerr)
	}
	if err != nil {
		return fmt.Errorf("%w (see producer.log)", err)
	}
	if p := t.report.Producer; p.FailedAfterRetries > 0 || p.UnknownOutcomeEntries > 0 {
		t.Eventf("producer: %d records failed, %d unknown outcomes", p.FailedAfterRetries, p.UnknownOutcomeEntries)
	}
	if p := t.report.Producer; p.ShardMapRefreshes > 0 || p.MisroutedRecords > 0 {
		t.Eventf("producer: %d shard map refreshes, %d Kinesis records landed off their predicted shard, %d events pinned",
			p.ShardMapRefreshes, p.MisroutedRecords, p.PinnedEvents)
	}
	return nil
}

// consumerArgs are the flags of slot s's consumer.
func (t *Trial) consumerArgs(s *slot) []string {
	c := t.Cfg
	args := []string{
		"--stream", t.Env.Stream, "--app-name", t.Env.AppName,
		"--catalog", t.Env.Catalog, "--warehouse", t.Env.Warehouse, "--table", t.Env.Table,
		"--worker-id", s.id, "--failover-time", c.FailoverTime.String(),
		"--flush-interval", c.FlushInterval.String(), "--shutdown-timeout", c.ShutdownTimeout.String(),
		"--metrics-addr", "127.0.0.1:0", "--idle-poll", "200ms", "--shard-sync-interval", "1s",
		"--log-format", "json", "--log-level", "info",
	}
	if c.CommitMode != "" {
		args = append(args, "--commit-mode", c.CommitMode)
	}
	if c.ReadMode != "" {
		args = append(args, "--read-mode", c.ReadMode)
	}
	if c.FlushRows > 0 {
		args = append(args, "--flush-rows", strconv.Itoa(c.FlushRows))
	}
	return append(args, c.SlotArgs[s.idx]...)
}

func (t *Trial) startProc(s *slot) error {
	t.mu.Lock()
	s.gen++
	offset := s.clockOffset
	t.mu.Unlock()
	spec := ProcSpec{
		Bin: t.Env.Bins.Consumer, Args: t.consumerArgs(s), Env: t.Env.AWSEnv(s.proxy.URL()),
		LogPath:  filepath.Join(t.Env.Dir, fmt.Sprintf("consumer-%d-%02d.log", s.idx, s.gen)),
		RunAsUID: t.Env.RunAsUID, Slot: s.idx, WorkerID: s.id,
	}
	skew := ""
	if offset != 0 {
		spec.Env = append(spec.Env, ClockOffsetEnv+"="+offset.String())
		skew = ", clock " + fmtOffset(offset)
	}
	p, err := StartProc(spec)
	if err != nil {
		return err
	}
	t.mu.Lock()
	s.proc = p
	t.mu.Unlock()
	t.Eventf("start c%d as %s (pid %d, log %s%s)", s.idx, s.id, p.Pid(), filepath.Base(spec.LogPath), skew)
	return nil
}

// ClockOffsetEnv is the consumer's fault-injection variable (a Go
// duration) that stamps its snapshots as a clock that far ahead would.
const ClockOffsetEnv = "PAYSTREAM_FAULT_CLOCK_OFFSET"

// supervise restarts slot s's consumer: after a wanted exit per the
// fault's restart delay, after an unwanted one (a crash) after a second.
func (t *Trial) supervise(s *slot) {
	defer close(s.done)
	for {
		t.mu.Lock()
		p := s.proc
		t.mu.Unlock()
		select {
		case <-p.Done():
		case <-t.stopCh:
			return
		}
		t.mu.Lock()
		if t.stopping {
			t.mu.Unlock()
			return
		}
		wanted := p.Signaled()
		delay, newID := s.restartDelay, s.newID
		t.mu.Unlock()
		if !wanted {
			t.mu.Lock()
			t.report.Crashes++
			t.mu.Unlock()
			t.Eventf("CRASH c%d (%s) exited by itself: %v; restarting in 1s", s.idx, s.id, p.ExitErr())
			delay, newID = time.Second, false
		}
		if delay < 0 {
			select {
			case <-s.restart:
			case <-t.stopCh:
				return
			}
		} else {
			select {
			case <-time.After(delay):
			case <-t.stopCh:
				return
			}
		}
		t.mu.Lock()
		if t.stopping {
			t.mu.Unlock()
			return
		}
		if newID {
			s.id = fmt.Sprintf("c%d-g%d", s.idx, s.gen+1)
		}
		s.restartDelay, s.newID = 0, false
		t.mu.Unlock()
		if err := t.startProc(s); err != nil {
			t.Eventf("restart c%d failed: %v", s.idx, err)
			return
		}
	}
}

// Proc returns slot i's current process.
func (t *Trial) Proc(i int) *Proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slots[i].proc
}

// WorkerID returns slot i's current worker id.
func (t *Trial) WorkerID(i int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.slots[i].id
}

// Kill sends SIGKILL to slot i's consumer and waits for the exit. The
// supervisor restarts it after restartAfter (under a new worker id when
// newID), or waits for Restart when restartAfter < 0.
func (t *Trial) Kill(i int, restartAfter time.Duration, newID bool) {
	t.mu.Lock()
	s := t.slots[i]
	s.restartDelay, s.newID = restartAfter, newID
	p := s.proc
	t.mu.Unlock()
	t.Eventf("kill -9 c%d (%s, pid %d)", i, p.WorkerID, p.Pid())
	p.Kill()
}

// Term sends SIGTERM to slot i's consumer and waits for the exit (up to
// limit; then SIGKILL). It returns the time from the signal to the exit
// and whether the process exited by itself within limit. Restart as in Kill.
func (t *Trial) Term(i int, restartAfter time.Duration, newID bool, limit time.Duration) (time.Duration, bool) {
	t.mu.Lock()
	s := t.slots[i]
	s.restartDelay, s.newID = restartAfter, newID
	p := s.proc
	t.mu.Unlock()
	t.Eventf("SIGTERM c%d (%s, pid %d)", i, p.WorkerID, p.Pid())
	sent := time.Now()
	_ = p.Signal(syscall.SIGTERM)
	ok := p.Wait(limit)
	took := time.Since(sent)
	if !ok {
		t.Eventf("c%d did not exit within %s of SIGTERM; SIGKILL", i, limit)
		p.Kill()
	} else {
		took = p.ExitAt().Sub(sent)
		t.Eventf("c%d exited %s after SIGTERM with status %d", i, took.Round(time.Millisecond), p.ExitCode())
	}
	t.mu.Lock()
	t.report.MaxShutdown = max(t.report.MaxShutdown, took)
	if !ok || took > t.Cfg.ShutdownTimeout+2*time.Second {
		t.report.SlowExits++
	}
	t.mu.Unlock()
	return took, ok
}

// Restart starts slot i again after Kill or Term with restartAfter < 0.
func (t *Trial) Restart(i int) {
	select {
	case t.slots[i].restart <- struct{}{}:
	default:
	}
}

// WaitRunning waits until slot i has a live process, up to limit or until
// ctx ends; nil if there is none by then.
func (t *Trial) WaitRunning(ctx context.Context, i int, limit time.Duration) *Proc {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		p := t.Proc(i)
		if p != nil && !p.Exited() && !p.Signaled() {
			return p
		}
		if retry.Sleep(ctx, 20*time.Millisecond) != nil {
			return nil
		}
	}
	return nil
}

func (t *Trial) waitAllRunning(ctx context.Context, limit time.Duration) {
	for i := range t.slots {
		t.mu.Lock()
		held := t.slots[i].restartDelay < 0
		t.mu.Unlock()
		if held {
			continue // the script keeps it down on purpose
		}
		if t.WaitRunning(ctx, i, limit) == nil {
			t.Eventf("c%d is not running after healing", i)
		}
	}
}

// stopAll stops the supervisors and every consumer (SIGTERM, then SIGKILL
// after twice the shutdown timeout). Safe to call twice.
func (t *Trial) stopAll() {
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		return
	}
	t.stopping = true
	close(t.stopCh)
	slots := append([]*slot(nil), t.slots...)
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		<-s.done
		t.mu.Lock()
		p := s.proc
		t.mu.Unlock()
		if p == nil || p.Exited() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Signal(syscall.SIGCONT)
			_ = p.Signal(syscall.SIGTERM)
			if !p.Wait(2*t.Cfg.ShutdownTimeout + 5*time.Second) {
				t.Eventf("c%d did not stop after SIGTERM; SIGKILL", s.idx)
				p.Kill()
			}
		}()
	}
	wg.Wait()
	t.Eventf("all consumers stopped")
}

// runSchedule applies Cfg.Faults at their times.
func (t *Trial) runSchedule(ctx context.Context) error {
	for _, f := range t.Cfg.Faults {
		if d := f.At - t.Since(); d > 0 {
			if err := retry.Sleep(ctx, d); err != nil {
				return err
			}
		}
		t.apply(ctx, f)
	}
	return nil
}

// eligible returns the first slot from want on whose consumer is running
// and not paused or being stopped, or -1.
func (t *Trial) eligible(want int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.slots)
	for k := range n {
		s := t.slots[(want+k)%n]
		if s.proc != nil && !s.proc.Exited() && !s.proc.Signaled() && !s.proc.Paused() {
			return s.idx
		}
	}
	return -1
}

func (t *Trial) applied(f Fault, desc string) {
	t.mu.Lock()
	t.report.Faults = append(t.report.Faults, desc)
	t.report.FaultKinds = append(t.report.FaultKinds, string(f.Kind))
	t.mu.Unlock()
}

func (t *Trial) skipped(f Fault, why string) {
	t.Eventf("skip %s: %s", f, why)
	t.mu.Lock()
	t.report.Skipped = append(t.report.Skipped, f.String()+": "+why)
	t.mu.Unlock()
}

// apply applies fault f now. A fault that finds no eligible target is
// recorded as skipped; windowed faults heal in a goroutine counted in
// faultWG.
func (t *Trial) apply(ctx context.Context, f Fault) {
	switch f.Kind {
	case FaultKill, FaultTerm, FaultPause:
		t.applySignal(ctx, f)
	case FaultKillCommitter, FaultPauseCommitter:
		t.applyCommitter(ctx, f)
	case FaultNet, FaultLease, FaultGlue, FaultS3, FaultStage:
		t.applyNet(ctx, f)
	case FaultTwin:
		t.applyTwin(ctx, f)
	case FaultClock:
		t.applyClock(ctx, f)
	case FaultExpire:
		t.applyExpire(ctx, f)
	case FaultReadOnly:
		t.applyReadOnly(ctx, f)
	case FaultDiskFull:
		t.applyDiskFull(ctx, f)
	case FaultSplit, FaultMerge:
		t.applyReshard(ctx, f)
	}
}

// applySignal kills, terms or pauses the first running consumer from
// f.Slot on, in a goroutine: a kill or term waits for the exit, a pause
// lasts f.For (or until ctx ends).
func (t *Trial) applySignal(ctx context.Context, f Fault) {
	i := t.eligible(f.Slot)
	if i < 0 {
		t.skipped(f, "no running consumer")
		return
	}
	f.Slot = i
	t.applied(f, f.String())
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		switch f.Kind {
		case FaultKill:
			t.Kill(i, f.For, f.NewID)
		case FaultTerm:
			t.Term(i, f.For, f.NewID, 3*t.Cfg.ShutdownTimeout)
		case FaultPause:
			t.pause(ctx, i, f.For)
		}
	}()
}

// applyCommitter kills or pauses the consumer that holds the committer
// role now; skipped when no running consumer holds it.
func (t *Trial) applyCommitter(ctx context.Context, f Fault) {
	owner, err := t.Env.RoleOwner(ctx, "committer")
	if err != nil {
		t.skipped(f, err.Error())
		return
	}
	i := t.slotOf(owner)
	if i < 0 || t.eligible(i) != i {
		t.skipped(f, fmt.Sprintf("the committer role is held by %q, not a running consumer", owner))
		return
	}
	f.Slot = i
	t.applied(f, fmt.Sprintf("%s (c%d)", f, i))
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		if f.Kind == FaultKillCommitter {
			t.Kill(i, f.For, f.NewID)
			return
		}
		t.pause(ctx, i, f.For)
	}()
}

// slotOf returns the slot running as worker id, or -1.
func (t *Trial) slotOf(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.slots {
		if id != "" && s.id == id {
			return s.idx
		}
	}
	return -1
}

// pause stops slot i's consumer with SIGSTOP and continues it after d,
// or earlier when ctx ends.
func (t *Trial) pause(ctx context.Context, i int, d time.Duration) {
	p := t.Proc(i)
	t.Eventf("SIGSTOP c%d (%s) for %s", i, p.WorkerID, d.Round(time.Millisecond))
	_ = p.Signal(syscall.SIGSTOP)
	_ = retry.Sleep(ctx, d) // heal early when the trial ends
	_ = p.Signal(syscall.SIGCONT)
	t.Eventf("SIGCONT c%d (%s)", i, p.WorkerID)
}

// applyNet sets f.Net on the proxy of slot f.Slot (modulo the slots) and
// clears it after f.For, or earlier when ctx ends.
func (t *Trial) applyNet(ctx context.Context, f Fault) {
	t.mu.Lock()
	s := t.slots[f.Slot%len(t.slots)]
	t.mu.Unlock()
	t.applied(f, f.String())
	t.Eventf("%s fault on c%d: %s for %s", f.Kind, s.idx, f.Net, f.For.Round(time.Millisecond))
	s.proxy.Set(f.Net)
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		_ = retry.Sleep(ctx, f.For) // heal early when the trial ends
		s.proxy.Set(NetFault{})
		t.Eventf("net fault on c%d healed", s.idx)
	}()
}

// applyExpire makes the closed shard f.Pick picks (modulo the closed
// shards not aged out yet) look aged out of the stream's retention to
// every consumer, for the rest of the trial: each proxy answers
// GetShardIterator on it with ResourceNotFoundException and leaves it out
// of ListShards. Its records not committed by then are expected lost.
func (t *Trial) applyExpire(ctx context.Context, f Fault) {
	all, err := t.Env.Shards(ctx)
	if err != nil {
		t.skipped(f, err.Error())
		return
	}
	id := t.ageOne(all, f.Pick)
	if id == "" {
		t.skipped(f, "no closed shard to age out")
		return
	}
	t.applied(f, "expire "+id)
	t.Eventf("shard %s aged out of the stream for every consumer", id)
}

// ageOne ages out the closed shard of all that pick picks (modulo the
// closed shards not aged out yet) on every proxy and returns its id, or ""
// when there is none.
func (t *Trial) ageOne(all []Shard, pick int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var closed []string
	for _, s := range all {
		if s.Closed && !t.aged[s.ID] {
			closed = append(closed, s.ID)
		}
	}
	if len(closed) == 0 {
		return ""
	}
	id := closed[pick%len(closed)]
	if t.aged == nil {
		t.aged = map[string]bool{}
	}
	t.aged[id] = true
	for _, s := range t.slots {
		s.proxy.Expire(id)
	}
	t.report.Aged = append(t.report.Aged, id)
	return id
}

// agedShards is a copy of the shards aged out by FaultExpire.
func (t *Trial) agedShards() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]bool, len(t.aged))
	for k := range t.aged {
		out[k] = true
	}
	return out
}

// applyTwin starts, beside the first running consumer from f.Slot on, a
// second consumer with the same worker id (through the same proxy), and
// stops it with SIGTERM after f.For (or when ctx ends). The twin's exit
// is not a crash; a twin that exits by itself is on the timeline.
func (t *Trial) applyTwin(ctx context.Context, f Fault) {
	i := t.eligible(f.Slot)
	if i < 0 {
		t.skipped(f, "no running consumer")
		return
	}
	f.Slot = i
	t.mu.Lock()
	s := t.slots[i]
	t.twins++
	spec := ProcSpec{
		Bin: t.Env.Bins.Consumer, Args: t.consumerArgs(s), Env: t.Env.AWSEnv(s.proxy.URL()),
		LogPath:  filepath.Join(t.Env.Dir, fmt.Sprintf("consumer-%d-twin%d.log", i, t.twins)),
		RunAsUID: t.Env.RunAsUID, Slot: i, WorkerID: s.id,
	}
	t.mu.Unlock()
	p, err := StartProc(spec)
	if err != nil {
		t.skipped(f, err.Error())
		return
	}
	t.applied(f, f.String())
	t.Eventf("twin of c%d started as %s (pid %d, log %s) for %s", i, spec.WorkerID, p.Pid(), filepath.Base(spec.LogPath), f.For.Round(time.Millisecond))
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		select {
		case <-p.Done():
			t.Eventf("twin of c%d exited by itself: %v", i, p.ExitErr())
			return
		case <-time.After(f.For):
		case <-ctx.Done():
		}
		sent := time.Now()
		_ = p.Signal(syscall.SIGTERM)
		if !p.Wait(3 * t.Cfg.ShutdownTimeout) {
			t.Eventf("twin of c%d did not exit within %s of SIGTERM; SIGKILL", i, 3*t.Cfg.ShutdownTimeout)
			p.Kill()
			return
		}
		t.Eventf("twin of c%d exited %s after SIGTERM with status %d", i, p.ExitAt().Sub(sent).Round(time.Millisecond), p.ExitCode())
	}()
}

// applyClock restarts the first running consumer from f.Slot on (SIGTERM,
// same worker id) with its clock f.Offset off, and after f.For (or when
// ctx ends) restarts it again with a true clock. A restart in between (a
// crash, another fault) keeps the skew. The skewed consumer's WARN at
// start is the positive signal that the skew took: its absence is on the
// timeline.
func (t *Trial) applyClock(ctx context.Context, f Fault) {
	i := t.eligible(f.Slot)
	if i < 0 {
		t.skipped(f, "no running consumer")
		return
	}
	f.Slot = i
	t.applied(f, f.String())
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		t.setClock(i, f.Offset)
		t.Term(i, 0, false, 3*t.Cfg.ShutdownTimeout)
		if p := t.WaitRunning(ctx, i, 15*time.Second); p != nil {
			if waitLogLine(ctx, p, ClockOffsetEnv, 10*time.Second) {
				t.Eventf("c%d (pid %d) runs with its clock %s", i, p.Pid(), fmtOffset(f.Offset))
			} else {
				t.Eventf("c%d (pid %d) did not report its clock fault within 10s", i, p.Pid())
			}
		}
		_ = retry.Sleep(ctx, f.For) // heal early when the trial ends
		t.setClock(i, 0)
		t.Term(i, 0, false, 3*t.Cfg.ShutdownTimeout)
		t.Eventf("clock of c%d healed", i)
	}()
}

// setClock sets the clock offset slot i's next starts get.
func (t *Trial) setClock(i int, offset time.Duration) {
	t.mu.Lock()
	t.slots[i].clockOffset = offset
	t.mu.Unlock()
}

// waitLogLine waits up to limit (or until p exits or ctx ends) for a line
// containing s in p's log.
func waitLogLine(ctx context.Context, p *Proc, s string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		if b, err := os.ReadFile(p.LogPath); err == nil && strings.Contains(string(b), s) {
			return true
		}
		if p.Exited() || time.Now().After(deadline) || retry.Sleep(ctx, 100*time.Millisecond) != nil {
			return false
		}
	}
}

// applyReadOnly makes the warehouse read-only for f.For (or until ctx
// ends). Overlapping windows keep it read-only until the last one ends.
// It is skipped when the consumers would write as root anyway.
func (t *Trial) applyReadOnly(ctx context.Context, f Fault) {
	if t.Cfg.NoReadOnly || (t.Env.RunAsUID < 0 && os.Geteuid() == 0) {
		t.skipped(f, "cannot make the warehouse read-only for the consumers")
		return
	}
	t.applied(f, f.String())
	t.faultWG.Add(1)
	t.mu.Lock()
	t.readOnly++
	t.mu.Unlock()
	n := t.setWarehouseWritable(false)
	t.Eventf("warehouse read-only (%d folders) for %s", n, f.For.Round(time.Millisecond))
	go func() {
		defer t.faultWG.Done()
		_ = retry.Sleep(ctx, f.For) // heal early when the trial ends
		t.endReadOnly()
	}()
}

// endReadOnly closes one read-only window and makes the warehouse
// writable again when it was the last one open.
func (t *Trial) endReadOnly() {
	t.mu.Lock()
	t.readOnly--
	last := t.readOnly == 0
	t.mu.Unlock()
	if !last {
		t.Eventf("a read-only window ended; another is still open")
		return
	}
	n := t.setWarehouseWritable(true)
	t.Eventf("warehouse writable again (%d folders)", n)
}

// applyDiskFull stops the first running consumer from f.Slot on from
// growing any file for f.For (or until ctx ends). Overlapping windows on
// the same process lift the limit when the last one ends.
func (t *Trial) applyDiskFull(ctx context.Context, f Fault) {
	i := t.eligible(f.Slot)
	if i < 0 {
		t.skipped(f, "no running consumer")
		return
	}
	f.Slot = i
	p := t.Proc(i)
	if err := t.openDiskFull(p.Pid()); err != nil {
		t.skipped(f, err.Error())
		return
	}
	t.applied(f, f.String())
	t.Eventf("disk full for c%d (%s, pid %d) for %s", i, p.WorkerID, p.Pid(), f.For.Round(time.Millisecond))
	t.faultWG.Add(1)
	go func() {
		defer t.faultWG.Done()
		_ = retry.Sleep(ctx, f.For) // heal early when the trial ends
		t.endDiskFull(i, p)
	}()
}

// openDiskFull opens a disk-full window on pid, limiting its file size
// when no window is open on it yet. The error is the limit's: then no
// window is opened.
func (t *Trial) openDiskFull(pid int) error {
	t.mu.Lock()
	if t.diskFull == nil {
		t.diskFull, t.diskLift = map[int]int{}, map[int]func() error{}
	}
	open := t.diskFull[pid]
	t.mu.Unlock()
	if open == 0 {
		lift, err := limitFileSize(pid, t.Env.RunAsUID)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.diskLift[pid] = lift
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.diskFull[pid]++
	t.mu.Unlock()
	return nil
}

// endDiskFull closes one disk-full window on slot i's process p and lifts
// the limit when it was the last one open (unless p has exited).
func (t *Trial) endDiskFull(i int, p *Proc) {
	t.mu.Lock()
	t.diskFull[p.Pid()]--
	last := t.diskFull[p.Pid()] == 0
	lift := t.diskLift[p.Pid()]
	t.mu.Unlock()
	if !last {
		return
	}
	if !p.Exited() {
		if err := lift(); err != nil && !p.Exited() {
			t.Eventf("disk full for c%d not lifted: %v", i, err)
			return
		}
	}
	t.Eventf("disk space back for c%d", i)
}

// applyReshard splits or merges open shards per f and counts the reshard
// when the emulator accepted it.
func (t *Trial) applyReshard(ctx context.Context, f Fault) {
	open, err := t.Env.OpenShards(ctx)
	if err != nil {
		t.skipped(f, err.Error())
		return
	}
	var ok bool
	if f.Kind == FaultSplit {
		ok = t.splitShard(ctx, f, open)
	} else {
		ok = t.mergeShards(ctx, f, open)
	}
	if !ok {
		return
	}
	t.mu.Lock()
	t.report.Reshards++
	t.mu.Unlock()
}

// splitShard splits the open shard f.Pick picks (modulo their count), unless
// 10 are open already. It reports whether the split was done; if not, f
// is recorded as skipped.
func (t *Trial) splitShard(ctx context.Context, f Fault, open []Shard) bool {
	if len(open) >= 10 {
		t.skipped(f, "10 open shards already")
		return false
	}
	s := open[f.Pick%len(open)]
	if err := t.Env.Split(ctx, s); err != nil {
		t.skipped(f, err.Error())
		return false
	}
	t.applied(f, "split "+s.ID)
	t.Eventf("split %s", s.ID)
	return true
}

// mergeShards merges the pair of adjacent open shards f.Pick picks (modulo
// their count). It reports whether the merge was done; if not, f is
// recorded as skipped.
func (t *Trial) mergeShards(ctx context.Context, f Fault, open []Shard) bool {
	pairs := adjacentPairs(open)
	if len(pairs) == 0 {
		t.skipped(f, "no adjacent open shards")
		return false
	}
	p := pairs[f.Pick%len(pairs)]
	if err := t.Env.Merge(ctx, p[0], p[1]); err != nil {
		t.skipped(f, err.Error())
		return false
	}
	t.applied(f, "merge "+p[0].ID+"+"+p[1].ID)
	t.Eventf("merge %s and %s", p[0].ID, p[1].ID)
	return true
}

// adjacentPairs lists the neighbours in open (sorted by hash key) whose
// hash key ranges touch: the pairs a merge may join.
func adjacentPairs(open []Shard) [][2]Shard {
	var pairs [][2]Shard
	for k := 0; k+1 < len(open); k++ {
		next := new(big.Int).Add(open[k].End, big.NewInt(1))
		if next.Cmp(open[k+1].Start) == 0 {
			pairs = append(pairs, [2]Shard{open[k], open[k+1]})
		}
	}
	return pairs
}

// setWarehouseWritable chmods every folder of the warehouse (0555 or 0755).
// The consumers run as another user than the harness (or the harness is
// not root), so a read-only folder refuses their writes.
func (t *Trial) setWarehouseWritable(w bool) int {
	mode := os.FileMode(0o555)
	if w {
		mode = 0o755
	}
	n := 0
	_ = filepath.WalkDir(t.Env.WarehouseDir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if os.Chmod(path, mode) == nil {
				n++
			}
		}
		return nil
	})
	return n
}

// countLogs counts the consumers' warnings and errors by message.
func (t *Trial) countLogs() {
	paths, _ := filepath.Glob(filepath.Join(t.Env.Dir, "consumer-*.log"))
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var line struct {
				Level string `json:"level"`
				Msg   string `json:"msg"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				if s := strings.TrimSpace(sc.Text()); s != "" {
					t.report.LogCounts["(not JSON) "+trunc(sdkLogTime.ReplaceAllString(s, ""), 80)]++
				}
				continue
			}
			if line.Level == "WARN" || line.Level == "ERROR" || line.Msg == "shard removed; uncommitted rows dropped" {
				t.report.LogCounts[line.Level+" "+line.Msg]++
			}
		}
		_ = f.Close()
	}
}

// loadAvg is the 1, 5 and 15 minute load average ("" off Linux).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// sdkLogTime is the timestamp the AWS SDK's own logger puts in its lines.
var sdkLogTime = regexp.MustCompile(`^SDK \d{4}/\d\d/\d\d \d\d:\d\d:\d\d `)

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TopLogs lists the most frequent consumer warnings.
func (r *Report) TopLogs(n int) []string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range r.LogCounts {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || (all[i].v == all[j].v && all[i].k < all[j].k) })
	var out []string
	for i, x := range all {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%d× %s", x.v, x.k))
	}
	return out
}
