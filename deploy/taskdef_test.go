package deploy

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// consumerContainerName is the container in the task definition that runs the consumer.
const consumerContainerName = "consumer"

// nonFlagEnv are the variables the consumer container may set that are not
// consumer flags, with the reason.
var nonFlagEnv = map[string]string{
	"AWS_REGION": "read by the AWS SDK's default config chain (the consumer has no region flag)",
	"GOMEMLIMIT": "read by the Go runtime: the soft memory limit, a share of the task's memory",
}

var (
	consumerOnce sync.Once
	consumerPath string
	consumerErr  error
)

// consumerBinary builds ./cmd/consumer once per test run.
func consumerBinary(t *testing.T) string {
	t.Helper()
	consumerOnce.Do(func() {
		out := filepath.Join(scratch, "consumer")
		// Same compiler settings as `make build-static`, so the two builds share the Go build cache.
		log, err := run(t, 15*time.Minute, repoRoot, cleanEnv("CGO_ENABLED=0"), "go", "build", "-trimpath", "-o", out, "./cmd/consumer")
		if err != nil {
			consumerErr = fmt.Errorf("go build ./cmd/consumer failed (the task definition runs this binary, so its settings "+
				"cannot be checked without it): %v\n%s", err, log)
			return
		}
		consumerPath = out
	})
	if consumerErr != nil {
		t.Fatal(consumerErr)
	}
	return consumerPath
}

// helpEnvLine matches the "env PAYSTREAM_NAME" part internal/flagenv.Usage
// prints under every flag.
var helpEnvLine = regexp.MustCompile(`(?m)^\s+env (PAYSTREAM_[A-Z0-9_]+)\b`)

// consumerSettings returns the environment variables `consumer --help` lists.
func consumerSettings(t *testing.T) map[string]bool {
	t.Helper()
	bin := consumerBinary(t)
	out, err := run(t, 30*time.Second, repoRoot, cleanEnv(), bin, "--help")
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("consumer --help: %v\n%s", err, out)
	}
	// flag's ErrHelp exits 0 or 2 depending on the program; the list is what matters.
	got := map[string]bool{}
	for _, m := range helpEnvLine.FindAllStringSubmatch(out, -1) {
		got[m[1]] = true
	}
	if len(got) == 0 {
		t.Fatalf("consumer --help lists no `env PAYSTREAM_...` lines (internal/flagenv.Usage format); output:\n%s", out)
	}
	return got
}

// container finds the object constructor of the named container in the
// module's expressions, and checks that the ECS task definition's
// container_definitions reaches it.
func container(m *module, name string) (*hclsyntax.ObjectConsExpr, error) {
	var found []*hclsyntax.ObjectConsExpr
	var where []string
	visit := func(file string, e hclsyntax.Expression) {
		walk(e, func(n hclsyntax.Node) {
			o, ok := n.(*hclsyntax.ObjectConsExpr)
			if !ok {
				return
			}
			v, ok := objectField(o, "name")
			if !ok {
				return
			}
			if s, ok := literalString(v); ok && s == name {
				if _, ok := objectField(o, "image"); ok {
					found = append(found, o)
					where = append(where, fmt.Sprintf("%s:%d", file, o.SrcRange.Start.Line))
				}
			}
		})
	}
	for _, fn := range m.fileNames() {
		var visitBody func(b *hclsyntax.Body)
		visitBody = func(b *hclsyntax.Body) {
			for _, a := range b.Attributes {
				visit(fn, a.Expr)
			}
			for _, blk := range b.Blocks {
				visitBody(blk.Body)
			}
		}
		visitBody(m.files[fn])
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("want exactly one container object with name = %q and an image, found %d %v", name, len(found), where)
	}

	// The task definition must actually include it: follow local.* references
	// from container_definitions until one of them holds the container.
	tds := m.blocks("resource", "aws_ecs_task_definition")
	if len(tds) != 1 {
		return nil, fmt.Errorf("want one aws_ecs_task_definition, found %d", len(tds))
	}
	cd, ok := tds[0].Body.Attributes["container_definitions"]
	if !ok {
		return nil, errors.New("aws_ecs_task_definition has no container_definitions")
	}
	if !reaches(m, cd.Expr, found[0]) {
		return nil, fmt.Errorf("container %q (%s) is not part of the task definition's container_definitions", name, where[0])
	}
	return found[0], nil
}

// reaches reports whether target is inside e or inside a local that e
// references, directly or through other locals.
func reaches(m *module, e hclsyntax.Expression, target hclsyntax.Node) bool {
	locals := m.locals()
	seen := map[string]bool{}
	queue := []hclsyntax.Expression{e}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		hit := false
		walk(cur, func(n hclsyntax.Node) {
			if n == target {
				hit = true
			}
		})
		if hit {
			return true
		}
		for _, tr := range cur.Variables() {
			if tr.RootName() != "local" || len(tr) < 2 {
				continue
			}
			if a, ok := tr[1].(hcl.TraverseAttr); ok && !seen[a.Name] {
				seen[a.Name] = true
				if le, ok := locals[a.Name]; ok {
					queue = append(queue, le)
				}
			}
		}
	}
	return false
}

// containerEnv returns the container's environment variables and their value
// expressions. It understands the two ways a task definition writes them:
// a list of {name = "...", value = ...} objects, or a for expression over a
// local map (for k in keys(local.env) / for k, v in local.env). Anything else
// is an error, so the check cannot be sidestepped by a new style.
func containerEnv(m *module, c *hclsyntax.ObjectConsExpr) (map[string]hclsyntax.Expression, error) {
	e, ok := objectField(c, "environment")
	if !ok {
		return map[string]hclsyntax.Expression{}, nil
	}
	out := map[string]hclsyntax.Expression{}
	switch e := e.(type) {
	case *hclsyntax.TupleConsExpr:
		for _, it := range e.Exprs {
			o, ok := it.(*hclsyntax.ObjectConsExpr)
			if !ok {
				return nil, fmt.Errorf("environment item at %s is not an object", it.Range())
			}
			nameExpr, _ := objectField(o, "name")
			valExpr, _ := objectField(o, "value")
			if nameExpr == nil || valExpr == nil {
				return nil, fmt.Errorf("environment item at %s needs name and value", it.Range())
			}
			n, ok := literalString(nameExpr)
			if !ok {
				return nil, fmt.Errorf("environment item at %s: name must be a literal string", it.Range())
			}
			out[n] = valExpr
		}
		return out, nil
	case *hclsyntax.ForExpr:
		var refs []string
		for _, tr := range e.CollExpr.Variables() {
			if tr.RootName() == "local" && len(tr) >= 2 {
				if a, ok := tr[1].(hcl.TraverseAttr); ok {
					refs = append(refs, a.Name)
				}
			}
		}
		if len(refs) != 1 || len(e.CollExpr.Variables()) != 1 {
			return nil, fmt.Errorf("environment at %s: a for expression must range over exactly one local map", e.Range())
		}
		src, ok := m.locals()[refs[0]].(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil, fmt.Errorf("environment at %s: local.%s must be an object constructor { NAME = value }", e.Range(), refs[0])
		}
		for _, it := range src.Items {
			k, ok := objectKey(it)
			if !ok {
				return nil, fmt.Errorf("local.%s: key at %s must be literal", refs[0], it.KeyExpr.Range())
			}
			out[k] = it.ValueExpr
		}
		return out, nil
	}
	return nil, fmt.Errorf("environment at %s: cannot read %T; write it as a list of {name, value} objects or a for expression over a local map", e.Range(), e)
}

// unknownSettings returns, sorted, the names that are neither consumer
// settings (known) nor allowed non-flag variables, each with a hint.
func unknownSettings(names []string, known map[string]bool) []string {
	var bad []string
	for _, n := range names {
		if known[n] {
			continue
		}
		if _, ok := nonFlagEnv[n]; ok {
			continue
		}
		msg := n
		if !strings.HasPrefix(n, "PAYSTREAM_") {
			msg += " (not a PAYSTREAM_ setting and not in nonFlagEnv)"
		} else if near := nearest(n, known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		bad = append(bad, msg)
	}
	sort.Strings(bad)
	return bad
}

// nearest returns the known name closest to n by edit distance, if close.
func nearest(n string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(n, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestTaskDefinitionEnvironment: every variable the task definition gives the
// consumer is one the consumer reads (a typo would be silently ignored in
// AWS), and the settings the deployment depends on are there.
func TestTaskDefinitionEnvironment(t *testing.T) {
	m := terraform(t)
	c, err := container(m, consumerContainerName)
	if err != nil {
		t.Fatal(err)
	}
	env, err := containerEnv(m, c)
	if err != nil {
		t.Fatal(err)
	}
	known := consumerSettings(t)
	if bad := unknownSettings(keysOf(env), known); len(bad) > 0 {
		t.Errorf("the consumer container's environment has variables the consumer does not read "+
			"(consumer --help lists %d settings):\n  %s", len(known), strings.Join(bad, "\n  "))
	}

	// Literal values the deployment relies on.
	wantLiteral := map[string]string{
		"PAYSTREAM_CREATE_LEASE_TABLE": "false", // Terraform owns the table; no dynamodb:CreateTable in IAM
		"PAYSTREAM_CATALOG":            "glue",
	}
	for k, want := range wantLiteral {
		e, ok := env[k]
		if !ok {
			t.Errorf("%s is not set; want %q", k, want)
			continue
		}
		if got, ok := literalString(e); !ok || got != want {
			t.Errorf("%s = %s; want %q", k, e.Range(), want)
		}
	}
	// Settings that must come from the resources Terraform creates.
	for _, k := range []string{"PAYSTREAM_STREAM", "PAYSTREAM_LEASE_TABLE", "PAYSTREAM_WAREHOUSE", "PAYSTREAM_TABLE", "AWS_REGION"} {
		if _, ok := env[k]; !ok {
			t.Errorf("%s is not set in the consumer container", k)
		}
	}
}

// TestEnvironmentCheckCatchesTypos runs the check above on a task definition
// with a misspelt setting and an unexpected variable.
func TestEnvironmentCheckCatchesTypos(t *testing.T) {
	m := parseSource(t, `
locals {
  env = { PAYSTREAM_STREAM = "s", PAYSTREAM_FLUSH_INTERVALL = "1s" }
}
resource "aws_ecs_task_definition" "x" {
  container_definitions = jsonencode([{
    name        = "consumer"
    image       = "img"
    environment = [for k in sort(keys(local.env)) : { name = k, value = local.env[k] }]
  }, {
    name        = "other"
    image       = "img"
    environment = [{ name = "NOT_CHECKED", value = "x" }]
  }])
}
`)
	c, err := container(m, "consumer")
	if err != nil {
		t.Fatal(err)
	}
	env, err := containerEnv(m, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(keysOf(env), ","); got != "PAYSTREAM_FLUSH_INTERVALL,PAYSTREAM_STREAM" {
		t.Fatalf("env = %s", got)
	}
	known := map[string]bool{"PAYSTREAM_STREAM": true, "PAYSTREAM_FLUSH_INTERVAL": true}
	bad := unknownSettings(append(keysOf(env), "HOME"), known)
	want := []string{
		"HOME (not a PAYSTREAM_ setting and not in nonFlagEnv)",
		"PAYSTREAM_FLUSH_INTERVALL (did you mean PAYSTREAM_FLUSH_INTERVAL?)",
	}
	if strings.Join(bad, "|") != strings.Join(want, "|") {
		t.Fatalf("unknownSettings = %q, want %q", bad, want)
	}

	// A container left out of container_definitions is reported, not silently passed.
	m = parseSource(t, `
locals {
  c = { name = "consumer", image = "img", environment = [] }
}
resource "aws_ecs_task_definition" "x" {
  container_definitions = jsonencode([])
}
`)
	if _, err := container(m, "consumer"); err == nil || !strings.Contains(err.Error(), "not part of") {
		t.Fatalf("container outside the task definition: err = %v", err)
	}
}

// TestStopTimeoutAboveShutdownTimeout: ECS kills the container stopTimeout
// seconds after SIGTERM; the consumer needs its whole shutdown timeout to
// flush, commit and release its leases.
func TestStopTimeoutAboveShutdownTimeout(t *testing.T) {
	m := terraform(t)
	c, err := container(m, consumerContainerName)
	if err != nil {
		t.Fatal(err)
	}
	env, err := containerEnv(m, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(m.evalLocals())}}
	eval := func(what string, e hclsyntax.Expression) cty.Value {
		v, diags := e.Value(ctx)
		if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
			t.Fatalf("%s (%s) must be a constant (literal or local built from literals): %s", what, e.Range(), diags.Error())
		}
		return v
	}

	stopExpr, ok := objectField(c, "stopTimeout")
	if !ok {
		t.Fatal("consumer container has no stopTimeout (ECS default is 30 s; set it explicitly)")
	}
	stopV := eval("stopTimeout", stopExpr)
	if stopV.Type() != cty.Number {
		t.Fatalf("stopTimeout is %s, want a number", stopV.Type().FriendlyName())
	}
	stopSecs, _ := stopV.AsBigFloat().Int64()
	stop := time.Duration(stopSecs) * time.Second
	if stop > 120*time.Second {
		t.Errorf("stopTimeout = %s; Fargate allows at most 120 s", stop)
	}

	shutdownExpr, ok := env["PAYSTREAM_SHUTDOWN_TIMEOUT"]
	if !ok {
		t.Fatal("PAYSTREAM_SHUTDOWN_TIMEOUT is not set; set it so stopTimeout can be checked against it")
	}
	shutdownV := eval("PAYSTREAM_SHUTDOWN_TIMEOUT", shutdownExpr)
	shutdown, err := time.ParseDuration(shutdownV.AsString())
	if err != nil {
		t.Fatalf("PAYSTREAM_SHUTDOWN_TIMEOUT = %q: %v", shutdownV.AsString(), err)
	}
	if stop <= shutdown {
		t.Errorf("stopTimeout %s must be above PAYSTREAM_SHUTDOWN_TIMEOUT %s, or ECS kills the consumer mid-shutdown", stop, shutdown)
	}
}

// TestHealthCheck runs the task definition's health-check command with the
// consumer built from this tree against a /healthz that is up, then down.
// The image is distroless (no shell, no curl), so the consumer probes itself.
func TestHealthCheck(t *testing.T) {
	m := terraform(t)
	c, err := container(m, consumerContainerName)
	if err != nil {
		t.Fatal(err)
	}
	hcExpr, ok := objectField(c, "healthCheck")
	if !ok {
		t.Fatal("consumer container has no healthCheck")
	}
	hc, ok := hcExpr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("healthCheck at %s is not an object", hcExpr.Range())
	}
	cmdExpr, ok := objectField(hc, "command")
	if !ok {
		t.Fatal("healthCheck has no command")
	}
	cmdV, ok := literal(cmdExpr)
	if !ok || !cmdV.CanIterateElements() {
		t.Fatalf("healthCheck command at %s must be a literal list", cmdExpr.Range())
	}
	var argv []string
	for _, v := range cmdV.AsValueSlice() {
		if v.Type() != cty.String {
			t.Fatalf("healthCheck command has a non-string element")
		}
		argv = append(argv, v.AsString())
	}
	if len(argv) < 2 || argv[0] != "CMD" {
		t.Fatalf("healthCheck command = %q; want exec form [\"CMD\", \"/consumer\", ...] (no shell in a distroless image)", argv)
	}
	df := readDockerfile(t, dockerfilePath)
	if argv[1] != df.entrypoint[0] {
		t.Errorf("healthCheck runs %q but the image's entrypoint binary is %q", argv[1], df.entrypoint[0])
	}

	bin := consumerBinary(t)
	for _, tc := range []struct {
		status int
		wantOK bool
	}{{http.StatusOK, true}, {http.StatusServiceUnavailable, false}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/healthz" {
					hits.Add(1)
					w.WriteHeader(tc.status)
					return
				}
				http.NotFound(w, r)
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL)
			// As in the task definition: PAYSTREAM_METRICS_ADDR=":PORT" (all interfaces).
			addr := ":" + u.Port()
			out, err := run(t, 30*time.Second, repoRoot, cleanEnv("PAYSTREAM_METRICS_ADDR="+addr), bin, argv[2:]...)
			if hits.Load() == 0 {
				t.Fatalf("`consumer %s` with PAYSTREAM_METRICS_ADDR=%s never requested /healthz (err %v). The task definition's "+
					"health check needs it to GET http://localhost<--metrics-addr port>/healthz and exit 0 on 200, non-zero otherwise.\n%s",
					strings.Join(argv[2:], " "), addr, err, out)
			}
			if gotOK := err == nil; gotOK != tc.wantOK {
				t.Fatalf("/healthz answered %d: health check exit err = %v, want success %v\n%s", tc.status, err, tc.wantOK, out)
			}
		})
	}
}
