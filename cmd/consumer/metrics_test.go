package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/paystream/paystream/internal/promreport"
	"github.com/paystream/paystream/internal/quantile"
	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/producer"
	"github.com/paystream/paystream/pkg/schema"
)

// metricsStack is moto plus a stream, for driving the real consumer.
type metricsStack struct {
	tb     testing.TB
	kin    *kinesis.Client
	stream string
}

func newMetricsStack(tb testing.TB, shards int) *metricsStack {
	tb.Helper()
	testenv.Moto(tb)
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	s := &metricsStack{tb: tb, kin: kinesis.NewFromConfig(awsCfg), stream: "payments"}
	if _, err := s.kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(s.stream), ShardCount: aws.Int32(int32(shards))}); err != nil {
		tb.Fatal(err)
	}
	w := kinesis.NewStreamExistsWaiter(s.kin, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(s.stream)}, 30*time.Second); err != nil {
		tb.Fatal(err)
	}
	return s
}

// startConsumer builds the consumer exactly as run does (buildService on a
// registry with the Go and process collectors) and runs its worker until
// the test ends or stop is called.
func (s *metricsStack) startConsumer(tweak func(*serviceConfig)) (*prometheus.Registry, func()) {
	tb := s.tb
	tb.Helper()
	cfg := localServiceConfig(tb.TempDir(), s.stream)
	if tweak != nil {
		tweak(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg, _, svc := newConsumerRegistry(tb, cfg, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.worker.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("consumer returned %v", err)
			}
		case <-time.After(40 * time.Second):
			tb.Error("consumer did not stop within 40s")
		}
	}
	tb.Cleanup(stop)
	return reg, stop
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.tb.Logf("%s", strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// sentRecord is one record the stream acknowledged.
type sentRecord struct {
	kind  string // valid, duplicate, invalid
	shard string
}

// put writes records with one PutRecords call and returns where each went.
func (s *metricsStack) put(ctx context.Context, recs []ktypes.PutRecordsRequestEntry, kinds []string) []sentRecord {
	s.tb.Helper()
	out, err := s.kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(s.stream), Records: recs})
	if err != nil {
		s.tb.Fatal(err)
	}
	if n := aws.ToInt32(out.FailedRecordCount); n > 0 {
		s.tb.Fatalf("PutRecords: %d records failed", n)
	}
	sent := make([]sentRecord, len(out.Records))
	for i, r := range out.Records {
		sent[i] = sentRecord{kind: kinds[i], shard: aws.ToString(r.ShardId)}
	}
	return sent
}

// familyValues sums each family's series by their shard label.
func familyValues(fams []*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			shard := ""
			for _, l := range m.Label {
				if l.GetName() == "shard" {
					shard = l.GetValue()
				}
			}
			switch {
			case m.Counter != nil:
				out[shard] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[shard] += m.Gauge.GetValue()
			case m.Histogram != nil:
				out[shard] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func total(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

// expectedText renders want as the exposition of counter family name, with
// the HELP text the registry has, for testutil.GatherAndCompare.
func expectedText(fams []*dto.MetricFamily, name string, want map[string]float64) string {
	help := ""
	for _, f := range fams {
		if f.GetName() == name {
			help = f.GetHelp()
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	shards := make([]string, 0, len(want))
	for s := range want {
		shards = append(shards, s)
	}
	slices.Sort(shards)
	for _, s := range shards {
		if s == "" {
			fmt.Fprintf(&b, "%s %v\n", name, want[s])
		} else {
			fmt.Fprintf(&b, "%s{shard=%q} %v\n", name, s, want[s])
		}
	}
	return b.String()
}

// TestConsumerMetricsCountEveryRecord drives the consumer against moto with
// N records of which k repeat an earlier event_id and j are invalid, and
// checks the counters read exactly N, N-k-j committed, k duplicate and j
// rejected, per shard, plus the sink, dead-letter and freshness totals.
func TestConsumerMetricsCountEveryRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	s := newMetricsStack(t, 2)
	ctx := context.Background()
	reg, stop := s.startConsumer(func(c *serviceConfig) {
		c.FlushInterval = 200 * time.Millisecond
		c.IdlePoll = 200 * time.Millisecond
		c.ShardSyncInterval = time.Second
	})

	gen := schema.NewGenerator(7, time.Now())
	var originals []schema.Event
	var sent []sentRecord
	send := func(valid, dupFrom, dups, invalid int) {
		var recs []ktypes.PutRecordsRequestEntry
		var kinds []string
		for range valid {
			e := gen.Next(time.Now())
			originals = append(originals, e)
			recs = append(recs, ktypes.PutRecordsRequestEntry{Data: e.AppendJSON(nil), PartitionKey: aws.String(e.CustomerID)})
			kinds = append(kinds, "valid")
			if len(recs)%25 == 0 && invalid > 0 { // spread invalid records among the valid ones
				raw, _ := gen.NextInvalid(time.Now())
				recs = append(recs, ktypes.PutRecordsRequestEntry{Data: raw, PartitionKey: aws.String(fmt.Sprintf("bad-%d", len(recs)))})
				kinds = append(kinds, "invalid")
				invalid--
			}
		}
		for range invalid {
			raw, _ := gen.NextInvalid(time.Now())
			recs = append(recs, ktypes.PutRecordsRequestEntry{Data: raw, PartitionKey: aws.String(fmt.Sprintf("bad-%d", len(recs)))})
			kinds = append(kinds, "invalid")
		}
		// A retried producer sends the same bytes with the same key: same shard.
		for _, e := range originals[dupFrom : dupFrom+dups] {
			recs = append(recs, ktypes.PutRecordsRequestEntry{Data: e.AppendJSON(nil), PartitionKey: aws.String(e.CustomerID)})
			kinds = append(kinds, "duplicate")
		}
		sent = append(sent, s.put(ctx, recs, kinds)...)
	}
	// First call: 150 new events, 6 invalid, and 10 copies of events in the
	// same call (caught inside one batch).
	send(150, 0, 10, 6)
	waitFor(t, 60*time.Second, "first records committed", func() bool {
		fams, _ := reg.Gather()
		return total(familyValues(fams, "paystream_ingest_records_committed_total")) > 0
	})
	// Second call, after a commit: 50 new events, 6 invalid, and 20 copies of
	// events committed earlier (caught by the dedup window).
	send(50, 20, 20, 6)

	// tally counts what was sent: N records, k duplicates, j invalid, and
	// what each counter should read per shard.
	tally := func() (want map[string]map[string]float64, n, k, j float64) {
		want = map[string]map[string]float64{}
		for _, name := range []string{"read", "committed", "duplicate", "rejected", "dedup"} {
			want[name] = map[string]float64{}
		}
		for _, r := range sent {
			want["read"][r.shard]++
			want["dedup"][r.shard] += 0 // the filter reports every shard it has a window for
			n++
			switch r.kind {
			case "valid":
				want["committed"][r.shard]++
			case "duplicate":
				want["duplicate"][r.shard]++
				want["dedup"][r.shard]++
				k++
			case "invalid":
				want["rejected"][r.shard]++
				j++
			}
		}
		return want, n, k, j
	}
	want, n, k, j := tally()
	if n != 242 || k != 30 || j != 12 {
		t.Fatalf("sent N=%v k=%v j=%v, want 242/30/12", n, k, j)
	}
	t.Logf("sent N=%v records: %v duplicates, %v invalid, to shards %v", n, k, j, want["read"])

	waitFor(t, 60*time.Second, "every record read and accounted for", func() bool {
		fams, _ := reg.Gather()
		return total(familyValues(fams, "paystream_ingest_records_read_total")) == n &&
			total(familyValues(fams, "paystream_ingest_records_committed_total")) == n-k-j &&
			total(familyValues(fams, "paystream_ingest_records_rejected_total")) == j &&
			total(familyValues(fams, "paystream_dedup_duplicates_total")) == k
	})
	// Nothing may be counted twice by later flushes and commits. Rather than
	// wait a while and hope some happened, send three more rounds of new
	// events and wait until each is committed: three more commits, and the
	// flushes between them, are then behind us, and the exact comparisons
	// below fail if any of them counted an earlier record again.
	sinkCommits := func() float64 {
		fams, _ := reg.Gather()
		return total(familyValues(fams, "paystream_sink_commits_total"))
	}
	commitsBefore := sinkCommits()
	for round := range 3 {
		send(10, 0, 0, 0)
		want, n, k, j = tally()
		waitFor(t, 60*time.Second, fmt.Sprintf("round %d of later events committed", round+1), func() bool {
			fams, _ := reg.Gather()
			return total(familyValues(fams, "paystream_ingest_records_read_total")) >= n &&
				total(familyValues(fams, "paystream_ingest_records_committed_total")) >= n-k-j
		})
	}
	if c := sinkCommits(); c < commitsBefore+3 {
		t.Fatalf("%v commits after the first records were accounted for, want at least 3", c-commitsBefore)
	}

	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	compare := func(name string, want map[string]float64) {
		t.Helper()
		for s, v := range want {
			if v == 0 && name != "paystream_dedup_duplicates_total" {
				delete(want, s) // counters get a series at their first increment
			}
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(expectedText(fams, name, want)), name); err != nil {
			t.Errorf("%s:\n%v", name, err)
		}
	}
	compare("paystream_ingest_records_read_total", want["read"])
	compare("paystream_ingest_records_committed_total", want["committed"])
	compare("paystream_ingest_records_rejected_total", want["rejected"])
	compare("paystream_dedup_duplicates_total", want["dedup"])
	if got := familyValues(fams, "paystream_ingest_records_duplicate_total"); total(got) == 0 {
		t.Errorf("paystream_ingest_records_duplicate_total reads 0 after %v duplicates: "+
			"the pipeline does not call Metrics.duplicated after a commit (pkg/ingest/pipeline.go flush)", k)
	} else {
		compare("paystream_ingest_records_duplicate_total", want["duplicate"])
	}
	compare("paystream_sink_rows_committed_total", map[string]float64{"": n - k - j})
	compare("paystream_deadletter_records_total", map[string]float64{"": j})
	// Every committed row was observed once in the freshness histogram, and
	// batches hold exactly the committed rows.
	if c := familyValues(fams, "paystream_ingest_freshness_seconds")[""]; c != n-k-j {
		t.Errorf("freshness histogram holds %v observations, want %v (one per committed row)", c, n-k-j)
	}
	if sum := histogramSum(fams, "paystream_ingest_batch_rows"); sum != n-k-j {
		t.Errorf("paystream_ingest_batch_rows sums to %v rows, want %v", sum, n-k-j)
	}
	if held := familyValues(fams, "paystream_lease_held")[""]; held != 2 {
		t.Errorf("paystream_lease_held = %v, want 2 (one worker, two shards)", held)
	}
	// The demo's report reads the same numbers.
	rep := promreport.Build(promreport.Snapshot{}, promreport.FromFamilies(fams), 0)
	if rep.Read != n || rep.Committed != n-k-j || rep.Rejected != j || rep.Duplicates != k || rep.DeadLetters != j || rep.FreshnessCount != n-k-j {
		t.Errorf("metrics-report: read %v committed %v rejected %v duplicates %v dead letters %v freshness count %v; want %v %v %v %v %v %v",
			rep.Read, rep.Committed, rep.Rejected, rep.Duplicates, rep.DeadLetters, rep.FreshnessCount, n, n-k-j, j, k, j, n-k-j)
	}
	behind := familyValues(fams, "paystream_ingest_behind_latest_seconds")
	if len(behind) != 2 {
		t.Errorf("behind-latest series for %d shards, want 2: %v", len(behind), behind)
	}
	stop()
}

func histogramSum(fams []*dto.MetricFamily, name string) float64 {
	for _, f := range fams {
		if f.GetName() == name && len(f.Metric) == 1 && f.Metric[0].Histogram != nil {
			return f.Metric[0].Histogram.GetSampleSum()
		}
	}
	return -1
}

// waitFor polls cond every 100 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		<-tick.C
	}
}

// BenchmarkConsumerFreshnessDemoLoad runs the demo's load — the producer
// at 500 events/s into 2 shards of moto — through the consumer with its
// default flush interval and idle poll, and reports the freshness
// histogram's p50/p99 (Kinesis arrival to commit) and committed events/s.
// One iteration takes about 30 s (PAYSTREAM_BENCH_DURATION overrides).
//
//	go test ./cmd/consumer -run '^$' -bench ConsumerFreshnessDemoLoad -benchtime 1x
func BenchmarkConsumerFreshnessDemoLoad(b *testing.B) {
	duration := 30 * time.Second
	if v := os.Getenv("PAYSTREAM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PAYSTREAM_BENCH_DURATION: %v", err)
		}
		duration = d
	}
	s := newMetricsStack(b, 2)
	ctx := context.Background()
	reg, stop := s.startConsumer(nil) // the service's defaults, as make demo runs it
	var committed float64
	var elapsed time.Duration
	seed := uint64(1)
	for b.Loop() {
		cfg := producer.DefaultConfig()
		cfg.Stream, cfg.Rate, cfg.Duration, cfg.Concurrency, cfg.Seed = s.stream, 500, duration, 1, seed
		cfg.DuplicateRate, cfg.InvalidRate = 0.02, 0.01
		cfg.Logger = slog.New(slog.DiscardHandler)
		seed++
		start := time.Now()
		sum, err := producer.Run(ctx, cfg, s.kin, io.Discard, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		committed += float64(sum.UniqueEventIDs)
		deadline := time.Now().Add(60 * time.Second)
		for {
			fams, _ := reg.Gather()
			if total(familyValues(fams, "paystream_ingest_records_committed_total")) >= committed {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("not every event committed within 60 s of the producer's end")
			}
			time.Sleep(100 * time.Millisecond)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	snap := promreport.FromFamilies(fams)
	h := snap.Histogram("paystream_ingest_freshness_seconds")
	p50, _ := quantile.Buckets(0.5, h)
	p90, _ := quantile.Buckets(0.9, h)
	p99, _ := quantile.Buckets(0.99, h)
	b.ReportMetric(p50, "freshness-p50-s")
	b.ReportMetric(p90, "freshness-p90-s")
	b.ReportMetric(p99, "freshness-p99-s")
	b.ReportMetric(committed/elapsed.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
	b.Logf("freshness buckets (le: cumulative count): %v", h)
	stop()
}
