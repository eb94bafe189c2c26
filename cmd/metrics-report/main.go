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

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	fs := flag.NewFlagSet("metrics-report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	interval := fs.Duration("interval", 0, "scrape twice this far apart and report rates over the interval (URLs only); 0 reports totals since start")
	format := fs.String("format", "text", "text or json")
	timeout := fs.Duration("timeout", 5*time.Second, "limit for each scrape")
	beforeFile := fs.String("before", "", "a scrape saved earlier (e.g. just before the load started): report what happened since, with events/s from\nthat file's modification time to the last commit")
	fs.Usage = func() { flagenv.Usage(fs, stderr, usageHeader) }
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return 2
	}
	sources := fs.Args()
	switch {
	case len(sources) == 0:
		fmt.Fprintln(stderr, "metrics-report: name at least one SOURCE: a /metrics URL, a file or -")
		return 2
	case *format != "text" && *format != "json":
		fmt.Fprintf(stderr, "metrics-report: --format %q: use text or json\n", *format)
		return 2
	case *interval < 0:
		fmt.Fprintf(stderr, "metrics-report: --interval %s: must not be negative\n", *interval)
		return 2
	case *interval > 0 && *beforeFile != "":
		fmt.Fprintln(stderr, "metrics-report: use --interval or --before, not both")
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	var before promreport.Snapshot
	var window time.Duration
	if *interval > 0 {
		for _, s := range sources {
			if !isURL(s) {
				fmt.Fprintf(stderr, "metrics-report: --interval needs URLs to scrape twice; %q is not one\n", s)
				return 2
			}
		}
		var err error
		start := time.Now()
		if before, err = load(ctx, client, sources, stdin); err != nil {
			fmt.Fprintf(stderr, "metrics-report: %v\n", err)
			return 1
		}
		select {
		case <-time.After(*interval):
		case <-ctx.Done():
			return 130
		}
		window = time.Since(start)
	}
	after, err := load(ctx, client, sources, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return 1
	}
	if *beforeFile != "" {
		st, err := os.Stat(*beforeFile)
		if err == nil {
			before, err = parseFile(*beforeFile)
		}
		if err != nil {
			fmt.Fprintf(stderr, "metrics-report: --before: %v\n", err)
			return 1
		}
		window = sinceBefore(st.ModTime(), after, sources)
	}
	rep := promreport.Build(before, after, window)
	if *format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "metrics-report: %v\n", err)
		return 1
	}
	return 0
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
