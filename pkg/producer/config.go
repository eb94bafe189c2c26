package producer

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/pkg/kpl"
)

// Kinesis limits for one PutRecords call.
const (
	MaxBatchRecords = 500
	MaxBatchBytes   = 5 << 20 // data plus partition keys
)

// MaxAggregateBatch is --batch's limit with --aggregate, where it counts
// the user records packed per flush; the aggregates are then put in as
// many PutRecords calls as the limits above need.
const MaxAggregateBatch = 10_000

// Report formats.
const (
	ReportText = "text"
	ReportJSON = "json"
)

// Config is the producer's whole configuration. DefaultConfig gives the
// defaults; RegisterFlags binds every field that has a flag. Validate
// rejects bad values with a message naming the flag.
type Config struct {
	Stream         string        // --stream: Kinesis stream name
	Rate           float64       // --rate: records per second; 0 = as fast as possible (see UnpaceOutput)
	Duration       time.Duration // --duration: stop after this long; 0 = no limit
	Count          int64         // --count: stop after this many records; 0 = no limit
	Batch          int           // --batch: records per PutRecords call (1..500)
	Linger         time.Duration // --linger: longest a record waits for its batch to fill when pacing
	Concurrency    int           // --concurrency: PutRecords calls in flight
	Seed           uint64        // --seed: generator seed
	DuplicateRate  float64       // --duplicate-rate: fraction of valid events sent a second time
	DuplicateDelay time.Duration // --duplicate-delay: the later copies go out up to this long after the original
	InvalidRate    float64       // --invalid-rate: fraction of new records that are malformed
	CreateStream   bool          // --create-stream: create the stream when it does not exist
	Shards         int           // --shards: shard count for --create-stream
	Output         string        // --output: write NDJSON here instead of sending; "-" = stdout
	Report         string        // --report: text or json
	SentLog        string        // --sent-log: NDJSON line per record that reached the stream
	MetricsAddr    string        // --metrics-addr: serve /metrics here (cmd/producer)
	MaxRetries     int           // --max-retries: attempts after the first for a failed entry
	ConnectTimeout time.Duration // --connect-timeout: limit for the start-up check of the endpoint
	ShutdownGrace  time.Duration // --shutdown-grace: time in-flight records get after Ctrl-C
	Aggregate      bool          // --aggregate: pack records into KPL aggregates per shard
	AggregateBytes int           // --aggregate-max-bytes: size limit of one aggregate

	// Not flags: set by callers of the Go API.

	// Logger receives the few operational messages (stream created, retries
	// exhausted). Nil logs text to Run's stderr.
	Logger *slog.Logger
	// Registerer receives the producer's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// OnSent, when set, is called once for every record that reached the
	// stream (or the --output file), in acknowledgement order, never
	// concurrently. It must not block for long.
	OnSent func(Sent)
	// Endpoint names the Kinesis endpoint in error messages. Run fills it
	// from a *kinesis.Client when empty.
	Endpoint string
}

// DefaultRate is --rate's default for a Kinesis stream. Records written to
// --output are not paced unless --rate is given: a file has no shard quota
// to stay under, and pacing it only makes it slow (UnpaceOutput).
const DefaultRate = 100

// DefaultConfig returns the defaults the flags show.
func DefaultConfig() Config {
	return Config{
		Stream:         "payments",
		Rate:           DefaultRate,
		Batch:          MaxBatchRecords,
		Linger:         100 * time.Millisecond,
		Concurrency:    1,
		Seed:           1,
		DuplicateDelay: 5 * time.Second,
		Shards:         2,
		Report:         ReportText,
		MaxRetries:     10,
		ConnectTimeout: 5 * time.Second,
		ShutdownGrace:  10 * time.Second,
		AggregateBytes: kpl.DefaultAggregateBytes,
	}
}

// RegisterFlags binds c's fields to flags on fs, with c's current values as
// defaults. Parse with flagenv.Parse so each flag also reads its
// PAYSTREAM_* environment variable.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Stream, "stream", c.Stream, "Kinesis stream to send to")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "records per second, held against the wall clock; 0 sends as fast as the stream takes them;\nwith --output the default is 0: a file is written as fast as it can be unless --rate is given")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "stop after this long (e.g. 60s); 0 means no time limit")
	fs.Int64Var(&c.Count, "count", c.Count, "stop after this many records (duplicates and invalid ones included); 0 means no limit")
	fs.IntVar(&c.Batch, "batch", c.Batch, "records per PutRecords call, at most 500 (calls are also kept under 5 MiB);\nwith --aggregate, user records packed per flush, at most 10000")
	fs.DurationVar(&c.Linger, "linger", c.Linger, "longest a record waits for its batch to fill when --rate paces sending")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "PutRecords calls in flight at once; keep 1 against moto, which overwrites records\nwhen calls to one shard overlap")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "generator seed: the same seed gives the same customers, types, tiers and countries")
	fs.Float64Var(&c.DuplicateRate, "duplicate-rate", c.DuplicateRate, "fraction of valid events sent a second time with the same event_id and bytes\n(half in the same PutRecords call, half up to --duplicate-delay later), as a retrying producer would")
	fs.DurationVar(&c.DuplicateDelay, "duplicate-delay", c.DuplicateDelay, "the later copies of duplicated events go out up to this long after the original")
	fs.Float64Var(&c.InvalidRate, "invalid-rate", c.InvalidRate, "fraction of new records that are deliberately malformed (for dead-letter tests)")
	fs.BoolVar(&c.CreateStream, "create-stream", c.CreateStream, "create the stream with --shards shards if it does not exist, and wait until it is ACTIVE")
	fs.IntVar(&c.Shards, "shards", c.Shards, "shard count used by --create-stream")
	fs.StringVar(&c.Output, "output", c.Output, "write the records as NDJSON to this file instead of sending them; - for stdout")
	fs.StringVar(&c.Report, "report", c.Report, "summary format at exit: text or json (one JSON object on stdout)")
	fs.StringVar(&c.SentLog, "sent-log", c.SentLog, "write one NDJSON line per record that reached the stream:\nevent_id, kind (valid|duplicate|invalid), partition_key, shard_id, sequence_number;\nwith --aggregate one line per user record, with its sub_sequence_number in the aggregate")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve Prometheus metrics on this address at /metrics (e.g. :9101); empty disables")
	fs.IntVar(&c.MaxRetries, "max-retries", c.MaxRetries, "retries of a failed or throttled record, with exponential backoff and jitter, before it counts as failed")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "limit for the start-up check that the Kinesis endpoint answers")
	fs.BoolVar(&c.Aggregate, "aggregate", c.Aggregate, "pack the records into KPL aggregates (the Kinesis Producer Library's format): the records of a\n--batch bound for one shard (by the MD5 of the partition key, against the shards listed at start and\nlisted again when a put lands on another shard than predicted) share Kinesis records of at most\n--aggregate-max-bytes; --rate, --count and the summary count user records, the summary also Kinesis\nrecords and shard map refreshes. The paystream consumer de-aggregates them")
	fs.IntVar(&c.AggregateBytes, "aggregate-max-bytes", c.AggregateBytes, "with --aggregate, the largest aggregate in bytes (data plus partition key), 256 to 1044480\n(Kinesis' 1 MiB record limit less 4 KiB); the default is the KPL's")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "after Ctrl-C, how long records already handed to PutRecords may still be retried")
}

// UnpaceOutput gives --output its own --rate default: when records go to a
// file or stdout and --rate was set neither on the command line nor by
// PAYSTREAM_RATE, Rate becomes 0 and the records are written as fast as
// they can be. Call it after parsing fs, the flag set RegisterFlags bound c
// to; the stream's default (DefaultRate) is left alone.
func (c *Config) UnpaceOutput(fs *flag.FlagSet) {
	if c.Output == "" {
		return
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "rate" })
	if !given {
		c.Rate = 0
	}
}

var streamNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// Validate returns every problem with c, each naming its flag, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Output == "" && !streamNameRE.MatchString(c.Stream) {
		bad("--stream %q: a stream name is 1 to 128 letters, digits, '_', '.' or '-'", c.Stream)
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 {
		bad("--rate %v: must be 0 (as fast as possible) or a positive number of records per second", c.Rate)
	}
	if c.Duration < 0 {
		bad("--duration %v: must be 0 (no limit) or positive", c.Duration)
	}
	if c.Count < 0 {
		bad("--count %d: must be 0 (no limit) or positive", c.Count)
	}
	switch {
	case c.Aggregate && (c.Batch < 1 || c.Batch > MaxAggregateBatch):
		bad("--batch %d: must be between 1 and %d user records with --aggregate", c.Batch, MaxAggregateBatch)
	case !c.Aggregate && (c.Batch < 1 || c.Batch > MaxBatchRecords):
		bad("--batch %d: must be between 1 and %d records (the Kinesis PutRecords limit; up to %d with --aggregate)", c.Batch, MaxBatchRecords, MaxAggregateBatch)
	}
	if c.AggregateBytes < kpl.MinAggregateBytes || c.AggregateBytes > kpl.MaxAggregateBytes {
		bad("--aggregate-max-bytes %d: must be between %d and %d bytes (Kinesis' 1 MiB record limit less 4 KiB)", c.AggregateBytes, kpl.MinAggregateBytes, kpl.MaxAggregateBytes)
	} else if !c.Aggregate && c.AggregateBytes != kpl.DefaultAggregateBytes {
		bad("--aggregate-max-bytes %d has no effect without --aggregate", c.AggregateBytes)
	}
	if c.Aggregate && c.Output != "" {
		bad("--aggregate packs records for a Kinesis stream; it does not apply to --output %q (NDJSON, one event a line)", c.Output)
	}
	if c.Linger <= 0 {
		bad("--linger %v: must be positive", c.Linger)
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("--concurrency %d: must be between 1 and 256", c.Concurrency)
	}
	if !(c.DuplicateRate >= 0 && c.DuplicateRate <= 1) {
		bad("--duplicate-rate %v: must be a fraction between 0 and 1", c.DuplicateRate)
	}
	if c.DuplicateDelay <= 0 {
		bad("--duplicate-delay %v: must be positive", c.DuplicateDelay)
	}
	if !(c.InvalidRate >= 0 && c.InvalidRate <= 1) {
		bad("--invalid-rate %v: must be a fraction between 0 and 1", c.InvalidRate)
	}
	if c.Shards < 1 || c.Shards > 10_000 {
		bad("--shards %d: must be between 1 and 10000", c.Shards)
	}
	switch c.Report {
	case ReportText:
	case ReportJSON:
		if c.Output == "-" {
			bad("--report json and --output - both write to stdout; write the records to a file or use --report text")
		}
	default:
		bad("--report %q: must be text or json", c.Report)
	}
	if c.SentLog != "" && c.SentLog == c.Output {
		bad("--sent-log and --output are both %q; use two files", c.SentLog)
	}
	if c.SentLog == "-" {
		bad("--sent-log -: give a file name (stdout carries the report)")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("--metrics-addr %q: want host:port or :port (%v)", c.MetricsAddr, err)
		}
	}
	if c.MaxRetries < 0 {
		bad("--max-retries %d: must be 0 or more", c.MaxRetries)
	}
	if c.ConnectTimeout <= 0 {
		bad("--connect-timeout %v: must be positive", c.ConnectTimeout)
	}
	if c.ShutdownGrace < 0 {
		bad("--shutdown-grace %v: must be 0 or more", c.ShutdownGrace)
	}
	return errors.Join(errs...)
}

// limit is the number of records the run sends at most: --count, or
// --rate × --duration when both are set, whichever is smaller;
// math.MaxInt64 when neither bounds it.
func (c *Config) limit() int64 {
	n := int64(math.MaxInt64)
	if c.Count > 0 {
		n = c.Count
	}
	if c.Rate > 0 && c.Duration > 0 {
		if d := int64(math.Floor(c.Rate * c.Duration.Seconds())); d < n {
			n = d
		}
	}
	return n
}

func (c *Config) logger(stderr io.Writer) *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.NewTextHandler(stderr, nil))
}
