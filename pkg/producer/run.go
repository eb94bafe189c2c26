package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		closers = nil
		return errors.Join(errs...)
	}
	defer closeAll() //nolint:errcheck // the normal path checks closeAll's error

	var snd sender
	workers := cfg.Concurrency
	shards := 0
	reportTo := stdout
	if cfg.Output != "" {
		w := stdout
		if cfg.Output == "-" {
			if cfg.Report == ReportText {
				reportTo = stderr
			}
		} else {
			f, err := os.Create(cfg.Output)
			if err != nil {
				return Summary{}, fmt.Errorf("--output: %w", err)
			}
			closers = append(closers, f.Close)
			w = f
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		closers = append(closers, bw.Flush)
		snd = &fileSender{w: bw, st: st}
		workers = 1 // keep the file in generation order
	} else {
		if kc == nil {
			return Summary{}, errors.New("no Kinesis client: pass one, or set --output")
		}
		if shards, err = ensureStream(ctx, &cfg, kc, log); err != nil {
			return Summary{}, err
		}
		snd = &kinesisSender{kc: kc, stream: cfg.Stream, maxRetries: cfg.MaxRetries, st: st, log: log}
	}
	if cfg.SentLog != "" {
		f, err := os.Create(cfg.SentLog)
		if err != nil {
			return Summary{}, fmt.Errorf("--sent-log: %w", err)
		}
		closers = append(closers, f.Close)
		st.log = bufio.NewWriterSize(f, 256<<10)
		closers = append(closers, func() error {
			if st.logErr != nil {
				return fmt.Errorf("write --sent-log: %w", st.logErr)
			}
			return st.log.Flush()
		})
	}

	start := time.Now()
	var stopProgress func()
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		stopProgress = showProgress(stderr, st, start)
	}
	runErr := pipeline(ctx, &cfg, snd, workers, start)
	if stopProgress != nil {
		stopProgress()
	}
	end := time.Now()
	if err := closeAll(); err != nil && runErr == nil {
		runErr = err
	}

	sum := st.summary(&cfg, start, end)
	sum.Shards = shards
	sum.Interrupted = ctx.Err() != nil
	if runErr != nil {
		sum.Error = runErr.Error()
	}
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
	if runErr == nil && werr != nil {
		runErr = fmt.Errorf("write report: %w", werr)
	}
	return sum, runErr
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
	limit := cfg.limit()
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	due := func(n int64) time.Time { // when the n-th record (1-based) may be generated
		return start.Add(time.Duration(math.Ceil(float64(n) / cfg.Rate * float64(time.Second))))
	}
	// accrued is how many records are due at now: the largest n with
	// due(n) <= now. due is the single source of truth, so a wake-up at
	// due(n) always finds record n due (no spinning on rounding).
	accrued := func(now time.Time) int64 {
		n := int64(math.Floor(now.Sub(start).Seconds() * cfg.Rate))
		for n > 0 && due(n).After(now) {
			n--
		}
		for !due(n + 1).After(now) {
			n++
		}
		return n
	}
	var (
		emitted  int64
		toppedUp bool
		cur      = &batch{}
		curStart time.Time
		buf      = make([]*record, 0, 2)
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	flush := func() bool {
		if len(cur.recs) == 0 {
			return true
		}
		select {
		case out <- cur:
			cur = &batch{recs: make([]*record, 0, cfg.Batch)}
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer func() {
		if len(cur.recs) > 0 {
			select {
			case out <- cur:
			case <-drain.Done():
			}
		}
	}()
	for {
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		timeUp := !deadline.IsZero() && !now.Before(deadline)
		// Generate what is due (at most what the open batch can take). At
		// the deadline a paced run tops up the open batch once with records
		// due by then; a backlog beyond that is not sent (the summary then
		// says the rate was not held).
		if emitted < limit && (!timeUp || (cfg.Rate > 0 && !toppedUp)) {
			toppedUp = timeUp
			avail := min(limit-emitted, int64(cfg.Batch-len(cur.recs)))
			if cfg.Rate > 0 {
				avail = min(avail, accrued(now)-emitted)
			}
			for i := int64(0); i < avail; {
				buf = src.next(now, limit-emitted, buf[:0])
				if len(buf) == 2 && (len(cur.recs)+2 > cfg.Batch || cur.bytes+2*(len(buf[0].data)+len(buf[0].key)) > MaxBatchBytes) {
					if !flush() { // keep an event and its same-call duplicate together
						return
					}
				}
				for _, r := range buf {
					if !cur.fits(r, cfg.Batch) && !flush() {
						return
					}
					if len(cur.recs) == 0 {
						curStart = now
					}
					cur.add(r)
				}
				emitted += int64(len(buf))
				i += int64(len(buf))
				if len(cur.recs) >= cfg.Batch {
					break
				}
			}
		}
		done := timeUp || emitted >= limit
		if len(cur.recs) > 0 && (done || len(cur.recs) >= cfg.Batch || !now.Before(curStart.Add(cfg.Linger))) {
			if !flush() {
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
		// Sleep until the next record is due, or, with a batch open, until
		// the batch could be full (or hold the last record) or its linger
		// runs out.
		wake := due(emitted + 1)
		if len(cur.recs) > 0 {
			wake = curStart.Add(cfg.Linger)
			if full := due(min(emitted+int64(cfg.Batch-len(cur.recs)), limit)); full.Before(wake) {
				wake = full
			}
		}
		if !deadline.IsZero() && deadline.Before(wake) {
			wake = deadline
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
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
