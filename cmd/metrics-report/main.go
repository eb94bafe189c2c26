// Command metrics-report prints a short summary of the consumer's
// Prometheus metrics — events/s, freshness p50/p99, rejects, duplicates —
// so `make demo` can end with the numbers without Prometheus or Grafana.
//
//	metrics-report http://127.0.0.1:9090/metrics          totals since start
//	metrics-report --interval 10s http://127.0.0.1:9090/metrics   rates over 10 s
//	curl -s localhost:9090/metrics | metrics-report -     from stdin
//	metrics-report --before start.prom end.prom           over a run: from the
//	                                                      earlier scrape to the last commit
//
// Several sources (one per consumer task) are added up. The logic lives in
// internal/promreport.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/internal/promreport"
)

const usageHeader = `metrics-report summarises the paystream consumer's metrics.

Usage: metrics-report [flags] SOURCE...

SOURCE is a /metrics URL (http://host:port/metrics), a file holding a
scrape, or - for standard input. Several sources are added up.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, flagenv.OSLookup))
}

// options are metrics-report's command line.
type options struct {
	interval   time.Duration
	format     string
	timeout    time.Duration
	beforeFile string
	sources    []string
}

// run is the command: it parses args, reads the sources (and the earlier
// scrape) and writes the report to stdout. It returns the exit status: 0
// done (or help shown), 1 a source or the output failed, 2 bad usage, 130
// interrupted while waiting out --interval.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	o, code, ok := parseArgs(args, stderr, lookup)
	if !ok {
		return code
	}
	client := &http.Client{Timeout: o.timeout}
	var before promreport.Snapshot
	var window time.Duration
	if o.interval > 0 {
		if before, window, code = scrapeFirst(ctx, client, o, stdin, stderr); code != 0 {
			return code
		}
	}
	after, err := load(ctx, client, o.sources, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return 1
	}
	if o.beforeFile != "" {
		if before, window, err = readBefore(o.beforeFile, after, o.sources); err != nil {
			fmt.Fprintf(stderr, "metrics-report: --before: %v\n", err)
			return 1
		}
	}
	if err := writeReport(stdout, o.format, promreport.Build(before, after, window)); err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return 1
	}
	return 0
}

// parseArgs parses the flags (and their environment variables, read with
// lookup) and checks them. When ok is false run should exit with code:
// 0 after -help, 2 after a usage error, which parseArgs has explained
// on stderr.
func parseArgs(args []string, stderr io.Writer, lookup func(string) (string, bool)) (o options, code int, ok bool) {
	fs := flag.NewFlagSet("metrics-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.interval, "interval", 0, "scrape twice this far apart and report rates over the interval (URLs only); 0 reports totals since start")
	fs.StringVar(&o.format, "format", "text", "text or json")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "limit for each scrape")
	fs.StringVar(&o.beforeFile, "before", "", "a scrape saved earlier (e.g. just before the load started): report what happened since, with events/s from\nthat file's modification time to the last commit")
	fs.Usage = func() { flagenv.Usage(fs, stderr, usageHeader) }
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, 0, false
		}
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return o, 2, false
	}
	o.sources = fs.Args()
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return o, 2, false
	}
	return o, 0, true
}

// validate rejects a command line without sources or with flags that are
// bad or do not go together, naming the flag.
func (o options) validate() error {
	switch {
	case len(o.sources) == 0:
		return errors.New("name at least one SOURCE: a /metrics URL, a file or -")
	case o.format != "text" && o.format != "json":
		return fmt.Errorf("--format %q: use text or json", o.format)
	case o.interval < 0:
		return fmt.Errorf("--interval %s: must not be negative", o.interval)
	case o.interval > 0 && o.beforeFile != "":
		return errors.New("use --interval or --before, not both")
	}
	return nil
}

// scrapeFirst is the first half of an --interval report: it scrapes the
// sources, which must all be URLs, and waits out the interval. It returns
// that scrape and the time since it started; a non-zero code is run's
// exit status (2 a source is not a URL, 1 the scrape failed, both
// explained on stderr; 130 ctx ended during the wait).
func scrapeFirst(ctx context.Context, client *http.Client, o options, stdin io.Reader, stderr io.Writer) (promreport.Snapshot, time.Duration, int) {
	for _, s := range o.sources {
		if !isURL(s) {
			fmt.Fprintf(stderr, "metrics-report: --interval needs URLs to scrape twice; %q is not one\n", s)
			return promreport.Snapshot{}, 0, 2
		}
	}
	start := time.Now()
	before, err := load(ctx, client, o.sources, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return promreport.Snapshot{}, 0, 1
	}
	select {
	case <-time.After(o.interval):
	case <-ctx.Done():
		return promreport.Snapshot{}, 0, 130
	}
	return before, time.Since(start), 0
}

// readBefore reads the --before scrape at path and the window from its
// modification time to the last commit in after (see sinceBefore).
func readBefore(path string, after promreport.Snapshot, sources []string) (promreport.Snapshot, time.Duration, error) {
	st, err := os.Stat(path)
	if err != nil {
		return promreport.Snapshot{}, 0, err
	}
	before, err := parseFile(path)
	if err != nil {
		return promreport.Snapshot{}, 0, err
	}
	return before, sinceBefore(st.ModTime(), after, sources), nil
}

// writeReport writes rep to w as text or json.
func writeReport(w io.Writer, format string, rep promreport.Report) error {
	if format == "json" {
		return rep.WriteJSON(w)
	}
	return rep.WriteText(w)
}

// sinceBefore is the window of a --before report: from the earlier
// scrape to the last commit, or to the later scrape when no commit came
// after the earlier one.
func sinceBefore(at time.Time, after promreport.Snapshot, sources []string) time.Duration {
	if last, ok := after.Max(promreport.MetricLastCommit); ok {
		if end := time.Unix(0, int64(last*1e9)); end.After(at) {
			return end.Sub(at)
		}
	}
	end := time.Now()
	if len(sources) == 1 && !isURL(sources[0]) && sources[0] != "-" {
		if st, err := os.Stat(sources[0]); err == nil {
			end = st.ModTime()
		}
	}
	return max(end.Sub(at), time.Millisecond)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func load(ctx context.Context, client *http.Client, sources []string, stdin io.Reader) (promreport.Snapshot, error) {
	snaps := make([]promreport.Snapshot, 0, len(sources))
	for _, src := range sources {
		var s promreport.Snapshot
		var err error
		switch {
		case isURL(src):
			s, err = promreport.Fetch(ctx, client, src)
		case src == "-":
			s, err = promreport.Parse(stdin)
		default:
			s, err = parseFile(src)
		}
		if err != nil {
			return promreport.Snapshot{}, err
		}
		snaps = append(snaps, s)
	}
	return promreport.Merge(snaps...), nil
}

func parseFile(path string) (promreport.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return promreport.Snapshot{}, err
	}
	defer func() { _ = f.Close() }()
	s, err := promreport.Parse(f)
	if err != nil {
		return promreport.Snapshot{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
