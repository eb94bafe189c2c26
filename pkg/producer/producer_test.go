package producer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/pkg/schema"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the AWS SDK's HTTP client.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func testConfig(stream string) Config {
	cfg := DefaultConfig()
	cfg.Stream = stream
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func TestValidateNamesTheFlag(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"rate negative", func(c *Config) { c.Rate = -1 }, "--rate -1"},
		{"rate NaN", func(c *Config) { c.Rate = math.NaN() }, "--rate"},
		{"rate zero ok", func(c *Config) { c.Rate = 0 }, ""},
		{"batch too big", func(c *Config) { c.Batch = 501 }, "--batch 501"},
		{"batch zero", func(c *Config) { c.Batch = 0 }, "--batch 0"},
		{"batch max ok", func(c *Config) { c.Batch = 500 }, ""},
		{"duration negative", func(c *Config) { c.Duration = -time.Second }, "--duration"},
		{"count negative", func(c *Config) { c.Count = -5 }, "--count -5"},
		{"concurrency zero", func(c *Config) { c.Concurrency = 0 }, "--concurrency 0"},
		{"duplicate rate over one", func(c *Config) { c.DuplicateRate = 1.5 }, "--duplicate-rate 1.5"},
		{"invalid rate negative", func(c *Config) { c.InvalidRate = -0.1 }, "--invalid-rate -0.1"},
		{"duplicate delay zero", func(c *Config) { c.DuplicateDelay = 0 }, "--duplicate-delay"},
		{"linger zero", func(c *Config) { c.Linger = 0 }, "--linger"},
		{"shards zero", func(c *Config) { c.Shards = 0 }, "--shards 0"},
		{"report unknown", func(c *Config) { c.Report = "xml" }, `--report "xml"`},
		{"json report and stdout output", func(c *Config) { c.Report = ReportJSON; c.Output = "-" }, "--report json and --output -"},
		{"stream empty", func(c *Config) { c.Stream = "" }, "--stream"},
		{"stream bad chars", func(c *Config) { c.Stream = "a b" }, `--stream "a b"`},
		{"stream not needed with output", func(c *Config) { c.Stream = ""; c.Output = "x.ndjson" }, ""},
		{"sent log stdout", func(c *Config) { c.SentLog = "-" }, "--sent-log"},
		{"sent log same as output", func(c *Config) { c.SentLog = "a"; c.Output = "a" }, "--sent-log and --output"},
		{"metrics addr", func(c *Config) { c.MetricsAddr = "9101" }, "--metrics-addr"},
		{"max retries negative", func(c *Config) { c.MaxRetries = -1 }, "--max-retries"},
		{"connect timeout zero", func(c *Config) { c.ConnectTimeout = 0 }, "--connect-timeout"},
		{"shutdown grace negative", func(c *Config) { c.ShutdownGrace = -1 }, "--shutdown-grace"},
		{"aggregate defaults", func(c *Config) { c.Aggregate = true }, ""},
		{"aggregate max bytes too small", func(c *Config) { c.Aggregate, c.AggregateBytes = true, 255 },
			"--aggregate-max-bytes 255: must be between 256 and 1044480 bytes"},
		{"aggregate max bytes over the record limit", func(c *Config) { c.Aggregate, c.AggregateBytes = true, 1<<20 },
			"--aggregate-max-bytes 1048576: must be between 256 and 1044480 bytes (Kinesis' 1 MiB record limit less 4 KiB)"},
		{"aggregate max bytes at the limit", func(c *Config) { c.Aggregate, c.AggregateBytes = true, 1044480 }, ""},
		{"aggregate max bytes without aggregate", func(c *Config) { c.AggregateBytes = 4096 }, "--aggregate-max-bytes 4096 has no effect without --aggregate"},
		{"aggregate with output", func(c *Config) { c.Aggregate, c.Output = true, "x.ndjson" }, `--aggregate packs records for a Kinesis stream; it does not apply to --output "x.ndjson"`},
		{"aggregate batch over 500 ok", func(c *Config) { c.Aggregate, c.Batch = true, 10000 }, ""},
		{"aggregate batch too big", func(c *Config) { c.Aggregate, c.Batch = true, 10001 }, "--batch 10001: must be between 1 and 10000 user records with --aggregate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("want error containing %q, got %v", tt.want, err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate, cfg.Batch = -1, 501
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "--rate") || !strings.Contains(err.Error(), "--batch") {
		t.Fatalf("want both --rate and --batch named, got %v", err)
	}
}

func TestLimit(t *testing.T) {
	tests := []struct {
		count    int64
		rate     float64
		duration time.Duration
		want     int64
	}{
		{0, 0, 0, math.MaxInt64},
		{10, 0, 0, 10},
		{0, 100, 3 * time.Second, 300},
		{50, 100, 3 * time.Second, 50},
		{0, 0.5, time.Second, 0},
		{0, 0, time.Second, math.MaxInt64}, // duration alone stops by the clock
	}
	for _, tt := range tests {
		cfg := Config{Count: tt.count, Rate: tt.rate, Duration: tt.duration}
		if got := cfg.limit(); got != tt.want {
			t.Errorf("limit(count=%d rate=%g duration=%s) = %d, want %d", tt.count, tt.rate, tt.duration, got, tt.want)
		}
	}
}

// TestPacingHoldsRate checks the absolute schedule on a fake stream that
// takes everything at once: no record goes out before its time, none lags
// more than --linger, and the achieved rate is the target.
func TestPacingHoldsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch, cfg.Linger = 1000, 5000, 100, 50*time.Millisecond
		start := time.Now()
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Sent != 5000 || sum.FailedAfterRetries != 0 {
			t.Fatalf("sent %d failed %d, want 5000 and 0", sum.Sent, sum.FailedAfterRetries)
		}
		if math.Abs(sum.AchievedRate-1000) > 1000*RateTolerance || sum.RateHeld == nil || !*sum.RateHeld {
			t.Fatalf("achieved %.2f records/s (held %v), want 1000 within 2%%", sum.AchievedRate, sum.RateHeld)
		}
		if got := sum.ElapsedSeconds; math.Abs(got-5) > 0.01 {
			t.Errorf("elapsed %.3fs, want 5s", got)
		}
		var cum int
		for i, c := range fk.calls {
			cum += c.stored
			el := c.at.Sub(start).Seconds()
			if float64(cum) > 1000*el+1 {
				t.Fatalf("call %d at %.3fs: %d records sent, ahead of the schedule (%.0f)", i, el, cum, 1000*el)
			}
			if float64(cum) < 1000*(el-cfg.Linger.Seconds())-1 {
				t.Fatalf("call %d at %.3fs: %d records sent, lagging the schedule by more than --linger", i, el, cum)
			}
		}
	})
}

func TestPacingByDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		cfg := testConfig("s")
		cfg.Rate, cfg.Duration = 200, 3*time.Second
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Sent != 600 || math.Abs(sum.ElapsedSeconds-3) > 0.01 {
			t.Fatalf("sent %d in %.3fs, want 600 in 3s", sum.Sent, sum.ElapsedSeconds)
		}
	})
}

// TestRateNotHeldIsReported: a stream slower than --rate makes the summary
// say so, in text and in JSON.
func TestRateNotHeldIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.delay = 100 * time.Millisecond // 1 call in flight of 10 records: 100 records/s at most
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch, cfg.Concurrency = 1000, 300, 10, 1
		var out bytes.Buffer
		sum, err := Run(t.Context(), cfg, fk, &out, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.RateHeld == nil || *sum.RateHeld || sum.AchievedRate > 110 {
			t.Fatalf("rate held %v at %.1f records/s, want not held near 100", sum.RateHeld, sum.AchievedRate)
		}
		if !strings.Contains(out.String(), "could not hold --rate 1000") {
			t.Fatalf("text report does not say the rate was not held:\n%s", out.String())
		}
		cfg.Report = ReportJSON
		out.Reset()
		var errOut bytes.Buffer
		if _, err := Run(t.Context(), cfg, fk, &out, &errOut); err != nil {
			t.Fatal(err)
		}
		var js map[string]any
		if err := json.Unmarshal(out.Bytes(), &js); err != nil {
			t.Fatalf("JSON report: %v\n%s", err, out.String())
		}
		if js["rate_held"] != false || !strings.Contains(errOut.String(), "could not hold --rate 1000") {
			t.Fatalf("JSON rate_held=%v, stderr %q", js["rate_held"], errOut.String())
		}
	})
}

// TestRetriesOnlyFailedEntries injects per-entry throttling and internal
// failures, whole-call throttling and a call without answer, and checks
// that what the fake stored equals the summary exactly and that the sent
// log names every stored record once.
func TestRetriesOnlyFailedEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		var injected int
		fk.entryErr = func(call, attempt int, data []byte) string {
			// Every 3rd entry of every 2nd call, on its first two attempts.
			if call%2 == 0 && attempt < 2 && len(data)%3 == 0 {
				injected++
				if attempt == 0 {
					return "ProvisionedThroughputExceededException"
				}
				return "InternalFailure"
			}
			return ""
		}
		fk.callErrs = map[int]error{
			1: &types.ProvisionedThroughputExceededException{Message: aws.String("Rate exceeded for stream s")},
			3: &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "try later", Fault: smithy.FaultServer},
		}
		var mu sync.Mutex
		var logged []Sent
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch, cfg.Concurrency = 0, 2000, 100, 4
		cfg.DuplicateRate, cfg.InvalidRate = 0.1, 0.02
		cfg.OnSent = func(s Sent) { mu.Lock(); logged = append(logged, s); mu.Unlock() }
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		got := fk.counts(t)
		if summaryCounts(sum) != got {
			t.Fatalf("summary %+v != stream %+v", summaryCounts(sum), got)
		}
		if sum.Sent != 2000 || sum.FailedAfterRetries != 0 {
			t.Fatalf("sent %d failed %d, want 2000 and 0", sum.Sent, sum.FailedAfterRetries)
		}
		wantRetried := int64(injected + fk.calls[1].entries + fk.calls[3].entries)
		if injected == 0 || sum.RetriedEntries != wantRetried {
			t.Fatalf("retried %d, want %d (%d injected entry errors + 2 failed calls)", sum.RetriedEntries, wantRetried, injected)
		}
		if sum.UnknownOutcomeEntries != int64(fk.calls[3].entries) {
			t.Errorf("unknown outcome %d, want %d (the 5xx call)", sum.UnknownOutcomeEntries, fk.calls[3].entries)
		}
		if sum.ThrottledEntries < int64(fk.calls[1].entries) {
			t.Errorf("throttled %d, want at least the %d entries of the throttled call", sum.ThrottledEntries, fk.calls[1].entries)
		}
		if sum.DuplicatesSent == 0 || sum.InvalidSent == 0 {
			t.Fatalf("want duplicates and invalid records in the mix, got %+v", sum)
		}
		// The sent log names each stored record once, with its kind.
		byPos := map[string]fakeRecord{}
		for _, r := range fk.stored {
			byPos[r.shard+"/"+r.seq] = r
		}
		if len(logged) != len(fk.stored) {
			t.Fatalf("sent log has %d records, stream %d", len(logged), len(fk.stored))
		}
		kinds := map[string]int64{}
		for _, s := range logged {
			r, ok := byPos[s.ShardID+"/"+s.SequenceNumber]
			if !ok {
				t.Fatalf("sent log names %s/%s, not in the stream", s.ShardID, s.SequenceNumber)
			}
			delete(byPos, s.ShardID+"/"+s.SequenceNumber)
			if r.key != s.PartitionKey {
				t.Fatalf("sent log key %q, stream %q", s.PartitionKey, r.key)
			}
			kinds[s.Kind]++
		}
		if kinds[KindValid] != got.unique || kinds[KindDuplicate] != got.duplicates || kinds[KindInvalid] != got.invalid {
			t.Fatalf("sent log kinds %v, stream %+v", kinds, got)
		}
	})
}

func TestRetriesExhaustedCountAsFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.entryErr = func(_, _ int, data []byte) string {
			if bytes.Contains(data, []byte(`_7"`)) { // event evt_<ms>_7 never gets in
				return "ProvisionedThroughputExceededException"
			}
			return ""
		}
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.MaxRetries = 0, 100, 3
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Sent != 99 || sum.FailedAfterRetries != 1 || sum.RetriedEntries != 3 || sum.ThrottledEntries != 4 {
			t.Fatalf("got sent %d failed %d retried %d throttled %d, want 99, 1, 3, 4",
				sum.Sent, sum.FailedAfterRetries, sum.RetriedEntries, sum.ThrottledEntries)
		}
		if got := fk.counts(t); summaryCounts(sum) != got {
			t.Fatalf("summary %+v != stream %+v", summaryCounts(sum), got)
		}
	})
}

// TestSequenceCollisionsAreReported: an endpoint that acknowledges two
// records at one position (moto under concurrent calls) is called out.
func TestSequenceCollisionsAreReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.overwriteEvery = 100
		cfg := testConfig("s")
		cfg.Rate, cfg.Count = 0, 1000
		var out bytes.Buffer
		sum, err := Run(t.Context(), cfg, fk, &out, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.SequenceCollisions != int64(fk.overwritten) || fk.overwritten != 10 {
			t.Fatalf("collisions %d, fake overwrote %d", sum.SequenceCollisions, fk.overwritten)
		}
		if got := fk.counts(t); got.records != sum.Sent-sum.SequenceCollisions {
			t.Fatalf("stream has %d records, summary %d sent with %d collisions", got.records, sum.Sent, sum.SequenceCollisions)
		}
		if !strings.Contains(out.String(), "SEQUENCE COLLISIONS") {
			t.Fatalf("report does not call out the collisions:\n%s", out.String())
		}
	})
}

// The PutRecords retry schedule: 100 ms doubling to at most 5 s, equal
// jitter (internal/retry tests the jitter itself).
func TestBackoffSchedule(t *testing.T) {
	for attempt := range 20 {
		want := min(5*time.Second, 100*time.Millisecond<<attempt)
		for range 50 {
			if d := backoff.Delay(attempt); d < want/2 || d > want {
				t.Fatalf("backoff.Delay(%d) = %s, want in [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
}

func TestFatalPutRecordsErrorStopsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.callErrs = map[int]error{2: &types.ResourceNotFoundException{Message: aws.String("Stream s under account 123 not found")}}
		cfg := testConfig("s")
		cfg.Rate, cfg.Batch, cfg.Concurrency = 0, 10, 1 // no --count: only the error ends it
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), `stream "s"`) {
			t.Fatalf("want the PutRecords error naming the stream, got %v", err)
		}
		if sum.Sent != 20 || sum.FailedAfterRetries < 10 || sum.Error == "" {
			t.Fatalf("got sent %d failed %d error %q, want 20 sent, the failed call's 10 failed", sum.Sent, sum.FailedAfterRetries, sum.Error)
		}
	})
}

// TestDuplicatesSameCallAndLater checks how duplicates are spread: identical
// bytes, some in the original's PutRecords call, some between half of
// --duplicate-delay and --duplicate-delay later, and the rate about right.
func TestDuplicatesSameCallAndLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.DuplicateRate, cfg.DuplicateDelay = 1000, 6000, 0.2, time.Second
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		first := map[string]fakeRecord{}
		var sameCall, later int
		for _, r := range fk.stored {
			e, err := schema.Decode(r.data, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			o, ok := first[e.EventID]
			if !ok {
				first[e.EventID] = r
				continue
			}
			if !bytes.Equal(o.data, r.data) || o.key != r.key {
				t.Fatalf("duplicate of %s differs from its original", e.EventID)
			}
			if o.call == r.call {
				sameCall++
				continue
			}
			later++
			// The last pending duplicates go out early to fit --count.
			if lag := r.arrived.Sub(o.arrived); lag < 350*time.Millisecond && r.arrived.Before(fk.calls[len(fk.calls)-1].at.Add(-time.Second)) {
				t.Fatalf("later duplicate of %s came %s after the original, want about 0.5-1s", e.EventID, lag)
			}
		}
		if sameCall+later != int(sum.DuplicatesSent) || sameCall < 300 || later < 300 {
			t.Fatalf("same call %d, later %d, summary %d: want both kinds, about half each", sameCall, later, sum.DuplicatesSent)
		}
		if ratio := float64(sum.DuplicatesSent) / float64(sum.UniqueEventIDs); math.Abs(ratio-0.2) > 0.03 {
			t.Fatalf("duplicates/unique = %.3f, want 0.2", ratio)
		}
	})
}

func TestInterruptPrintsSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		cfg := testConfig("s")
		cfg.Rate = 100 // no limit: runs until ctx ends
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		var out bytes.Buffer
		sum, err := Run(ctx, cfg, fk, &out, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Interrupted || sum.Sent < 195 || sum.Sent > 200 {
			t.Fatalf("interrupted %v sent %d, want about 200", sum.Interrupted, sum.Sent)
		}
		if got := fk.counts(t); got.records != sum.Sent {
			t.Fatalf("stream has %d records, summary %d", got.records, sum.Sent)
		}
		if !strings.Contains(out.String(), "interrupted") || !strings.Contains(out.String(), "sent") {
			t.Fatalf("no summary after interrupt:\n%s", out.String())
		}
	})
}

func TestShutdownGraceEndsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.entryErr = func(int, int, []byte) string { return "ProvisionedThroughputExceededException" }
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.MaxRetries, cfg.ShutdownGrace = 0, 50, 1000, time.Second
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start := time.Now()
		sum, err := Run(ctx, cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 4*time.Second+backoff.Cap {
			t.Fatalf("run took %s after a 3s context and 1s grace", el)
		}
		if sum.Sent != 0 || sum.FailedAfterRetries != 50 {
			t.Fatalf("sent %d failed %d, want 0 and 50", sum.Sent, sum.FailedAfterRetries)
		}
	})
}

func TestUnknownStream(t *testing.T) {
	fk := newFake()
	cfg := testConfig("nope")
	_, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
	if !errors.Is(err, ErrStreamNotFound) || !strings.Contains(err.Error(), `stream "nope" not found`) || !strings.Contains(err.Error(), "--create-stream") {
		t.Fatalf("got %v", err)
	}
	cfg.CreateStream, cfg.Count, cfg.Rate, cfg.Shards = true, 10, 0, 3
	sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
	if err != nil || sum.Sent != 10 || sum.Shards != 3 {
		t.Fatalf("with --create-stream: sent %d shards %d err %v", sum.Sent, sum.Shards, err)
	}
}

// TestOutputFile: --output writes exactly the records the summary counts,
// one per line, and --sent-log lists them.
func TestOutputFile(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig("")
	cfg.Output = filepath.Join(dir, "events.ndjson")
	cfg.SentLog = filepath.Join(dir, "sent.ndjson")
	cfg.Rate, cfg.Count, cfg.DuplicateRate, cfg.InvalidRate = 0, 3000, 0.1, 0.05
	var out bytes.Buffer
	sum, err := Run(t.Context(), cfg, nil, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	raws := readLines(t, cfg.Output)
	if got := countRecords(t, raws, time.Now()); got != summaryCounts(sum) || got.duplicates == 0 || got.invalid == 0 {
		t.Fatalf("file %+v, summary %+v", got, summaryCounts(sum))
	}
	if n := len(readLines(t, cfg.SentLog)); int64(n) != sum.Sent {
		t.Fatalf("sent log has %d lines, want %d", n, sum.Sent)
	}
	if !strings.Contains(out.String(), `output "`+cfg.Output+`"`) {
		t.Fatalf("report:\n%s", out.String())
	}
}

// TestOutputIsNotPacedByDefault: --output drops --rate's default of 100
// records/s unless --rate or PAYSTREAM_RATE is given; a stream keeps it.
func TestOutputIsNotPacedByDefault(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want float64
	}{
		{"stream keeps the default", nil, nil, DefaultRate},
		{"stream keeps a given rate", []string{"--rate", "7"}, nil, 7},
		{"file is not paced", []string{"--output", "events.ndjson"}, nil, 0},
		{"stdout is not paced", []string{"--output", "-"}, nil, 0},
		{"output from the environment", nil, map[string]string{"PAYSTREAM_OUTPUT": "events.ndjson"}, 0},
		{"file with --rate", []string{"--output", "events.ndjson", "--rate", "50"}, nil, 50},
		{"file with --rate equal to the default", []string{"--output", "events.ndjson", "--rate", "100"}, nil, 100},
		{"file with PAYSTREAM_RATE", []string{"--output", "events.ndjson"}, map[string]string{"PAYSTREAM_RATE": "250"}, 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			fs := flag.NewFlagSet("producer", flag.ContinueOnError)
			cfg.RegisterFlags(fs)
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := flagenv.Parse(fs, tt.args, lookup); err != nil {
				t.Fatal(err)
			}
			cfg.UnpaceOutput(fs)
			if cfg.Rate != tt.want {
				t.Fatalf("Rate = %v, want %v", cfg.Rate, tt.want)
			}
		})
	}
}

func TestOutputStdoutKeepsReportOffStdout(t *testing.T) {
	cfg := testConfig("")
	cfg.Output, cfg.Rate, cfg.Count = "-", 0, 20
	var out, errOut bytes.Buffer
	if _, err := Run(t.Context(), cfg, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 20 {
		t.Fatalf("stdout has %d lines, want 20 records", len(lines))
	}
	for _, l := range lines {
		if _, err := schema.Decode([]byte(l), time.Now()); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
	}
	if !strings.Contains(errOut.String(), "paystream producer summary") {
		t.Fatalf("text report not on stderr: %q", errOut.String())
	}
}

func TestSameSeedSameEvents(t *testing.T) {
	gen := func() []string {
		var out bytes.Buffer
		cfg := testConfig("")
		cfg.Output, cfg.Rate, cfg.Count, cfg.Seed, cfg.InvalidRate, cfg.DuplicateRate = "-", 0, 200, 42, 0.1, 0.1
		if _, err := Run(t.Context(), cfg, nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		var fields []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			e, err := schema.Decode([]byte(l), time.Now())
			if err != nil {
				fields = append(fields, "invalid")
				continue
			}
			fields = append(fields, e.CustomerID+e.EventType+e.SubscriptionTier+e.CountryCode+e.PaymentProcessor)
		}
		return fields
	}
	a, b := gen(), gen()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatal("two runs with --seed 42 generated different events")
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var l latency
	for i := 1; i <= 1000; i++ {
		l.observe(time.Duration(i) * time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := l.quantile(tt.q)
		if math.Abs(float64(got-tt.want)) > 0.02*float64(tt.want) {
			t.Errorf("quantile(%g) = %s, want %s within 2%%", tt.q, got, tt.want)
		}
	}
	var empty latency
	if empty.quantile(0.99) != 0 {
		t.Error("empty histogram quantile not 0")
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 2<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsMatchSummary: the Prometheus counters on the injected
// registry agree with the summary, and a second run on the same registry
// reuses them.
func TestMetricsMatchSummary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		fk := newFake("s")
		fk.entryErr = func(call, _ int, _ []byte) string {
			if call == 0 {
				return "ProvisionedThroughputExceededException"
			}
			return ""
		}
		cfg := testConfig("s")
		cfg.Rate, cfg.Count, cfg.Batch, cfg.DuplicateRate, cfg.InvalidRate, cfg.Registerer = 0, 400, 100, 0.2, 0.1, reg
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"paystream_producer_records_sent_total", map[string]string{"kind": KindValid}, float64(sum.UniqueEventIDs)},
			{"paystream_producer_records_sent_total", map[string]string{"kind": KindDuplicate}, float64(sum.DuplicatesSent)},
			{"paystream_producer_records_sent_total", map[string]string{"kind": KindInvalid}, float64(sum.InvalidSent)},
			{"paystream_producer_records_retried_total", nil, float64(sum.RetriedEntries)},
			{"paystream_producer_kinesis_records_sent_total", nil, float64(sum.Sent)}, // one Kinesis record per record without --aggregate
			{"paystream_producer_records_failed_total", nil, 0},
		} {
			if got := metricValue(t, reg, tt.name, tt.labels); got != tt.want {
				t.Errorf("%s%v = %g, want %g", tt.name, tt.labels, got, tt.want)
			}
		}
		if sum.RetriedEntries != 100 {
			t.Errorf("retried %d, want the first call's 100", sum.RetriedEntries)
		}
		if got := metricValue(t, reg, "paystream_producer_putrecords_duration_seconds", nil); got != float64(sum.PutRecordsCalls) {
			t.Errorf("histogram count %g, want %d calls", got, sum.PutRecordsCalls)
		}
		if _, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard); err != nil {
			t.Fatalf("second run on the same registry: %v", err)
		}
	})
}

// metricValue returns a counter's value or a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestDurationEndsABackloggedRun: when the stream is too slow, --duration
// still ends the run on time instead of sending the whole backlog.
func TestDurationEndsABackloggedRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake("s")
		fk.delay = 100 * time.Millisecond
		cfg := testConfig("s")
		cfg.Rate, cfg.Duration, cfg.Batch = 1000, 2*time.Second, 10 // the fake takes 100 records/s
		start := time.Now()
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > 2500*time.Millisecond {
			t.Fatalf("run took %s with --duration 2s", el)
		}
		if sum.Sent > 250 || sum.RateHeld == nil || *sum.RateHeld {
			t.Fatalf("sent %d, rate held %v: want about 200 and not held", sum.Sent, sum.RateHeld)
		}
	})
}

func TestCreateStreamWaitsUntilActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fk := newFake()
		fk.creating = 4 // the describe after CreateStream and three polls see CREATING
		cfg := testConfig("new")
		cfg.CreateStream, cfg.Count, cfg.Rate = true, 10, 0
		start := time.Now()
		sum, err := Run(t.Context(), cfg, fk, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if fk.creating != 0 || sum.Sent != 10 || time.Since(start) < 750*time.Millisecond {
			t.Fatalf("sent %d after %s with %d CREATING answers left; want to wait for ACTIVE", sum.Sent, time.Since(start), fk.creating)
		}
		if len(fk.calls) == 0 || fk.calls[0].at.Sub(start) < 750*time.Millisecond {
			t.Fatal("PutRecords was called before the stream was ACTIVE")
		}
	})
}

func TestProgressLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		st := &stats{m: mustMetrics(t)}
		start := time.Now()
		stop := showProgress(&buf, st, start)
		st.ack(&record{ev: &event{}, eventID: "e1", key: "k"}, "shard-0", "1", -1)
		time.Sleep(2500 * time.Millisecond)
		stop()
		out := buf.String()
		if strings.Count(out, "sent 1 ") != 2 || !strings.HasSuffix(out, "\r\033[K") {
			t.Fatalf("want two redraws and a cleared line, got %q", out)
		}
	})
}

func mustMetrics(t *testing.T) *metrics {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
