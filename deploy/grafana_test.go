package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var dashboardFile = filepath.Join(repoRoot, "deploy", "grafana", "paystream.json")

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
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

// dashboardQuery is one PromQL query of the dashboard.
type dashboardQuery struct {
	where  string // `panel 3 "Freshness" query A`, for people
	record string // the name of its recording rule in the generated rule file
	expr   string // with the dashboard's variables substituted, as Grafana sends it
}

// grafanaVarRE matches a variable reference: $name, ${name}, ${name:format}
// or the old [[name]].
var grafanaVarRE = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// dashboardVariables returns the value Grafana puts in for each variable:
// Grafana's own interval variables, and for the dashboard's, the "All"
// value where it has one (as a default selection of All sends), else the
// current value.
func dashboardVariables(d grafanaDashboard) map[string]string {
	vars := map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
	for _, v := range d.Templating.List {
		if v.IncludeAll && v.AllValue != "" {
			vars[v.Name] = v.AllValue
			continue
		}
		var s string
		if json.Unmarshal(v.Current.Value, &s) == nil && s != "" {
			vars[v.Name] = s
		}
	}
	return vars
}

// substitute puts the variables' values into expr; an unknown variable is
// an error.
func substitute(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := grafanaVarRE.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVarRE.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, ref)
			return ref
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variable %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

var recordNameRE = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// dashboardQueries returns every PromQL query of the dashboard (panel
// targets and the label_values queries of its variables), and what is wrong
// with the panels' shape.
func dashboardQueries(d grafanaDashboard) ([]dashboardQuery, []string) {
	var qs []dashboardQuery
	var problems []string
	if d.Title == "" || d.UID == "" {
		problems = append(problems, "title and uid must be set")
	}
	vars := dashboardVariables(d)
	add := func(where, record, expr string) {
		e, err := substitute(expr, vars)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			return
		}
		qs = append(qs, dashboardQuery{where: where, record: "dashboard:" + recordNameRE.ReplaceAllString(record, "_"), expr: e})
	}
	ids := map[int]string{}
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup {
				problems = append(problems, fmt.Sprintf("panel id %d used by %q and %q", p.ID, prev, p.Title))
			}
			ids[p.ID] = p.Title
			if p.Title == "" {
				problems = append(problems, fmt.Sprintf("panel %d has no title", p.ID))
			}
			if g := p.GridPos; g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 {
				problems = append(problems, fmt.Sprintf("%s: gridPos %+v outside the 24-column grid", where, g))
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				problems = append(problems, fmt.Sprintf("%s: datasource must be the ${datasource} variable", where))
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("%s has no query", where))
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					problems = append(problems, fmt.Sprintf("%s: refId %q missing or repeated", where, tg.RefID))
				}
				refs[tg.RefID] = true
				if strings.TrimSpace(tg.Expr) == "" {
					problems = append(problems, fmt.Sprintf("%s: query %s is empty", where, tg.RefID))
					continue
				}
				add(where+" query "+tg.RefID, fmt.Sprintf("panel_%d_%s", p.ID, tg.RefID), tg.Expr)
			}
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				problems = append(problems, fmt.Sprintf("variable %s: query is neither a string nor an object", v.Name))
				continue
			}
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			problems = append(problems, fmt.Sprintf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query))
			continue
		}
		add("variable "+v.Name, "variable_"+v.Name, m[1])
	}
	return qs, problems
}

// dashboardRules is a Prometheus rule file with one recording rule per
// query: `promtool check rules` on it parses every query with Prometheus's
// own parser.
func dashboardRules(qs []dashboardQuery) ([]byte, error) {
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	g := group{Name: "dashboard"}
	for _, q := range qs {
		g.Rules = append(g.Rules, rule{Record: q.record, Expr: q.expr})
	}
	return yaml.Marshal(map[string][]group{"groups": {g}})
}

// dashboardSeries returns a promtool input series set with one series of
// every consumer metric (a histogram's buckets, sum and count; a summary's
// quantile, sum and count), as one worker of job paystream-consumer exports
// them, all rising, plus up. Every label of a metric has a value.
func dashboardSeries(metrics map[string]consumerMetric) []map[string]string {
	labelValue := map[string]string{"shard": "shardId-000000000000", "reason": "time"}
	selector := func(name string, labels []string, extra ...string) string {
		parts := []string{`job="` + consumerJob + `"`, `instance="worker-a:9090"`}
		for _, l := range labels {
			v := labelValue[l]
			if v == "" {
				v = "x"
			}
			parts = append(parts, fmt.Sprintf("%s=%q", l, v))
		}
		return name + "{" + strings.Join(append(parts, extra...), ", ") + "}"
	}
	series := func(sel, values string) map[string]string { return map[string]string{"series": sel, "values": values} }
	out := []map[string]string{series(selector("up", nil), "1x15")}
	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		m := metrics[n]
		switch m.typ {
		case "histogram":
			out = append(out,
				series(selector(n+"_bucket", m.labels, `le="1"`), "0+1x15"),
				series(selector(n+"_bucket", m.labels, `le="+Inf"`), "0+2x15"),
				series(selector(n+"_sum", m.labels), "0+3x15"),
				series(selector(n+"_count", m.labels), "0+2x15"))
		case "summary":
			out = append(out,
				series(selector(n, m.labels, `quantile="0.5"`), "1x15"),
				series(selector(n+"_sum", m.labels), "0+1x15"),
				series(selector(n+"_count", m.labels), "0+1x15"))
		default:
			out = append(out, series(selector(n, m.labels), "1+1x15"))
		}
	}
	return out
}

// dashboardEvalTests is a promtool unit-test file that evaluates every
// query on dashboardSeries and expects data: absent(query) must be empty at
// 10 minutes. A query that names a metric the consumer does not have, reads
// a histogram without _bucket, drops le before histogram_quantile, or
// filters on a label value a scrape never has, returns nothing and fails.
func dashboardEvalTests(rulesFile string, qs []dashboardQuery, metrics map[string]consumerMetric) ([]byte, error) {
	type exprTest struct {
		Expr       string     `yaml:"expr"`
		EvalTime   string     `yaml:"eval_time"`
		ExpSamples []struct{} `yaml:"exp_samples"`
	}
	type test struct {
		Name           string              `yaml:"name"`
		Interval       string              `yaml:"interval"`
		InputSeries    []map[string]string `yaml:"input_series"`
		PromqlExprTest []exprTest          `yaml:"promql_expr_test"`
	}
	type file struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []test   `yaml:"tests"`
	}
	// One test: promtool names a failed promql_expr_test by its expression
	// only, and a test per query would load the series once per query.
	tc := test{Name: "every dashboard query returns data", Interval: "1m", InputSeries: dashboardSeries(metrics)}
	for _, q := range qs {
		tc.PromqlExprTest = append(tc.PromqlExprTest, exprTest{
			Expr:       evalExpr(q),
			EvalTime:   "10m",
			ExpSamples: []struct{}{},
		})
	}
	f := file{RuleFiles: []string{rulesFile}, EvaluationInterval: "1m", Tests: []test{tc}}
	return yaml.Marshal(f)
}

// evalExpr is what dashboardEvalTests evaluates for q: empty when q returns data.
func evalExpr(q dashboardQuery) string { return "absent(" + q.expr + ")" }

// noData returns the queries whose evaluation promtool's output reports as
// failed (it quotes the expression).
func noData(qs []dashboardQuery, out string) []string {
	var where []string
	for _, q := range qs {
		if strings.Contains(out, "expr: "+strconv.Quote(evalExpr(q))) {
			where = append(where, q.where)
		}
	}
	return where
}

// checkDashboardQueries writes the rule file and the unit-test file for qs
// into a temporary folder and runs `promtool check rules` and `promtool test
// rules` on them. It returns the step that failed.
func checkDashboardQueries(t *testing.T, qs []dashboardQuery, metrics map[string]consumerMetric) (step, out string, err error) {
	t.Helper()
	dir := t.TempDir()
	rules, err := dashboardRules(qs)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := dashboardEvalTests("dashboard-rules.yml", qs, metrics)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"dashboard-rules.yml": rules, "dashboard-rules_test.yml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := runPromtool(t, dir, "check", "rules", "dashboard-rules.yml"); err != nil {
		return "check rules", out, err
	}
	if out, err := runPromtool(t, dir, "test", "rules", "dashboard-rules_test.yml"); err != nil {
		if where := noData(qs, out); len(where) > 0 {
			out = "no data from: " + strings.Join(where, "; ") + "\n" + out
		}
		return "test rules", out, err
	}
	return "", "", nil
}

// TestDashboard checks the Grafana dashboard: the panels' shape (ids, grid,
// data source, queries), then every query with Prometheus's own parser and
// engine: `promtool check rules` on a rule file with one recording rule per
// query, and `promtool test rules` evaluating each on a series set built
// from the consumer's metrics (deploy/testdata/consumer-metrics.txt), where
// it must return data.
func TestDashboard(t *testing.T) {
	qs, problems := dashboardQueries(loadDashboard(t))
	for _, p := range problems {
		t.Errorf("%s: %s", dashboardFile, p)
	}
	if len(qs) < 20 {
		t.Errorf("%s: only %d queries found; is the file truncated?", dashboardFile, len(qs))
	}
	step, out, err := checkDashboardQueries(t, qs, loadMetricsList(t))
	if err != nil {
		t.Fatalf("%s: promtool %s on the dashboard's queries: %v\n%s", dashboardFile, step, err, out)
	}
}

// TestDashboardCheckCatchesMistakes: a dashboard with one query broken fails
// the check, at the step that should catch it.
func TestDashboardCheckCatchesMistakes(t *testing.T) {
	d := loadDashboard(t)
	orig, problems := dashboardQueries(d)
	if len(problems) > 0 {
		t.Fatalf("dashboard: %v", problems)
	}
	metrics := loadMetricsList(t)

	t.Run("unknown variable", func(t *testing.T) {
		if _, err := substitute(`rate(x[$interval])`, dashboardVariables(d)); err == nil || !strings.Contains(err.Error(), "$interval") {
			t.Fatalf("substitute: err %v, want one naming $interval", err)
		}
	})

	tests := []struct {
		name, old, new string
		step           string // the promtool step that must fail; "" for none
	}{
		{name: "unchanged"},
		{name: "unbalanced parenthesis", step: "check rules",
			old: "sum(paystream_lease_held{", new: "sum((paystream_lease_held{"},
		{name: "unknown function", step: "check rules",
			old: "sum(rate(paystream_sink_commits_total", new: "sum(rat(paystream_sink_commits_total"},
		{name: "misspelt metric", step: "test rules",
			old: "paystream_sink_data_files_total", new: "paystream_sink_data_file_total"},
		{name: "histogram without _bucket", step: "test rules",
			old: "paystream_sink_commit_duration_seconds_bucket", new: "paystream_sink_commit_duration_seconds"},
		{name: "_bucket of a counter", step: "test rules",
			old: "paystream_ingest_flush_duration_seconds_bucket", new: "paystream_ingest_flush_failures_total_bucket"},
		{name: "quantile without le", step: "test rules",
			old: "sum by (le) (rate(paystream_ingest_flush_duration_seconds_bucket", new: "sum(rate(paystream_ingest_flush_duration_seconds_bucket"},
		{name: "label value never scraped", step: "test rules",
			old: `paystream_ingest_shards_reading{job=~".*"}`, new: `paystream_ingest_shards_reading{job="paystream_consumer"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs := slices.Clone(orig)
			changed := -1
			if tt.old != "" {
				for i := range qs {
					if strings.Contains(qs[i].expr, tt.old) {
						qs[i].expr = strings.Replace(qs[i].expr, tt.old, tt.new, 1)
						changed = i
						break
					}
				}
				if changed < 0 {
					t.Fatalf("no dashboard query has %q; update this test with the dashboard", tt.old)
				}
			}
			step, out, err := checkDashboardQueries(t, qs, metrics)
			switch {
			case tt.step == "" && err != nil:
				t.Fatalf("unchanged queries: promtool %s failed: %v\n%s", step, err, out)
			case tt.step == "":
			case err == nil:
				t.Fatalf("promtool passed the broken query %q", qs[changed].expr)
			case step != tt.step:
				t.Fatalf("promtool %s failed, want %s to:\n%s", step, tt.step, out)
			case tt.step == "check rules" && !strings.Contains(out, qs[changed].record):
				t.Fatalf("promtool check rules output does not name %s:\n%s", qs[changed].record, out)
			case tt.step == "test rules" && !slices.Equal(noData(qs, out), []string{qs[changed].where}):
				t.Fatalf("promtool test rules: no data from %v, want only %s:\n%s", noData(qs, out), qs[changed].where, out)
			}
		})
	}
}
