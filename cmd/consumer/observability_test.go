package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/paystream/paystream/pkg/iceberg"
)

// metricsListFile lists the consumer's metrics for the tests in deploy/: the
// Prometheus alert rules' unit tests and the Grafana dashboard's queries are
// checked there, by promtool, against series built from this list.
const metricsListFile = "../../deploy/testdata/consumer-metrics.txt"

var updateMetricsList = flag.Bool("update", false, "rewrite "+metricsListFile+" from the consumer's registry")

// recordingRegisterer passes registrations on and remembers the collectors,
// so the test can list every metric the consumer describes, including
// vectors that have no series until a label value is used.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// newConsumerRegistry builds the registry as run does: Go and process
// collectors, then everything buildService registers.
func newConsumerRegistry(t testing.TB, cfg serviceConfig, log *slog.Logger) (*prometheus.Registry, *recordingRegisterer, *service) {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := buildService(context.Background(), cfg, log, rec)
	if err != nil {
		t.Fatalf("buildService: %v", err)
	}
	t.Cleanup(svc.close)
	return reg, rec, svc
}

// localServiceConfig is the consumer's default configuration with a
// SQLite catalog and file warehouse under dir.
func localServiceConfig(dir, stream string) serviceConfig {
	c := defaultServiceConfig()
	c.Stream = stream
	c.LeaseTable = "paystream-observability-test"
	c.WorkerID = "obs-test-worker"
	c.Catalog.Catalog = "sqlite:" + filepath.Join(dir, "catalog.db")
	c.Catalog.Warehouse = "file://" + filepath.Join(dir, "warehouse")
	c.Catalog.Table = iceberg.DefaultTable
	c.MaintenanceInterval = 0
	return c
}

// metricInfo is one metric as the consumer's registry has it.
type metricInfo struct {
	// typ is the type a scrape reports (counter, gauge, histogram,
	// summary), or untyped when the registry cannot tell: a collector other
	// than a vector that has no series before the first shard is read.
	typ string
	// labels are the labels of its series, sorted, without the job and
	// instance a scrape adds and without a histogram's le or a summary's
	// quantile.
	labels []string
}

// String is the metric's line in metricsListFile, after its name.
func (m metricInfo) String() string { return strings.Join(append([]string{m.typ}, m.labels...), " ") }

// descRE reads a prometheus.Desc's String(): its name and variable labels
// (c(name) for a constrained label).
var descRE = regexp.MustCompile(`^Desc\{fqName: "([^"]+)",.*variableLabels: \{([^}]*)\}\}$`)

// listConsumerMetrics builds the consumer's registry as run does and lists
// every metric it describes, including vectors that have no series yet.
func listConsumerMetrics(t *testing.T) map[string]metricInfo {
	t.Helper()
	// buildService only builds clients; nothing here talks to AWS.
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg := localServiceConfig(t.TempDir(), "payments")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg, rec, _ := newConsumerRegistry(t, cfg, slog.New(slog.DiscardHandler))

	out := map[string]metricInfo{}
	for _, c := range rec.collectors {
		typ := "untyped"
		switch c.(type) {
		case *prometheus.CounterVec:
			typ = "counter"
		case *prometheus.GaugeVec:
			typ = "gauge"
		case *prometheus.HistogramVec:
			typ = "histogram"
		case *prometheus.SummaryVec:
			typ = "summary"
		}
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			match := descRE.FindStringSubmatch(d.String())
			if match == nil {
				t.Fatalf("cannot read the name and labels of %s", d)
			}
			var labels []string
			for _, l := range strings.Split(match[2], ",") {
				if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
					labels = append(labels, l)
				}
			}
			slices.Sort(labels)
			out[match[1]] = metricInfo{typ: typ, labels: labels}
		}
	}
	// Families with series say their type and labels exactly.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		var labels []string
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !slices.Contains(labels, lp.GetName()) {
					labels = append(labels, lp.GetName())
				}
			}
		}
		slices.Sort(labels)
		out[f.GetName()] = metricInfo{typ: strings.ToLower(f.GetType().String()), labels: labels}
	}
	return out
}

const metricsListHeader = `# The consumer's metrics as its registry describes them, one a line:
#   name type label...
# type is what a scrape reports, or untyped for a collector whose metrics have
# no series until a shard is read; the labels leave out job and instance (added
# by the scrape), le and quantile.
#
# The tests in deploy/ build promtool series from this list to run the alert
# rules' unit tests and the Grafana dashboard's queries against. It is written
# by
#   go test ./cmd/consumer -run '^TestConsumerMetricsList$' -update
# and that test, run without -update, fails when a metric listed here is gone
# or has changed. A metric the consumer gained need not be listed until the
# dashboard or the alerts use it.
`

// TestConsumerMetricsList: every metric in metricsListFile is registered by
// the consumer, with that type and those labels. The deploy/ tests check the
// dashboard and the alert rules against the list, so renaming a metric, or
// changing its type or labels, fails here until the list is rewritten (-update),
// and then there, until the dashboard and alerts follow.
func TestConsumerMetricsList(t *testing.T) {
	got := listConsumerMetrics(t)
	if *updateMetricsList {
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		slices.Sort(names)
		var b strings.Builder
		b.WriteString(metricsListHeader)
		for _, n := range names {
			fmt.Fprintf(&b, "%s %s\n", n, got[n])
		}
		if err := os.WriteFile(metricsListFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d metrics to %s", len(names), metricsListFile)
		return
	}
	raw, err := os.ReadFile(metricsListFile)
	if err != nil {
		t.Fatalf("%v (write it with: go test ./cmd/consumer -run '^TestConsumerMetricsList$' -update)", err)
	}
	listed := 0
	for i, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		listed++
		name, rest, _ := strings.Cut(line, " ")
		m, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s:%d: the consumer no longer registers %s", metricsListFile, i+1, name)
		case m.String() != rest:
			t.Errorf("%s:%d: %s is listed as %q; the consumer registers it as %q", metricsListFile, i+1, name, rest, m)
		}
	}
	if listed == 0 {
		t.Errorf("%s lists no metric", metricsListFile)
	}
	if t.Failed() {
		t.Logf("if the change is meant, rewrite the list with: go test ./cmd/consumer -run '^TestConsumerMetricsList$' -update\n" +
			"then go test ./deploy/ says which alert tests or dashboard queries must follow")
	}
}
