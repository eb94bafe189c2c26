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
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"golang.org/x/term"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/internal/retry"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
)

// serviceConfig is every setting of the consumer service.
type serviceConfig struct {
	Stream              string
	AppName             string
	LeaseTable          string
	CreateLeaseTable    bool
	WorkerID            string
	Catalog             iceberg.CatalogConfig
	DeadLetterPrefix    string
	InitialPosition     string
	FailoverTime        time.Duration
	FlushInterval       time.Duration
	FlushRows           int
	FlushBytes          int
	ShutdownTimeout     time.Duration
	MetricsAddr         string
	LogLevel            string
	LogFormat           string
	DedupWindow         time.Duration
	DedupMaxIDs         int
	ShardSyncInterval   time.Duration
	MaxLeasesToSteal    int
	IdlePoll            time.Duration
	MaintenanceInterval time.Duration
	KeepSnapshots       int
	SnapshotAge         time.Duration
	OrphanAge           time.Duration
	OrphanInterval      time.Duration
	Compact             compactFlags
	CommitMode          string
	ReadMode            string
	Version             bool
	// FaultClockOffset is PAYSTREAM_FAULT_CLOCK_OFFSET: fault injection
	// only, no flag and not in --help. See faultClockOffsetEnv.
	FaultClockOffset time.Duration
}

// faultClockOffsetEnv names the test-only variable (a Go duration such as
// 90s or -90s) that makes the consumer commit as if its wall clock were
// that far ahead (behind when negative): every snapshot it adds is
// stamped with the offset (iceberg.WithClockOffset). The chaos harness
// (internal/chaos, fault clock) sets it; no deployment should.
const faultClockOffsetEnv = "PAYSTREAM_FAULT_CLOCK_OFFSET"

// defaultServiceConfig is every default of the service: the worker's own
// (ingest.DefaultWorkerConfig) plus the service's.
func defaultServiceConfig() serviceConfig {
	w := ingest.DefaultWorkerConfig()
	return serviceConfig{
		AppName:             "paystream",
		CreateLeaseTable:    true,
		Catalog:             iceberg.DefaultCatalogConfig(),
		DeadLetterPrefix:    iceberg.DefaultDeadLetterPrefix,
		InitialPosition:     "trim-horizon",
		FailoverTime:        w.Coordinator.FailoverTime,
		FlushInterval:       w.Pipeline.FlushInterval,
		FlushRows:           w.Pipeline.FlushRows,
		FlushBytes:          w.Pipeline.FlushBytes,
		ShutdownTimeout:     w.ShutdownTimeout,
		MetricsAddr:         ":9090",
		LogLevel:            "info",
		LogFormat:           "auto",
		DedupWindow:         dedup.DefaultWindow,
		DedupMaxIDs:         dedup.DefaultMaxIDs,
		ShardSyncInterval:   w.ShardSyncInterval,
		MaxLeasesToSteal:    w.Coordinator.MaxLeasesToSteal,
		IdlePoll:            w.Pipeline.IdlePoll,
		MaintenanceInterval: w.MaintenanceInterval,
		KeepSnapshots:       w.Maintenance.KeepSnapshots,
		SnapshotAge:         w.Maintenance.SnapshotAge,
		OrphanAge:           w.Maintenance.OrphanAge,
		OrphanInterval:      w.OrphanInterval,
		Compact:             defaultCompactFlags(),
		CommitMode:          w.CommitMode,
		ReadMode:            ingest.ReadPolling,
	}
}

// workerConfig maps the flags onto the worker's configuration.
func (c *serviceConfig) workerConfig() ingest.WorkerConfig {
	w := ingest.DefaultWorkerConfig()
	initial, _ := ingest.ParseInitialPosition(c.InitialPosition)
	w.Pipeline.Stream = c.Stream
	w.Pipeline.FlushInterval, w.Pipeline.FlushRows, w.Pipeline.FlushBytes = c.FlushInterval, c.FlushRows, c.FlushBytes
	w.Pipeline.Initial, w.Pipeline.IdlePoll, w.Pipeline.DedupWindow = initial, c.IdlePoll, c.DedupWindow
	w.Coordinator.WorkerID = c.WorkerID
	w.Coordinator.FailoverTime, w.Coordinator.MaxLeasesToSteal = c.FailoverTime, c.MaxLeasesToSteal
	w.ShardSyncInterval, w.ShutdownTimeout, w.MaintenanceInterval = c.ShardSyncInterval, c.ShutdownTimeout, c.MaintenanceInterval
	w.Maintenance.KeepSnapshots, w.Maintenance.SnapshotAge = c.KeepSnapshots, c.SnapshotAge
	w.Maintenance.OrphanAge, w.OrphanInterval = c.OrphanAge, c.OrphanInterval
	c.Compact.options(&w.Maintenance)
	w.CommitMode = c.CommitMode
	w.Pipeline.ReadMode, w.Pipeline.ConsumerName = c.ReadMode, c.AppName
	return w
}

func serviceFlags(c *serviceConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.StringVar(&c.Stream, "stream", c.Stream, "Kinesis stream to read (required)")
	fs.StringVar(&c.AppName, "app-name", c.AppName, "application name: workers with the same name share the stream's shards")
	fs.StringVar(&c.LeaseTable, "lease-table", c.LeaseTable, "DynamoDB lease table (default: the --app-name)")
	fs.BoolVar(&c.CreateLeaseTable, "create-lease-table", c.CreateLeaseTable, "create the lease table when it is missing (on-demand billing); set false where Terraform creates it")
	fs.StringVar(&c.WorkerID, "worker-id", c.WorkerID, "this worker's name in the lease table (default: hostname plus a random suffix)")
	c.Catalog.RegisterFlags(fs)
	fs.StringVar(&c.DeadLetterPrefix, "dead-letter-prefix", c.DeadLetterPrefix, "folder under the warehouse for rejected records (NDJSON)")
	fs.StringVar(&c.InitialPosition, "initial-position", c.InitialPosition, "where a shard with no committed position starts: trim-horizon, latest (the time the application first started, recorded in the table, so a failover skips nothing) or at-timestamp=RFC3339")
	fs.DurationVar(&c.FailoverTime, "failover-time", c.FailoverTime, "a lease not renewed for this long is taken by another worker")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "commit a micro-batch at least this often")
	fs.IntVar(&c.FlushRows, "flush-rows", c.FlushRows, "commit when this many records (user records of KPL aggregates) are pending; a commit may end inside an aggregate")
	fs.IntVar(&c.FlushBytes, "flush-bytes", c.FlushBytes, "commit when this many raw record bytes are pending")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "on SIGTERM, time allowed to commit what was read and release leases (keep below ECS stopTimeout)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address for /metrics, /healthz and /readyz (empty disables)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "auto (text on a terminal, JSON otherwise), text or json")
	fs.DurationVar(&c.DedupWindow, "dedup-window", c.DedupWindow, "how long a committed event_id is remembered to drop later copies")
	fs.IntVar(&c.DedupMaxIDs, "dedup-max-ids", c.DedupMaxIDs, "most event_ids remembered per shard (bounds memory; oldest evicted first)")
	fs.DurationVar(&c.ShardSyncInterval, "shard-sync-interval", c.ShardSyncInterval, "how often the stream's shards are listed to find splits and merges")
	fs.IntVar(&c.MaxLeasesToSteal, "max-leases-to-steal", c.MaxLeasesToSteal, "leases taken from the busiest worker per round when below the fair share")
	fs.DurationVar(&c.IdlePoll, "idle-poll", c.IdlePoll, "wait between reads of a shard that returned nothing")
	fs.DurationVar(&c.MaintenanceInterval, "maintenance-interval", c.MaintenanceInterval, "how often the maintainer (one worker, elected in the lease table) expires old snapshots and drops the positions of shards gone from the stream (0 disables all maintenance)")
	fs.IntVar(&c.KeepSnapshots, "keep-snapshots", c.KeepSnapshots, "snapshot expiry always keeps this many newest snapshots; with --snapshot-age 0 it keeps no more, which bounds table metadata at any commit rate")
	fs.DurationVar(&c.SnapshotAge, "snapshot-age", c.SnapshotAge, "also keep every snapshot younger than this, for time travel (metadata grows with the commit rate times this age)")
	fs.DurationVar(&c.OrphanAge, "orphan-age", c.OrphanAge, "the maintainer deletes files under the table location that the table does not reference once they are this old (data files of crashed writers, failed commits); at least 1h, far above the longest commit, since a commit's files look like orphans until it lands (0 disables)")
	fs.DurationVar(&c.OrphanInterval, "orphan-interval", c.OrphanInterval, "least time between two orphan sweeps, which list the whole table location and read every manifest (rounded up to --maintenance-interval)")
	c.Compact.register(fs)
	fs.StringVar(&c.CommitMode, "commit-mode", c.CommitMode, "worker: each worker commits its own batches to the table; single: workers write and stage their batches in the lease table and one committer per table (elected there) commits them all in one commit per --flush-interval, so the table's commit rate no longer grows with the workers (new; worker stays the default until long fault-injection runs have covered single)")
	fs.StringVar(&c.ReadMode, "read-mode", c.ReadMode, "polling: read each shard with GetRecords (every 200ms at most; all applications share the shard's 2 MB/s); efo: enhanced fan-out, Kinesis pushes records within about 70ms over SubscribeToShard to a stream consumer named after --app-name (registered at start when missing), with 2 MB/s per shard of its own, at extra cost per consumer-shard hour and per GB")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	return fs
}

const serviceUsage = `consumer — reads payment events from Kinesis into an Iceberg table, exactly once.

Usage:
  consumer [flags]                  run until SIGTERM/SIGINT
  consumer ingest-file PATH|-       load an NDJSON file (see consumer ingest-file --help)
  consumer status                   per-shard owner, state and lag; exit 3 when a shard is stalled (see consumer status --help)
  consumer healthcheck              exit 0 when the consumer on --metrics-addr answers /healthz

AWS endpoint, region and credentials come from the standard AWS SDK chain
(AWS_REGION, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_KINESIS etc., AWS_PROFILE).`

// Validate rejects bad settings, naming the flag.
func (c *serviceConfig) Validate() error {
	var errs []error
	if c.AppName == "" {
		errs = append(errs, errors.New("--app-name must not be empty"))
	}
	if err := c.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := ingest.ParseInitialPosition(c.InitialPosition); err != nil {
		errs = append(errs, fmt.Errorf("--initial-position: %w", err))
	} else if err := c.workerConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.FailoverTime < time.Second {
		errs = append(errs, fmt.Errorf("--failover-time %s: must be at least 1s", c.FailoverTime))
	}
	if err := c.Compact.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "auto" && c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: use auto, text or json", c.LogFormat))
	}
	if err := (dedup.Config{Window: c.DedupWindow, MaxIDs: c.DedupMaxIDs}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr %q: want host:port such as :9090", c.MetricsAddr))
		}
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: use debug, info, warn or error", s)
	}
	return l, nil
}

// textLogger is the one-shot subcommands' logger: text on w at the level
// named (checked by parseLevel when the flags were parsed; info otherwise).
func textLogger(level string, w io.Writer) *slog.Logger {
	l, _ := parseLevel(level)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func newLogger(c *serviceConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	jsonOut := c.LogFormat == "json"
	if c.LogFormat == "auto" {
		f, ok := w.(*os.File)
		jsonOut = !ok || !term.IsTerminal(int(f.Fd()))
	}
	if jsonOut {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseFlags parses args and the environment (internal/flagenv) into fs.
// Usage and flag errors go to out; -h returns flag.ErrHelp after printing
// usage, any other flag error is a *usageError. Shared by the service and
// its subcommands.
func parseFlags(fs *flag.FlagSet, args []string, lookup func(string) (string, bool), out io.Writer, usage string) error {
	fs.SetOutput(out)
	fs.Usage = func() { flagenv.Usage(fs, out, usage) }
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	return nil
}

// parseService parses args and the environment into a validated config.
func parseService(args []string, lookup func(string) (string, bool), stdout io.Writer) (serviceConfig, error) {
	c := defaultServiceConfig()
	fs := serviceFlags(&c)
	if err := parseFlags(fs, args, lookup, stdout, serviceUsage); err != nil {
		return c, err
	}
	if c.Version {
		return c, nil
	}
	if fs.NArg() > 0 {
		return c, &usageError{fmt.Errorf("unexpected argument %q (subcommands: ingest-file, status, maintain, replay-dead-letters, healthcheck)", fs.Arg(0))}
	}
	if c.LeaseTable == "" {
		c.LeaseTable = c.AppName
	}
	if c.WorkerID == "" {
		c.WorkerID = lease.NewWorkerID()
	}
	if v, ok := lookup(faultClockOffsetEnv); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, &usageError{fmt.Errorf("%s=%q: want a Go duration such as 90s or -90s (fault injection only; unset it in deployments)", faultClockOffsetEnv, v)}
		}
		c.FaultClockOffset = d
	}
	if err := c.Validate(); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseService(args, os.LookupEnv, stdout)
	if err != nil {
		return err
	}
	if c.Version {
		fmt.Fprintln(stdout, "consumer", version)
		return nil
	}
	log := newLogger(&c, stderr)
	reg := prometheus.NewRegistry()
	// Every series carries the worker id: on ECS each task is scraped as
	// localhost, so the instance label cannot tell tasks apart.
	labeled := prometheus.WrapRegistererWith(prometheus.Labels{"worker": c.WorkerID}, reg)
	labeled.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := buildService(ctx, c, log, labeled)
	if err != nil {
		return err
	}
	defer svc.close()

	g, gctx := errgroup.WithContext(ctx)
	if c.MetricsAddr != "" {
		srv, ln, err := listenHTTP(ctx, c.MetricsAddr, reg, svc.worker)
		if err != nil {
			return err
		}
		log.Info("serving metrics and health", "addr", ln.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("--metrics-addr %s: %w", c.MetricsAddr, err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	log.Info("consumer starting", "version", version, "stream", c.Stream, "worker", c.WorkerID,
		"table", c.Catalog.Table, "catalog", c.Catalog.Catalog, "warehouse", c.Catalog.Warehouse)
	g.Go(func() error {
		err := svc.worker.Run(gctx)
		if err == nil && ctx.Err() == nil {
			err = errors.New("worker stopped unexpectedly")
		}
		return err
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("consumer stopped")
	return nil
}

type service struct {
	worker *ingest.Worker
	close  func()
}

func buildService(ctx context.Context, c serviceConfig, log *slog.Logger, reg prometheus.Registerer) (*service, error) {
	if c.WorkerID == "" {
		c.WorkerID = lease.NewWorkerID()
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(sdkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	kin := kinesis.NewFromConfig(awsCfg)
	store, err := lease.NewDynamoStore(dynamodb.NewFromConfig(awsCfg), lease.DynamoStoreConfig{Table: c.LeaseTable, CreateTable: c.CreateLeaseTable})
	if err != nil {
		return nil, &usageError{err}
	}
	if err := ensureLocalDirs(c.Catalog); err != nil {
		return nil, err
	}
	cat, err := iceberg.OpenCatalog(ctx, c.Catalog)
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", c.Catalog.Catalog, err)
	}
	if c.FaultClockOffset != 0 {
		log.Warn("fault injection: committing snapshots stamped as by a skewed clock",
			"env", faultClockOffsetEnv, "offset", c.FaultClockOffset.String())
		cat = iceberg.WithClockOffset(cat, c.FaultClockOffset)
	}
	closeCat := func() {
		if cl, ok := cat.(io.Closer); ok {
			_ = cl.Close()
		}
	}
	ident, err := iceberg.ParseIdentifier(c.Catalog.Table)
	if err != nil {
		closeCat()
		return nil, &usageError{fmt.Errorf("--table: %w", err)}
	}
	ensure := func(ctx context.Context) error {
		_, err := iceberg.EnsureTable(ctx, cat, ident, c.Catalog.Warehouse)
		return err
	}
	if err := retry.Startup(ctx, log, ingest.StartupRetryFor, ensure); err != nil {
		closeCat()
		return nil, fmt.Errorf("table %s: %w", c.Catalog.Table, err)
	}
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{Registerer: reg, Logger: log})
	dl := iceberg.NewDeadLetter(c.Catalog.Warehouse, c.DeadLetterPrefix, ident, reg)
	dd, err := dedup.New(dedup.Config{Window: c.DedupWindow, MaxIDs: c.DedupMaxIDs, Registerer: reg})
	if err != nil {
		closeCat()
		return nil, &usageError{err}
	}
	wc := c.workerConfig()
	wc.Coordinator.Registerer = reg
	w, err := ingest.NewWorker(wc, ingest.WorkerDeps{
		Kinesis: kin, Leases: store, Sink: sink, DeadLetters: dl, Dedup: dd, Maintainer: sink, Start: sink,
		Logger: log, Metrics: ingest.NewMetrics(reg),
		SweepDeadLetters: func(ctx context.Context) (iceberg.DeadLetterSweep, error) {
			return sink.SweepDeadLetters(ctx, dl, wc.Maintenance.OrphanAge)
		},
	})
	if err != nil {
		closeCat()
		return nil, &usageError{err}
	}
	return &service{worker: w, close: closeCat}, nil
}

// ensureLocalDirs creates the folders of a local SQLite catalog and file
// warehouse, so the embedded default works in an empty directory.
func ensureLocalDirs(c iceberg.CatalogConfig) error {
	if p, ok := strings.CutPrefix(c.Catalog, "sqlite:"); ok {
		if dir := dirOf(p); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("--catalog %s: create folder: %w", c.Catalog, err)
			}
		}
	}
	if p, ok := strings.CutPrefix(c.Warehouse, "file://"); ok {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("--warehouse %s: create folder: %w", c.Warehouse, err)
		}
	}
	return nil
}

func dirOf(p string) string {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

type readiness interface{ Ready() (bool, string) }

func listenHTTP(ctx context.Context, addr string, reg *prometheus.Registry, ready readiness) (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, why+"\n")
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, &usageError{fmt.Errorf("--metrics-addr %s: %w", addr, err)}
	}
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln, nil
}

// sdkLogger sends the AWS SDK's own messages through slog, so the JSON log
// stream stays JSON.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelWarn
	if c == logging.Debug {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, "aws sdk", "detail", fmt.Sprintf(format, v...))
}
