package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paystream/paystream/internal/flagenv"
	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/producer"
)

// issueFlags are the flags issue 2 asks for, plus the ones added here.
var issueFlags = []string{
	"stream", "rate", "duration", "count", "batch", "concurrency", "seed", "duplicate-rate", "invalid-rate",
	"create-stream", "shards", "output", "report", "sent-log", "metrics-addr", "version",
}

func noEnv(string) (string, bool) { return "", false }

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestHelpListsEveryFlagAndVariable(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut, noEnv); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	help := errOut.String()
	cfg := producer.DefaultConfig()
	fs := newFlagSet(&cfg, io.Discard)
	fs.Bool("version", false, "")
	names := issueFlags
	for _, f := range flagenv.Names(fs) {
		names = append(names, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(f, flagenv.Prefix), "_", "-")))
	}
	for _, name := range names {
		if !regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(name) + `( |$)`).MatchString(help) {
			t.Errorf("--help lacks --%s", name)
		}
		if !strings.Contains(help, "env "+flagenv.EnvName(name)) {
			t.Errorf("--help lacks env %s", flagenv.EnvName(name))
		}
	}
}

// TestBuiltBinary builds the command with a version stamped in and checks
// --version and --help on the real binary.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "producer")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "producer v9.9.9-test" {
		t.Fatalf("--version: %q, %v", out, err)
	}
	help, err := exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, name := range issueFlags {
		if !strings.Contains(string(help), "--"+name) || !strings.Contains(string(help), flagenv.EnvName(name)) {
			t.Errorf("binary --help lacks --%s or %s", name, flagenv.EnvName(name))
		}
	}
	cmd := exec.CommandContext(t.Context(), bin, "--batch", "501")
	msg, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitUsage || !strings.Contains(string(msg), "--batch 501") {
		t.Fatalf("--batch 501: exit %d (%v), output %q", code, err, msg)
	}
}

func TestVersionDefault(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, io.Discard, noEnv); code != exitOK || out.String() != "producer dev\n" {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestBadConfigurationExitsWithUsageError(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"negative rate", []string{"--rate", "-1"}, nil, "--rate -1"},
		{"batch over 500", []string{"--batch", "501"}, nil, "--batch 501"},
		{"bad report", []string{"--report", "yaml"}, nil, "--report"},
		{"negative rate from env", nil, map[string]string{"PAYSTREAM_RATE": "-1"}, "--rate -1"},
		{"unparsable env", nil, map[string]string{"PAYSTREAM_COUNT": "many"}, "PAYSTREAM_COUNT"},
		{"unknown flag", []string{"--speed", "3"}, nil, "-speed"},
		{"positional argument", []string{"payments"}, nil, `unexpected argument "payments"`},
		{"aggregate size not a number", []string{"--aggregate", "--aggregate-max-bytes", "1MiB"}, nil, "-aggregate-max-bytes"},
		{"aggregate size too small", []string{"--aggregate", "--aggregate-max-bytes", "100"}, nil, "--aggregate-max-bytes 100: must be between 256 and 1044480 bytes"},
		{"aggregate size over 1 MiB from env", []string{"--aggregate"}, map[string]string{"PAYSTREAM_AGGREGATE_MAX_BYTES": "2000000"}, "--aggregate-max-bytes 2000000"},
		{"aggregate size without aggregate", []string{"--aggregate-max-bytes", "4096"}, nil, "has no effect without --aggregate"},
		{"aggregate with output", []string{"--aggregate", "--output", "x.ndjson"}, nil, "does not apply to --output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errOut bytes.Buffer
			code := run(tt.args, io.Discard, &errOut, env(tt.env))
			if code != exitUsage || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), exitUsage, tt.want)
			}
		})
	}
}

func TestUnknownStreamFailsAgainstMoto(t *testing.T) {
	testenv.Moto(t)
	var errOut bytes.Buffer
	code := run([]string{"--stream", "nosuch", "--count", "10"}, io.Discard, &errOut, noEnv)
	if code != exitFailed || !strings.Contains(errOut.String(), `stream "nosuch" not found`) || !strings.Contains(errOut.String(), "--create-stream") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_REGION", testenv.Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	var errOut bytes.Buffer
	start := time.Now()
	code := run([]string{"--connect-timeout", "2s"}, io.Discard, &errOut, noEnv)
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("took %s", el)
	}
	if code != exitFailed || !strings.Contains(errOut.String(), "cannot reach Kinesis endpoint "+endpoint) {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestJSONReportAgainstMoto(t *testing.T) {
	testenv.Moto(t)
	var out, errOut bytes.Buffer
	code := run([]string{"--stream", "cli", "--create-stream", "--shards", "1", "--count", "300", "--rate", "0",
		"--duplicate-rate", "0.1", "--report", "json"}, &out, &errOut, noEnv)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var sum producer.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	if sum.Sent != 300 || sum.Stream != "cli" || sum.Shards != 1 || sum.UniqueEventIDs+sum.DuplicatesSent != 300 || sum.DuplicatesSent == 0 {
		t.Fatalf("summary %+v", sum)
	}
}

// With --aggregate against moto (its ListShards and hash routing), the
// JSON report counts user records and the fewer Kinesis records that
// carried them.
func TestAggregateJSONReportAgainstMoto(t *testing.T) {
	testenv.Moto(t)
	var out, errOut bytes.Buffer
	code := run([]string{"--stream", "cli-agg", "--create-stream", "--shards", "2", "--count", "1000", "--rate", "0",
		"--aggregate", "--aggregate-max-bytes", "8192", "--report", "json"}, &out, &errOut, noEnv)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var sum producer.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	if !sum.Aggregated || sum.Sent != 1000 || sum.KinesisRecords < 2 || sum.KinesisRecords*10 > sum.Sent || sum.FailedAfterRetries != 0 {
		t.Fatalf("summary %+v: want 1000 user records in a few dozen Kinesis records", sum)
	}
	if !bytes.Contains(out.Bytes(), []byte(`"kinesis_records":`)) || !bytes.Contains(out.Bytes(), []byte(`"aggregated":true`)) {
		t.Errorf("JSON report lacks kinesis_records or aggregated: %s", out.String())
	}
}

// TestOutputFileIsWrittenUnpaced: without --rate, --output is not held to
// the stream's default of 100 records/s. --duration is only a bound: at
// that rate the run would stop there with 3,000 records.
func TestOutputFileIsWrittenUnpaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	var out, errOut bytes.Buffer
	code := run([]string{"--output", path, "--count", "20000", "--duration", "30s", "--report", "json"}, &out, &errOut, noEnv)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var sum producer.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	if sum.TargetRate != 0 || sum.RateHeld != nil || sum.Sent != 20000 {
		t.Fatalf("target rate %v, rate held %v, sent %d; want an unpaced run of 20000", sum.TargetRate, sum.RateHeld, sum.Sent)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 20000 {
		t.Fatalf("%s has %d lines, want 20000", path, n)
	}
}

func TestServeMetrics(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "paystream_producer_records_sent_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(7)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	shutdown, err := serveMetrics(t.Context(), addr, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "paystream_producer_records_sent_total 7") {
		t.Fatalf("/metrics:\n%s", body)
	}
}
