package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

var (
	prometheusDir   = filepath.Join(repoRoot, "deploy", "prometheus")
	alertsFile      = filepath.Join(prometheusDir, "alerts.yml")
	alertsTestFile  = filepath.Join(prometheusDir, "alerts_test.yml")
	scrapeFile      = filepath.Join(prometheusDir, "prometheus.yml")
	metricsListFile = filepath.Join(repoRoot, "deploy", "testdata", "consumer-metrics.txt")
)

// consumerJob is the scrape job of the consumer in prometheus.yml and on AWS;
// the alerts select it.
const consumerJob = "paystream-consumer"

// --- promtool ------------------------------------------------------------------------------------

// promtool returns the path of Prometheus's promtool. Without it the test is
// skipped, except under CI (env CI set), which installs it: there a missing
// promtool fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		const how = "make deps installs it (scripts/ensure-promtool.sh: Debian's prometheus package ships it)"
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool not found on PATH; CI must install it: %s", how)
		}
		t.Skipf("promtool not found on PATH, so the Prometheus rules and dashboard queries are not checked; %s", how)
	}
	return p
}

// runPromtool runs promtool in dir and returns its output.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	return run(t, 2*time.Minute, dir, os.Environ(), promtool(t), args...)
}

// checkAlertFiles runs what guards the rules in dir (alerts.yml beside
// alerts_test.yml): `promtool check rules` (syntax, types, templates), then
// `promtool test rules` (the unit tests). It returns the step that failed.
func checkAlertFiles(t *testing.T, dir string) (step, out string, err error) {
	t.Helper()
	if out, err := runPromtool(t, dir, "check", "rules", "alerts.yml"); err != nil {
		return "check rules", out, err
	}
	if out, err := runPromtool(t, dir, "test", "rules", "alerts_test.yml"); err != nil {
		return "test rules", out, err
	}
	return "", "", nil
}

// --- the consumer's metrics ----------------------------------------------------------------------

// consumerMetric is one line of metricsListFile: a metric's type and labels.
type consumerMetric struct {
	typ    string
	labels []string // without job, instance, le and quantile
}

// loadMetricsList reads metricsListFile, the consumer's metrics as its
// registry describes them (kept true by cmd/consumer's TestConsumerMetricsList).
func loadMetricsList(t *testing.T) map[string]consumerMetric {
	t.Helper()
	raw, err := os.ReadFile(metricsListFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]consumerMetric{}
	for i, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			t.Fatalf("%s:%d: want name, type and labels", metricsListFile, i+1)
		}
		out[f[0]] = consumerMetric{typ: f[1], labels: f[2:]}
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no metric", metricsListFile)
	}
	return out
}

// seriesLabels returns the label names a series of this name carries on a
// scrape of the consumer, besides job and instance: the metric's labels, and
// le or quantile where the name is a histogram's bucket or a summary's
// quantile. An error says why no consumer series has this name.
func seriesLabels(metrics map[string]consumerMetric, name string) ([]string, error) {
	if m, ok := metrics[name]; ok {
		switch m.typ {
		case "histogram":
			return nil, fmt.Errorf("%s is a histogram: its series are %[1]s_bucket, %[1]s_sum and %[1]s_count", name)
		case "summary":
			return append(slices.Clone(m.labels), "quantile"), nil
		}
		return m.labels, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		m, ok := metrics[base]
		switch {
		case !ok:
			continue
		case suffix == "_bucket" && m.typ == "histogram":
			return append(slices.Clone(m.labels), "le"), nil
		case suffix != "_bucket" && (m.typ == "histogram" || m.typ == "summary"):
			return m.labels, nil
		default:
			return nil, fmt.Errorf("%s: %s is a %s, it has no %s series", name, base, m.typ, suffix)
		}
	}
	return nil, fmt.Errorf("%s is not a consumer metric (%s)", name, metricsListFile)
}

// selectorRE reads a promtool input series: name{label="value", ...}.
var (
	selectorRE = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$`)
	matcherRE  = regexp.MustCompile(`\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)
)

// parseSeries splits a promtool input series into its name and labels.
func parseSeries(s string) (string, map[string]string, error) {
	m := selectorRE.FindStringSubmatch(s)
	if m == nil {
		return "", nil, fmt.Errorf("cannot read series %q", s)
	}
	labels := map[string]string{}
	rest := strings.TrimSpace(m[2])
	for rest != "" {
		lm := matcherRE.FindStringSubmatchIndex(rest)
		if lm == nil || lm[0] != 0 {
			return "", nil, fmt.Errorf("cannot read the labels of series %q at %q", s, rest)
		}
		labels[rest[lm[2]:lm[3]]] = rest[lm[4]:lm[5]]
		rest = strings.TrimSpace(rest[lm[1]:])
	}
	return m[1], labels, nil
}

// --- the rule files ------------------------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTestFile is the part of a promtool unit-test file the coverage check reads.
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

type scrapeConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName string `yaml:"job_name"`
	} `yaml:"scrape_configs"`
}

// decodeYAML decodes a file; strict, an unknown or misspelt key is an error.
func decodeYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// --- tests ---------------------------------------------------------------------------------------

// TestAlertRules runs Prometheus's own checks: `promtool check rules` on
// alerts.yml, `promtool check config` on prometheus.yml (which loads it), and
// `promtool test rules` on alerts_test.yml, where every alert has a series
// set on which it fires with the expected labels and annotations and one on
// which it stays quiet.
func TestAlertRules(t *testing.T) {
	promtool(t)
	if step, out, err := checkAlertFiles(t, prometheusDir); err != nil {
		t.Fatalf("promtool %s: %v\n%s", step, err, out)
	}
	if out, err := runPromtool(t, prometheusDir, "check", "config", "prometheus.yml"); err != nil {
		t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
}

// TestAlertRulesConventions checks what promtool does not: every rule is an
// alert with a unique name, a severity people route on, a summary and a
// description; the five conditions the alerts were written for are there;
// prometheus.yml loads the rules and scrapes the job they select.
func TestAlertRulesConventions(t *testing.T) {
	var rules ruleFile
	decodeYAML(t, alertsFile, &rules, true)
	seen := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		if g.Name == "" {
			t.Errorf("%s: a group has no name", alertsFile)
		}
		for _, r := range g.Rules {
			n++
			switch {
			case r.Alert == "":
				t.Errorf("%s: group %s: rule %d is not an alert (record: %q)", alertsFile, g.Name, n, r.Record)
				continue
			case seen[r.Alert]:
				t.Errorf("%s: alert %s defined twice", alertsFile, r.Alert)
			}
			seen[r.Alert] = true
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: %s: for %q: %v", alertsFile, r.Alert, r.For, err)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: %s: severity %q, want warning or critical", alertsFile, r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: %s: needs summary and description annotations", alertsFile, r.Alert)
			}
		}
	}
	for _, want := range []string{"PaystreamShardBehindLatest", "PaystreamFreshnessP99High", "PaystreamRejectRateHigh", "PaystreamNoCommit", "PaystreamLeaseChurn"} {
		if !seen[want] {
			t.Errorf("%s: alert %s missing", alertsFile, want)
		}
	}

	var sc scrapeConfig
	decodeYAML(t, scrapeFile, &sc, false)
	if !slices.Contains(sc.RuleFiles, filepath.Base(alertsFile)) {
		t.Errorf("%s: rule_files does not load %s", scrapeFile, filepath.Base(alertsFile))
	}
	var jobs []string
	for _, s := range sc.ScrapeConfigs {
		jobs = append(jobs, s.JobName)
	}
	if !slices.Contains(jobs, consumerJob) {
		t.Errorf("%s: no %s job (have %v); the alerts select job=%q", scrapeFile, consumerJob, jobs, consumerJob)
	}
}

// alertCoverage checks a unit-test file against the rules: every alert has
// a test in which it fires and a test in which it stays quiet throughout;
// every test names an alert that exists (promtool passes a test of an alert
// that is not there, since nothing fires); and the input series are the
// consumer's (or Prometheus's up), with the labels a scrape gives them, so
// a test cannot pass on series the consumer never exports.
func alertCoverage(rules ruleFile, tests ruleTestFile, metrics map[string]consumerMetric) []string {
	var problems []string
	fires, quiet := map[string][]string{}, map[string][]string{}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
		}
	}
	for _, tc := range tests.Tests {
		if tc.Name == "" {
			problems = append(problems, "a test has no name")
		}
		firing := map[string]bool{}
		for _, at := range tc.AlertRuleTests {
			if !alerts[at.Alertname] {
				problems = append(problems, fmt.Sprintf("test %q: no alert %q in the rules", tc.Name, at.Alertname))
			}
			if _, ok := firing[at.Alertname]; !ok {
				firing[at.Alertname] = false
			}
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname] = true
				for _, a := range at.ExpAlerts {
					if a.ExpAnnotations["summary"] == "" || a.ExpAnnotations["description"] == "" {
						problems = append(problems, fmt.Sprintf("test %q: %s at %s: expect its summary and description too", tc.Name, at.Alertname, at.EvalTime))
					}
				}
			}
		}
		for a, f := range firing {
			if f {
				fires[a] = append(fires[a], tc.Name)
			} else {
				quiet[a] = append(quiet[a], tc.Name)
			}
		}
		for _, in := range tc.InputSeries {
			name, labels, err := parseSeries(in.Series)
			if err != nil {
				problems = append(problems, fmt.Sprintf("test %q: %v", tc.Name, err))
				continue
			}
			want := []string{"instance", "job"}
			if name != "up" {
				l, err := seriesLabels(metrics, name)
				if err != nil {
					problems = append(problems, fmt.Sprintf("test %q: %v", tc.Name, err))
					continue
				}
				want = append(want, l...)
				if labels["job"] != consumerJob {
					problems = append(problems, fmt.Sprintf("test %q: %s has job %q; the consumer is scraped as job %q", tc.Name, in.Series, labels["job"], consumerJob))
				}
			}
			slices.Sort(want)
			var got []string
			for l := range labels {
				got = append(got, l)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				problems = append(problems, fmt.Sprintf("test %q: %s has labels %v; a scrape of the consumer gives %v", tc.Name, in.Series, got, want))
			}
		}
	}
	var names []string
	for a := range alerts {
		names = append(names, a)
	}
	slices.Sort(names)
	for _, a := range names {
		if len(fires[a]) == 0 {
			problems = append(problems, fmt.Sprintf("alert %s: no test in which it fires", a))
		}
		if len(quiet[a]) == 0 {
			problems = append(problems, fmt.Sprintf("alert %s: no test in which it stays quiet", a))
		}
	}
	return problems
}

// TestAlertUnitTestsCoverEveryAlert: see alertCoverage.
func TestAlertUnitTestsCoverEveryAlert(t *testing.T) {
	var rules ruleFile
	decodeYAML(t, alertsFile, &rules, true)
	var tests ruleTestFile
	decodeYAML(t, alertsTestFile, &tests, false)
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(alertsFile)}) {
		t.Errorf("%s: rule_files %v, want [%s]", alertsTestFile, tests.RuleFiles, filepath.Base(alertsFile))
	}
	for _, p := range alertCoverage(rules, tests, loadMetricsList(t)) {
		t.Errorf("%s: %s", alertsTestFile, p)
	}
}

// TestAlertCoverageCatchesGaps: the coverage check fails on the gaps it is
// there for.
func TestAlertCoverageCatchesGaps(t *testing.T) {
	metrics := loadMetricsList(t)
	load := func(t *testing.T, rulesSrc, testsSrc string) (ruleFile, ruleTestFile) {
		var r ruleFile
		var tf ruleTestFile
		if err := yaml.Unmarshal([]byte(rulesSrc), &r); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal([]byte(testsSrc), &tf); err != nil {
			t.Fatal(err)
		}
		return r, tf
	}
	rules := `
groups:
  - name: g
    rules:
      - alert: A
        expr: paystream_lease_held > 10
`
	good := `
tests:
  - name: fires
    input_series:
      - series: 'paystream_lease_held{job="paystream-consumer", instance="w:9090"}'
        values: '20x5'
    alert_rule_test:
      - eval_time: 5m
        alertname: A
        exp_alerts:
          - exp_labels: {}
            exp_annotations: {summary: s, description: d}
  - name: quiet
    input_series:
      - series: 'paystream_lease_held{job="paystream-consumer", instance="w:9090"}'
        values: '1x5'
    alert_rule_test:
      - eval_time: 5m
        alertname: A
        exp_alerts: []
`
	tests := []struct{ name, old, new, want string }{
		{"good", "", "", ""},
		{"never fires", "exp_alerts:\n          - exp_labels: {}\n            exp_annotations: {summary: s, description: d}", "exp_alerts: []", "no test in which it fires"},
		{"never quiet", "      - eval_time: 5m\n        alertname: A\n        exp_alerts: []", "", "no test in which it stays quiet"},
		{"unknown alert", "alertname: A\n        exp_alerts: []", "alertname: B\n        exp_alerts: []", `no alert "B"`},
		{"misspelt metric", "values: '1x5'", "values: '1x5'\n      - series: 'paystream_lease_hold{job=\"paystream-consumer\", instance=\"w:9090\"}'\n        values: '1x5'", "not a consumer metric"},
		{"missing shard label", "values: '1x5'", "values: '1x5'\n      - series: 'paystream_ingest_records_read_total{job=\"paystream-consumer\", instance=\"w:9090\"}'\n        values: '1x5'", "a scrape of the consumer gives [instance job shard]"},
		{"histogram base name", "values: '1x5'", "values: '1x5'\n      - series: 'paystream_ingest_freshness_seconds{job=\"paystream-consumer\", instance=\"w:9090\"}'\n        values: '1x5'", "is a histogram"},
		{"wrong job", `job="paystream-consumer", instance="w:9090"}'
        values: '1x5'`, `job="consumer", instance="w:9090"}'
        values: '1x5'`, `the consumer is scraped as job "paystream-consumer"`},
		{"no annotations", "exp_annotations: {summary: s, description: d}", "exp_annotations: {}", "expect its summary and description"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := good
			if tt.old != "" {
				if strings.Count(src, tt.old) != 1 {
					t.Fatalf("fixture has %q %d times, want once", tt.old, strings.Count(src, tt.old))
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			r, tf := load(t, rules, src)
			got := strings.Join(alertCoverage(r, tf, metrics), "; ")
			if tt.want == "" && got != "" {
				t.Fatalf("good tests: problems %s", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Fatalf("problems = %q; want one containing %q", got, tt.want)
			}
		})
	}
}

// TestPromtoolRejectsBrokenRules: copies of the rules with one alert broken
// fail `make test`: a syntax error fails promtool check rules; an alert that
// parses but would never fire, or would fire on the wrong series or too
// early, fails its unit test. The unbroken copy passes, so each failure is
// the break's.
func TestPromtoolRejectsBrokenRules(t *testing.T) {
	promtool(t)
	orig, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string
		step     string // the promtool step that must fail; "" for none
		mention  string // what its output must name
	}{
		{name: "unchanged"},
		{
			name: "syntax error", step: "check rules", mention: "parse error",
			old: "max by (shard) (paystream_ingest_behind_latest_seconds) > 60",
			new: "max by (shard) (paystream_ingest_behind_latest_seconds > 60",
		},
		{
			name: "unknown function", step: "check rules", mention: "unknown function",
			old: "sum(rate(paystream_lease_lost_total[10m]))",
			new: "sum(rat(paystream_lease_lost_total[10m]))",
		},
		{
			name: "bad template", step: "check rules", mention: "PaystreamFlushFailing",
			old: `"{{ $labels.instance }} keeps failing to commit micro-batches"`,
			new: `"{{ $labels.instance keeps failing to commit micro-batches"`,
		},
		{
			// Parses, so check rules passes; the alert never fires.
			name: "misspelt metric", step: "test rules", mention: "PaystreamLeaseRenewFailing",
			old: "increase(paystream_lease_renew_failures_total[5m])",
			new: "increase(paystream_lease_renew_failure_total[5m])",
		},
		{
			// Summing the workers away: "and" no longer matches per worker.
			name: "worker label aggregated away", step: "test rules", mention: "PaystreamNoCommit",
			old: "sum without (shard) (increase(paystream_ingest_records_read_total[5m]))",
			new: "sum(increase(paystream_ingest_records_read_total[5m]))",
		},
		{
			name: "shard label lost", step: "test rules", mention: "PaystreamShardBehindLatest",
			old: "max by (shard) (paystream_ingest_behind_latest_seconds) > 60",
			new: "max(paystream_ingest_behind_latest_seconds) > 60",
		},
		{
			name: "wrong job", step: "test rules", mention: "PaystreamConsumerDown",
			old: `up{job="paystream-consumer"} == 0`,
			new: `up{job="paystream_consumer"} == 0`,
		},
		{
			name: "threshold never reached", step: "test rules", mention: "PaystreamFlushFailing",
			old: "increase(paystream_ingest_flush_failures_total[10m]) > 3",
			new: "increase(paystream_ingest_flush_failures_total[10m]) > 30",
		},
		{
			// Fires on the quiet test's 0.5% rejects.
			name: "threshold too low", step: "test rules", mention: "PaystreamRejectRateHigh",
			old: "> 0.01",
			new: "> 0.001",
		},
		{
			// Fires during the spike the quiet test says is tolerated.
			name: "no for", step: "test rules", mention: "PaystreamLeasesLostContinuously",
			old: "expr: sum(rate(paystream_lease_lost_total[10m])) > 0\n        for: 30m",
			new: "expr: sum(rate(paystream_lease_lost_total[10m])) > 0\n        for: 0m",
		},
		{
			name: "wrong annotation", step: "test rules", mention: "PaystreamLeaseChurn",
			old: "{{ $value | humanize }} takes in 30 min",
			new: "{{ $value | humanizePercentage }} takes in 30 min",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := string(orig)
			if tt.old != "" {
				if n := strings.Count(src, tt.old); n != 1 {
					t.Fatalf("%s has %q %d times, want once; update this test with the rules", alertsFile, tt.old, n)
				}
				src = strings.Replace(src, tt.old, tt.new, 1)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := copyFile(alertsTestFile, filepath.Join(dir, "alerts_test.yml")); err != nil {
				t.Fatal(err)
			}
			step, out, err := checkAlertFiles(t, dir)
			switch {
			case tt.step == "" && err != nil:
				t.Fatalf("unchanged rules: promtool %s failed: %v\n%s", step, err, out)
			case tt.step == "":
			case err == nil:
				t.Fatalf("promtool passed the broken rules (%q → %q)", tt.old, tt.new)
			case step != tt.step:
				t.Fatalf("promtool %s failed, want %s to:\n%s", step, tt.step, out)
			case !strings.Contains(out, tt.mention):
				t.Fatalf("promtool %s output does not mention %q:\n%s", step, tt.mention, out)
			}
		})
	}
}
