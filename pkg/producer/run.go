package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"
)

// Run generates records and sends them to cfg.Stream through kc (or writes
// them to cfg.Output, in which case kc may be nil) until cfg.Count records
// are sent, cfg.Duration has passed, or ctx ends (Ctrl-C). It then prints
// the report (cfg.Report) on stdout — on stderr for text when --output is
// "-" — and returns the Summary.
//
// Before sending it checks within cfg.ConnectTimeout that the endpoint
// answers and the stream exists (ErrUnreachable, ErrStreamNotFound),
// creating it with cfg.CreateStream. A live progress line goes to stderr
// when stderr is a terminal.
//
// The end of ctx is not an error: generation stops, records already handed
// to PutRecords get cfg.ShutdownGrace to be acknowledged, and Run returns
// the summary with Interrupted set. A non-retryable PutRecords error (the
// stream was deleted, access denied) stops the run and is returned along
// with the summary of what was sent until then.
func Run(ctx context.Context, cfg Config, kc Kinesis, stdout, stderr io.Writer) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	log := cfg.logger(stderr)
	if cfg.Endpoint == "" {
		if c, ok := kc.(*kinesis.Client); ok {
			cfg.Endpoint = Endpoint(c)
		} else {
			cfg.Endpoint = "the configured Kinesis endpoint"
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return Summary{}, fmt.Errorf("register metrics: %w", err)
	}
	st := &stats{onSent: cfg.OnSent, m: m}

	var files closers
	defer files.close() //nolint:errcheck // the normal path checks close's error
	dest, err := openDestination(ctx, &cfg, kc, st, log, stdout, stderr, &files)
	if err != nil {
		return Summary{}, err
	}
	if err := openSentLog(&cfg, st, &files); err != nil {
		return Summary{}, err
	}

	start := time.Now()
	var stopProgress func()
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		stopProgress = showProgress(stderr, st, start)
	}
	runErr := pipeline(ctx, &cfg, dest.snd, dest.workers, start)
	if stopProgress != nil {
		stopProgress()
	}
	end := time.Now()
	if err := files.close(); err != nil && runErr == nil {
		runErr = err
	}

	sum := st.summary(&cfg, start, end)
	sum.Shards = dest.shards
	sum.Interrupted = ctx.Err() != nil
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	if werr := report(&cfg, sum, log, dest.reportTo, stderr); runErr == nil && werr != nil {
		runErr = fmt.Errorf("write report: %w", werr)
	}
	return sum, runErr
}

// report logs what the summary warns of and writes it, as text or JSON.
func report(cfg *Config, sum Summary, log *slog.Logger, reportTo, stderr io.Writer) error {
	var werr error
	if sum.SequenceCollisions > 0 {
		log.Warn("the endpoint overwrote records: it gave the same shard and sequence number twice; against moto use --concurrency 1",
			"collisions", sum.SequenceCollisions)
	}
	if cfg.Report == ReportJSON {
		werr = sum.WriteJSON(reportTo)
		if sum.RateHeld != nil && !*sum.RateHeld {
			fmt.Fprintf(stderr, "could not hold --rate %g: achieved %.1f records/s (%s)\n", cfg.Rate, sum.AchievedRate, sum.rateHint())
		}
	} else {
		werr = sum.WriteText(reportTo)
	}
	return werr
}

// closers closes what a run opened, last opened first.
type closers []func() error

func (c *closers) add(f func() error) { *c = append(*c, f) }

// close runs every closer once and joins their errors.
func (c *closers) close() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}

// destination is where a run's records go: a file (--output) or Kinesis.
type destination struct {
	snd      sender
	workers  int // sending goroutines
	shards   int // the stream's open shards (0 for a file)
	reportTo io.Writer
}

// openDestination opens --output (a file, or "-" for stdout) or checks the
// stream (creating it with --create-stream). Files it opens are closed by
// files.
func openDestination(ctx context.Context, cfg *Config, kc Kinesis, st *stats, log *slog.Logger, stdout, stderr io.Writer, files *closers) (destination, error) {
	d := destination{workers: cfg.Concurrency, reportTo: stdout}
	if cfg.Output == "" {
		if kc == nil {
			return d, errors.New("no Kinesis client: pass one, or set --output")
		}
		shards, err := ensureStream(ctx, cfg, kc, log)
		if err != nil {
			return d, err
		}
		d.shards = shards
		ks := &kinesisSender{kc: kc, stream: cfg.Stream, maxRetries: cfg.MaxRetries, st: st, log: log}
		if cfg.Aggregate {
			rt, err := newRouter(ctx, cfg, kc, st, log)
			if err != nil {
				return d, err
			}
			ks.rt = rt
		}
		d.snd = ks
		return d, nil
	}
	w := stdout
	if cfg.Output == "-" {
		if cfg.Report == ReportText {
			d.reportTo = stderr
		}
	} else {
		f, err := os.Create(cfg.Output)
		if err != nil {
			return d, fmt.Errorf("--output: %w", err)
		}
		files.add(f.Close)
		w = f
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	files.add(bw.Flush)
	d.snd = &fileSender{w: bw, st: st}
	d.workers = 1 // keep the file in generation order
	return d, nil
}

// openSentLog opens --sent-log, if set: one line per record Kinesis
// accepted.
func openSentLog(cfg *Config, st *stats, files *closers) error {
	if cfg.SentLog == "" {
		return nil
	}
	f, err := os.Create(cfg.SentLog)
	if err != nil {
		return fmt.Errorf("--sent-log: %w", err)
	}
	files.add(f.Close)
	st.log = bufio.NewWriterSize(f, 256<<10)
	files.add(func() error {
		if st.logErr != nil {
			return fmt.Errorf("write --sent-log: %w", st.logErr)
		}
		return st.log.Flush()
	})
	return nil
}

// pipeline runs one generating goroutine feeding `workers` senders through
// a channel holding at most `workers` batches (back-pressure: the
// generator waits when senders fall behind). It returns the first fatal
// sender error.
//
// Contexts: the generator stops when ctx ends or a sender fails. Senders
// drain what was generated using sendCtx, which ends cfg.ShutdownGrace
// after ctx does, or at once when a sender fails.
func pipeline(ctx context.Context, cfg *Config, snd sender, workers int, start time.Time) error {
	g, gctx := errgroup.WithContext(ctx)
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	finished := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-gctx.Done():
		case <-finished:
			return
		}
		if ctx.Err() == nil { // a sender failed
			cancelSend()
			return
		}
		t := time.NewTimer(cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelSend()
		case <-finished:
		}
	}()

	batches := make(chan *batch, workers)
	g.Go(func() error {
		defer close(batches)
		generate(gctx, sendCtx, cfg, newSource(cfg, start), start, batches)
		return nil
	})
	for range workers {
		g.Go(func() error {
			for b := range batches {
				if err := snd.send(sendCtx, b); err != nil {
					return err // the generator stops; sendCtx ends at once
				}
			}
			return nil
		})
	}
	err := g.Wait()
	close(finished)
	<-watched
	return err
}

// generate fills batches and hands them to out until the record limit or
// --duration is reached, or ctx ends. With --rate it paces against the
// absolute schedule start + n/rate (the n-th record may be generated from
// then on), so timer lateness never accumulates into drift; a batch goes
// out when it is full, when its first record has waited --linger, or at
// the end. Without --rate, batches are filled as fast as senders take them.
// When ctx ends the open batch is still handed over unless drain (the
// senders' context) has ended too; a batch that cannot be handed over is
// dropped uncounted.
func generate(ctx, drain context.Context, cfg *Config, src *source, start time.Time, out chan<- *batch) {
	g := &generator{ctx: ctx, cfg: cfg, src: src, start: start, limit: cfg.limit(), out: out,
		cur: &batch{}, buf: make([]*record, 0, 2)}
	if cfg.Duration > 0 {
		g.deadline = start.Add(cfg.Duration)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer g.handOver(drain)
	for {
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		timeUp := !g.deadline.IsZero() && !now.Before(g.deadline)
		// Generate what is due (at most what the open batch can take). At
		// the deadline a paced run tops up the open batch once with records
		// due by then; a backlog beyond that is not sent (the summary then
		// says the rate was not held).
		if g.emitted < g.limit && (!timeUp || (cfg.Rate > 0 && !g.toppedUp)) {
			g.toppedUp = timeUp
			if !g.fill(now) {
				return
			}
		}
		done := timeUp || g.emitted >= g.limit
		if len(g.cur.recs) > 0 && (done || len(g.cur.recs) >= cfg.Batch || !now.Before(g.curStart.Add(cfg.Linger))) {
			if !g.flush() {
				return
			}
			continue
		}
		if done {
			return
		}
		if cfg.Rate == 0 {
			continue
		}
		timer.Reset(time.Until(g.wake()))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// generator is generate's state: the records emitted so far and the batch
// being filled. Only generate's goroutine uses it.
type generator struct {
	ctx      context.Context
	cfg      *Config
	src      *source
	start    time.Time
	deadline time.Time // zero: no --duration
	limit    int64
	out      chan<- *batch

	emitted  int64
	toppedUp bool
	cur      *batch
	curStart time.Time // when cur got its first record
	buf      []*record
}

// due is when the n-th record (1-based) may be generated.
func (g *generator) due(n int64) time.Time {
	return g.start.Add(time.Duration(math.Ceil(float64(n) / g.cfg.Rate * float64(time.Second))))
}

// accrued is how many records are due at now: the largest n with
// due(n) <= now. due is the single source of truth, so a wake-up at due(n)
// always finds record n due (no spinning on rounding).
func (g *generator) accrued(now time.Time) int64 {
	n := int64(math.Floor(now.Sub(g.start).Seconds() * g.cfg.Rate))
	for n > 0 && g.due(n).After(now) {
		n--
	}
	for !g.due(n + 1).After(now) {
		n++
	}
	return n
}

// fill generates the records due at now into the open batch, at most what
// it can take, sending full batches on. False when ctx ended.
func (g *generator) fill(now time.Time) bool {
	avail := min(g.limit-g.emitted, int64(g.cfg.Batch-len(g.cur.recs)))
	if g.cfg.Rate > 0 {
		avail = min(avail, g.accrued(now)-g.emitted)
	}
	for i := int64(0); i < avail; {
		g.buf = g.src.next(now, g.limit-g.emitted, g.buf[:0])
		if len(g.buf) == 2 && (len(g.cur.recs)+2 > g.cfg.Batch || g.cur.bytes+2*(len(g.buf[0].data)+len(g.buf[0].key)) > MaxBatchBytes) {
			if !g.flush() { // keep an event and its same-call duplicate together
				return false
			}
		}
		for _, r := range g.buf {
			if !g.cur.fits(r, g.cfg.Batch) && !g.flush() {
				return false
			}
			if len(g.cur.recs) == 0 {
				g.curStart = now
			}
			g.cur.add(r)
		}
		g.emitted += int64(len(g.buf))
		i += int64(len(g.buf))
		if len(g.cur.recs) >= g.cfg.Batch {
			break
		}
	}
	return true
}

// flush sends the open batch on, if it holds anything. False when ctx
// ended first.
func (g *generator) flush() bool {
	if len(g.cur.recs) == 0 {
		return true
	}
	select {
	case g.out <- g.cur:
		g.cur = &batch{recs: make([]*record, 0, g.cfg.Batch)}
		return true
	case <-g.ctx.Done():
		return false
	}
}

// wake is when a paced run next has something to do: the next record is
// due, or, with a batch open, the batch could be full (or hold the last
// record) or its linger runs out; never after the deadline.
func (g *generator) wake() time.Time {
	wake := g.due(g.emitted + 1)
	if len(g.cur.recs) > 0 {
		wake = g.curStart.Add(g.cfg.Linger)
		if full := g.due(min(g.emitted+int64(g.cfg.Batch-len(g.cur.recs)), g.limit)); full.Before(wake) {
			wake = full
		}
	}
	if !g.deadline.IsZero() && g.deadline.Before(wake) {
		wake = g.deadline
	}
	return wake
}

// handOver sends a batch still open when generate stops, unless drain ends
// first.
func (g *generator) handOver(drain context.Context) {
	if len(g.cur.recs) > 0 {
		select {
		case g.out <- g.cur:
		case <-drain.Done():
		}
	}
}

// showProgress redraws one status line on stderr every second until the
// returned stop is called, which erases it.
func showProgress(w io.Writer, st *stats, start time.Time) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(w, "\r\033[K"+st.progress(start))
			}
		}
	}()
	return func() { close(done); <-exited }
}
