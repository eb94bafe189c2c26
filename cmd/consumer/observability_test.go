package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/paystream/paystream/pkg/iceberg"
)

// The operator-facing files whose metric names must match the consumer's.
const (
	dashboardFile = "../../deploy/grafana/paystream.json"
	alertsFile    = "../../deploy/prometheus/alerts.yml"
	scrapeFile    = "../../deploy/prometheus/prometheus.yml"
)

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

// consumerMetrics is what the consumer's registry offers: every described
// metric name, and the type of every family that has series.
type consumerMetrics struct {
	described map[string]bool
	types     map[string]dto.MetricType
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

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

func listConsumerMetrics(t *testing.T) consumerMetrics {
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

	m := consumerMetrics{described: map[string]bool{}, types: map[string]dto.MetricType{}}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			match := fqNameRE.FindStringSubmatch(d.String())
			if match == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			m.described[match[1]] = true
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		m.described[f.GetName()] = true
		m.types[f.GetName()] = f.GetType()
	}
	return m
}

// resolve says whether a series name used in PromQL exists in the
// registry: a metric name, or a histogram's _bucket/_sum/_count, or a
// summary's _sum/_count.
func (m consumerMetrics) resolve(name string) error {
	if m.described[name] {
		return nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok || !m.described[base] {
			continue
		}
		typ, known := m.types[base]
		switch {
		case !known:
			return fmt.Errorf("%s: cannot tell whether %s is a histogram (no series gathered)", name, base)
		case typ == dto.MetricType_HISTOGRAM, typ == dto.MetricType_SUMMARY && suffix != "_bucket":
			return nil
		default:
			return fmt.Errorf("%s: %s is a %s, it has no %s series", name, base, typ, suffix)
		}
	}
	return fmt.Errorf("%s is not a consumer metric", name)
}

// grafanaVars are substituted before checking dashboard expressions, as
// Grafana would.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"${worker_label}", "instance",
	"$worker_label", "instance",
)

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // collapsed rows
}

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

type scrapeConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// decodeYAML decodes strictly: an unknown or misspelt key is an error.
func decodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardExprs returns every PromQL expression of the dashboard with
// where it is, after checking the panels' shape.
func dashboardExprs(t *testing.T, d grafanaDashboard) map[string]string {
	t.Helper()
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: title and uid must be set", dashboardFile)
	}
	exprs := map[string]string{}
	ids := map[int]string{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("%s: panel id %d used by %q and %q", dashboardFile, p.ID, prev, p.Title)
			}
			ids[p.ID] = p.Title
			if p.Title == "" {
				t.Errorf("%s: panel %d has no title", dashboardFile, p.ID)
			}
			if g := p.GridPos; g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 {
				t.Errorf("%s: %s: gridPos %+v outside the 24-column grid", dashboardFile, where, g)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s: %s: datasource must be the ${datasource} variable", dashboardFile, where)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: %s has no query", dashboardFile, where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: %s: refId %q missing or repeated", dashboardFile, where, tg.RefID)
				}
				refs[tg.RefID] = true
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: %s: query %s is empty", dashboardFile, where, tg.RefID)
				}
				exprs[where+" query "+tg.RefID] = grafanaVars.Replace(tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if err := json.Unmarshal(v.Query, &s); err != nil {
				t.Errorf("%s: variable %s: query is neither a string nor an object", dashboardFile, v.Name)
			}
			q.Query = s
		}
		m := regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)$`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(metric, label)", dashboardFile, v.Name, q.Query)
			continue
		}
		exprs["variable "+v.Name] = m[1]
	}
	return exprs
}

// TestDashboardAndAlertsUseConsumerMetrics: every metric named in the
// Grafana dashboard and the Prometheus alert rules exists in the consumer's
// registry, built as the service builds it. A typo in a metric name, an
// unknown PromQL function, unbalanced brackets, malformed JSON or an unknown
// YAML key fails here.
func TestDashboardAndAlertsUseConsumerMetrics(t *testing.T) {
	reg := listConsumerMetrics(t)
	check := func(file, where, expr string, allowed ...string) {
		names, err := promqlMetricNames(expr)
		if err != nil {
			t.Errorf("%s: %s: %v\n  %s", file, where, err, expr)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: %s: no metric in %q", file, where, expr)
		}
		for _, n := range names {
			if slices.Contains(allowed, n) {
				continue
			}
			if err := reg.resolve(n); err != nil {
				t.Errorf("%s: %s: %v\n  %s", file, where, err, expr)
			}
		}
	}

	d := loadDashboard(t)
	exprs := dashboardExprs(t, d)
	if len(exprs) < 20 {
		t.Errorf("%s: only %d queries found; is the file truncated?", dashboardFile, len(exprs))
	}
	for where, e := range exprs {
		check(dashboardFile, where, e)
	}

	var rules ruleFile
	decodeYAML(t, alertsFile, &rules)
	seen := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		if g.Name == "" {
			t.Errorf("%s: a group has no name", alertsFile)
		}
		for _, r := range g.Rules {
			n++
			where := "alert " + r.Alert
			switch {
			case r.Alert == "":
				t.Errorf("%s: group %s: rule %d is not an alert (record: %q)", alertsFile, g.Name, n, r.Record)
			case seen[r.Alert]:
				t.Errorf("%s: alert %s defined twice", alertsFile, r.Alert)
			}
			seen[r.Alert] = true
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: %s: for %q: %v", alertsFile, where, r.For, err)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: %s: severity %q, want warning or critical", alertsFile, where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: %s: needs summary and description annotations", alertsFile, where)
			}
			// up is written by Prometheus itself for every scrape target.
			check(alertsFile, where, r.Expr, "up")
		}
	}
	// The five conditions are all covered.
	for _, want := range []string{"PaystreamShardBehindLatest", "PaystreamFreshnessP99High", "PaystreamRejectRateHigh", "PaystreamNoCommit", "PaystreamLeaseChurn"} {
		if !seen[want] {
			t.Errorf("%s: alert %s missing", alertsFile, want)
		}
	}

	var sc scrapeConfig
	decodeYAML(t, scrapeFile, &sc)
	for _, f := range sc.RuleFiles {
		if _, err := os.Stat(filepath.Join(filepath.Dir(scrapeFile), f)); err != nil {
			t.Errorf("%s: rule file %s: %v", scrapeFile, f, err)
		}
	}
	jobs := map[string]bool{}
	for _, s := range sc.ScrapeConfigs {
		jobs[s.JobName] = true
		for _, st := range s.StaticConfigs {
			if len(st.Targets) == 0 {
				t.Errorf("%s: job %s: static config without targets", scrapeFile, s.JobName)
			}
		}
	}
	if !jobs["paystream-consumer"] {
		t.Errorf("%s: no paystream-consumer job; the alerts select job=\"paystream-consumer\"", scrapeFile)
	}
}

// The checker must catch the mistakes it is there for; otherwise the test
// above could not fail.
func TestPromQLCheckerCatchesMistakes(t *testing.T) {
	reg := listConsumerMetrics(t)
	bad := map[string]string{
		"misspelt metric":           `sum(rate(paystream_ingest_records_comitted_total[5m]))`, //nolint:misspell // the typo is the test case
		"bucket of a counter":       `histogram_quantile(0.99, sum by (le) (rate(paystream_ingest_records_read_total_bucket[5m])))`,
		"histogram without _bucket": `histogram_quantile(0.99, sum by (le) (rate(paystream_ingest_freshness_seconds[5m])))`,
	}
	for name, expr := range bad {
		names, err := promqlMetricNames(expr)
		if err != nil {
			t.Errorf("%s: parse error %v; want a resolve error", name, err)
			continue
		}
		var failed bool
		for _, n := range names {
			if reg.resolve(n) != nil {
				failed = true
			}
		}
		// A histogram used without a suffix resolves (it is described) but is
		// not what histogram_quantile needs; the lint below catches that.
		if !failed && lintHistogramQuantile(expr) == nil {
			t.Errorf("%s: %q passed", name, expr)
		}
	}
	syntax := map[string]string{
		"unknown function":       `sum(rat(paystream_ingest_records_read_total[5m]))`,
		"unbalanced parenthesis": `sum(rate(paystream_ingest_records_read_total[5m])`,
		"stray closing bracket":  `paystream_lease_held}`,
		"unsubstituted variable": `sum(rate(paystream_ingest_records_read_total[$interval]))`,
		"unterminated string":    `paystream_lease_held{job="x}`,
		"empty":                  ` `,
	}
	for name, expr := range syntax {
		if _, err := promqlMetricNames(expr); err == nil {
			t.Errorf("%s: %q parsed without error", name, expr)
		}
	}
	good := map[string][]string{
		`sum by (shard) (rate(paystream_ingest_records_read_total{job=~"a|b", shard!="x"}[5m])) / on (shard) group_left sum by (shard) (x_total)`: {"paystream_ingest_records_read_total", "x_total"},
		`sum(paystream_lease_held) by (instance) > bool 2 * clamp_min(sum(up offset 5m), 1)`:                                                      {"paystream_lease_held", "up"},
		`histogram_quantile(0.99, sum without (shard) (rate(a_bucket[1h30m:1m])))`:                                                                {"a_bucket"},
		`time() - max(b > 0)`: {"b"},
	}
	for expr, want := range good {
		got, err := promqlMetricNames(expr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: got %v, %v; want %v", expr, got, err, want)
		}
	}
}

// TestDashboardQuantilesUseBuckets: histogram_quantile over a consumer
// histogram must read its _bucket series by le.
func TestDashboardQuantilesUseBuckets(t *testing.T) {
	exprs := dashboardExprs(t, loadDashboard(t))
	var rules ruleFile
	decodeYAML(t, alertsFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	for where, e := range exprs {
		if err := lintHistogramQuantile(e); err != nil {
			t.Errorf("%s: %v\n  %s", where, err, e)
		}
	}
}

// lintHistogramQuantile checks each histogram_quantile(q, v) of expr: v
// must select only _bucket series and aggregate by le.
func lintHistogramQuantile(expr string) error {
	const fn = "histogram_quantile("
	for rest := expr; ; {
		i := strings.Index(rest, fn)
		if i < 0 {
			return nil
		}
		rest = rest[i+len(fn):]
		depth, comma, end := 0, -1, -1
		for j := 0; j < len(rest) && end < 0; j++ {
			switch rest[j] {
			case '(', '{', '[':
				depth++
			case ')', '}', ']':
				if depth == 0 {
					end = j
				}
				depth--
			case ',':
				if depth == 0 && comma < 0 {
					comma = j
				}
			}
		}
		if comma < 0 || end < 0 {
			return fmt.Errorf("histogram_quantile without two arguments")
		}
		arg := rest[comma+1 : end]
		names, err := promqlMetricNames(arg)
		if err != nil {
			return err
		}
		for _, n := range names {
			if !strings.HasSuffix(n, "_bucket") {
				return fmt.Errorf("histogram_quantile over %s, want its _bucket series", n)
			}
		}
		if !regexp.MustCompile(`\bby\s*\([^)]*\ble\b`).MatchString(arg) {
			return fmt.Errorf("histogram_quantile must aggregate by (le)")
		}
	}
}

// promqlMetricNames returns the metric names an expression selects, in
// order of first use, after a lexical check: balanced brackets, closed
// strings, known functions and aggregations, no template variables left.
// It is deliberately small (the Prometheus parser would pull the whole
// Prometheus module into go.mod); it knows PromQL's grammar well enough to
// tell metric names from functions, keywords and label names.
func promqlMetricNames(expr string) ([]string, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("empty expression")
	}
	type open struct {
		ch     byte
		labels bool // a by/without/on/ignoring/group_x label list
	}
	var (
		stack        []open
		names        []string
		labelListNxt bool
	)
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	nextNonSpace := func(i int) byte {
		for ; i < len(expr); i++ {
			if c := expr[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return c
			}
		}
		return 0
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			i = j + 1
		case c == '$':
			return nil, fmt.Errorf("template variable left at offset %d: %q", i, expr[i:min(len(expr), i+20)])
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			j := i
			for j < len(expr) && (isIdent(expr[j]) || expr[j] == '.' ||
				(expr[j] == '-' || expr[j] == '+') && (expr[j-1] == 'e' || expr[j-1] == 'E')) {
				j++
			}
			i = j
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			id := expr[i:j]
			i = j
			top := open{}
			if len(stack) > 0 {
				top = stack[len(stack)-1]
			}
			lower := strings.ToLower(id)
			switch {
			case top.ch == '{' || top.labels || top.ch == '[':
				// label name, or part of a range/subquery
			case promqlLabelListKeywords[lower]:
				labelListNxt = nextNonSpace(i) == '('
			case promqlKeywords[lower]:
			case promqlAggregations[id] && (nextNonSpace(i) == '(' || followedByGrouping(expr[i:])):
			case nextNonSpace(i) == '(':
				if !promqlFunctions[id] {
					return nil, fmt.Errorf("unknown function or aggregation %q", id)
				}
			default:
				if !slices.Contains(names, id) {
					names = append(names, id)
				}
			}
		case c == '(' || c == '{' || c == '[':
			stack = append(stack, open{ch: c, labels: c == '(' && labelListNxt})
			labelListNxt = false
			i++
		case c == ')' || c == '}' || c == ']':
			want := map[byte]byte{')': '(', '}': '{', ']': '['}[c]
			if len(stack) == 0 || stack[len(stack)-1].ch != want {
				return nil, fmt.Errorf("unexpected %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
			i++
		case strings.IndexByte("+-*/%^=!<>~,:@", c) >= 0:
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q at offset %d", c, i)
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%d unclosed bracket(s), first %q", len(stack), stack[0].ch)
	}
	return names, nil
}

var promqlLabelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

var promqlAggregations = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields("sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio") {
		m[f] = true
	}
	return m
}()

var groupingRE = regexp.MustCompile(`^\s*(by|without)\s*\(`)

// followedByGrouping: "sum by (le) (...)" puts the grouping first.
func followedByGrouping(rest string) bool { return groupingRE.MatchString(rest) }

var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "start": true, "end": true,
}

var promqlFunctions = func() map[string]bool {
	m := map[string]bool{}
	for f := range promqlAggregations {
		m[f] = true
	}
	for _, f := range strings.Fields(`
		abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
		clamp_max clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week day_of_year
		deg delta deriv double_exponential_smoothing exp floor histogram_avg histogram_count
		histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
		holt_winters hour idelta increase info irate label_join label_replace last_over_time ln log10
		log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
		present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc
		sort_by_label sort_by_label_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
		time timestamp vector year`) {
		m[f] = true
	}
	return m
}()
