// Command producer sends realistic payment events to a Kinesis stream (or
// writes them as NDJSON) for load tests and demos. See package
// github.com/paystream/paystream/pkg/producer for what it sends and how it
// counts; `producer --help` lists every flag and its environment variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/pkg/producer"
)

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const usageHeader = `producer sends realistic payment events to a Kinesis stream with PutRecords
(partition key = customer_id) and prints a summary of what was sent.

Usage: producer [flags]

AWS region, credentials and endpoint come from the standard AWS SDK chain
(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_KINESIS, ...).

Examples:
  producer --stream payments --create-stream --shards 2 --rate 500 --duration 60s
  producer --count 1000 --duplicate-rate 0.1 --invalid-rate 0.02 --report json
  producer --aggregate --batch 5000 --rate 20000 --duration 60s   # KPL aggregates, grouped by shard
  producer --output events.ndjson --count 100000    # as fast as it can: --output is paced only with --rate`

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, flagenv.OSLookup))
}

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	cfg := producer.DefaultConfig()
	fs := newFlagSet(&cfg, stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "producer: %v\n(see producer --help)\n", err)
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "producer", version)
		return exitOK
	}
	cfg.UnpaceOutput(fs)
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "producer: unexpected argument %q; every setting is a --flag (see producer --help)\n", fs.Arg(0))
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "producer: invalid configuration:\n%v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))

	if cfg.MetricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		cfg.Registerer = reg
		shutdown, err := serveMetrics(ctx, cfg.MetricsAddr, reg, cfg.Logger)
		if err != nil {
			fmt.Fprintf(stderr, "producer: --metrics-addr %s: %v\n", cfg.MetricsAddr, err)
			return exitFailed
		}
		defer shutdown()
	}

	var kc producer.Kinesis
	if cfg.Output == "" {
		c, err := producer.NewKinesisClient(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "producer: %v\n", err)
			return exitFailed
		}
		kc = c
	}
	_, err := producer.Run(ctx, cfg, kc, stdout, stderr)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return exitFailed
	case ctx.Err() != nil:
		return exitInterrupted
	}
	return exitOK
}

// newFlagSet binds cfg to a flag set whose --help lists every flag with its
// PAYSTREAM_* variable.
func newFlagSet(cfg *producer.Config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	fs.Usage = func() { flagenv.Usage(fs, stderr, usageHeader) }
	return fs
}

// serveMetrics serves reg at /metrics on addr until shutdown is called.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (shutdown func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
