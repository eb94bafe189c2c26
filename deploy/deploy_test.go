package deploy

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// repoRoot is the module root: tests run in deploy/.
const repoRoot = ".."

var terraformDir = filepath.Join(repoRoot, "deploy", "terraform")

// scratch holds build output shared by the tests of one run (the consumer is
// built once, not once per test).
var scratch string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "paystream-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// --- Terraform reading ---------------------------------------------------------------------------

// module is the parsed Terraform root module.
type module struct {
	files map[string]*hclsyntax.Body // by file name
}

// loadModule parses every .tf file in dir.
func loadModule(dir string) (*module, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, fmt.Errorf("list .tf files in %s: %w", dir, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	p := hclparse.NewParser()
	m := &module{files: map[string]*hclsyntax.Body{}}
	for _, n := range names {
		f, diags := p.ParseHCLFile(n)
		if diags.HasErrors() {
			return nil, fmt.Errorf("parse %s: %s", n, diags.Error())
		}
		m.files[filepath.Base(n)] = f.Body.(*hclsyntax.Body)
	}
	return m, nil
}

// parseSource parses one file's worth of HCL given as a string (test fixtures).
func parseSource(t *testing.T, src string) *module {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL([]byte(src), "fixture.tf")
	if diags.HasErrors() {
		t.Fatalf("parse fixture: %s", diags.Error())
	}
	return &module{files: map[string]*hclsyntax.Body{"fixture.tf": f.Body.(*hclsyntax.Body)}}
}

var (
	tfOnce sync.Once
	tfMod  *module
	tfErr  error
)

// terraform returns the parsed deploy/terraform module, parsed once per run.
func terraform(t *testing.T) *module {
	t.Helper()
	tfOnce.Do(func() { tfMod, tfErr = loadModule(terraformDir) })
	if tfErr != nil {
		t.Fatal(tfErr)
	}
	return tfMod
}

// fileNames returns the module's file names, sorted, for stable output.
func (m *module) fileNames() []string {
	var out []string
	for n := range m.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// blocks returns the top-level blocks of a type whose labels start with labels.
func (m *module) blocks(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, n := range m.fileNames() {
		for _, b := range m.files[n].Blocks {
			if b.Type != typ || len(b.Labels) < len(labels) {
				continue
			}
			match := true
			for i, l := range labels {
				if b.Labels[i] != l {
					match = false
				}
			}
			if match {
				out = append(out, b)
			}
		}
	}
	return out
}

// locals returns every local value's expression by name.
func (m *module) locals() map[string]hclsyntax.Expression {
	out := map[string]hclsyntax.Expression{}
	for _, b := range m.blocks("locals") {
		for name, a := range b.Body.Attributes {
			out[name] = a.Expr
		}
	}
	return out
}

// evalLocals evaluates the locals that depend only on literals and on other
// such locals (no variables, resources or functions): enough for the
// constants the tests compare, such as timeouts and ports.
func (m *module) evalLocals() map[string]cty.Value {
	exprs := m.locals()
	vals := map[string]cty.Value{}
	for progress := true; progress; {
		progress = false
		for name, e := range exprs {
			if _, done := vals[name]; done {
				continue
			}
			ready := true
			for _, tr := range e.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					ready = false
					break
				}
				attr, ok := tr[1].(hcl.TraverseAttr)
				if !ok {
					ready = false
					break
				}
				if _, ok := vals[attr.Name]; !ok {
					ready = false
					break
				}
			}
			if !ready {
				continue
			}
			v, diags := e.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(vals)}})
			if diags.HasErrors() || !v.IsWhollyKnown() {
				continue
			}
			vals[name] = v
			progress = true
		}
	}
	return vals
}

// literal evaluates an expression that has no references and no function calls.
func literal(e hcl.Expression) (cty.Value, bool) {
	if len(e.Variables()) > 0 {
		return cty.NilVal, false
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// literalString is literal for strings.
func literalString(e hcl.Expression) (string, bool) {
	v, ok := literal(e)
	if !ok || v.IsNull() || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// objectKey returns the static key of an object constructor item.
func objectKey(item hclsyntax.ObjectConsItem) (string, bool) {
	if kw := hcl.ExprAsKeyword(item.KeyExpr); kw != "" {
		return kw, true
	}
	return literalString(item.KeyExpr)
}

// objectField returns the value of the item with the given static key.
func objectField(o *hclsyntax.ObjectConsExpr, key string) (hclsyntax.Expression, bool) {
	for _, it := range o.Items {
		if k, ok := objectKey(it); ok && k == key {
			return it.ValueExpr, true
		}
	}
	return nil, false
}

// render turns a string expression into text with every interpolation replaced
// by "X", so its fixed parts can be inspected ("${aws_s3_bucket.b.arn}/p/*" →
// "X/p/*"). ok is false for anything but literals, references and templates.
func render(e hclsyntax.Expression) (string, bool) {
	switch e := e.(type) {
	case *hclsyntax.TemplateWrapExpr:
		return "X", true
	case *hclsyntax.ScopeTraversalExpr, *hclsyntax.RelativeTraversalExpr, *hclsyntax.IndexExpr:
		return "X", true
	case *hclsyntax.TemplateExpr:
		var b strings.Builder
		for _, p := range e.Parts {
			if s, ok := literalString(p); ok {
				b.WriteString(s)
			} else {
				b.WriteString("X")
			}
		}
		return b.String(), true
	}
	if s, ok := literalString(e); ok {
		return s, true
	}
	return "", false
}

// tupleItems returns the elements of a list constructor.
func tupleItems(e hclsyntax.Expression) ([]hclsyntax.Expression, bool) {
	tc, ok := e.(*hclsyntax.TupleConsExpr)
	if !ok {
		return nil, false
	}
	return tc.Exprs, true
}

// walk calls fn for every expression node under e (e included).
func walk(e hclsyntax.Node, fn func(hclsyntax.Node)) {
	_ = hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
		fn(n)
		return nil
	})
}

// --- commands ------------------------------------------------------------------------------------

// run runs a command with a deadline and returns its combined output.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: no exit within %s", name, strings.Join(args, " "), timeout)
	}
	return string(out), err
}

// cleanEnv is the test's environment without PAYSTREAM_* settings, so a
// developer's shell cannot change what the binaries under test do.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PAYSTREAM_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// --- environments --------------------------------------------------------------------------------

// fargateMemory lists the memory sizes (MiB) Fargate accepts for each CPU size.
func fargateMemory(cpu int) []int {
	span := func(from, to, step int) []int {
		var out []int
		for m := from; m <= to; m += step {
			out = append(out, m)
		}
		return out
	}
	switch cpu {
	case 256:
		return []int{512, 1024, 2048}
	case 512:
		return span(1024, 4096, 1024)
	case 1024:
		return span(2048, 8192, 1024)
	case 2048:
		return span(4096, 16384, 1024)
	case 4096:
		return span(8192, 30720, 1024)
	case 8192:
		return span(16384, 61440, 4096)
	case 16384:
		return span(32768, 122880, 8192)
	}
	return nil
}

// TestEnvironments checks the shipped environments: every setting in a .tfvars
// file is a declared variable (terraform would only warn), the task size is one
// Fargate accepts (terraform validate cannot know), and each environment has the
// size the deployment issue asks for.
func TestEnvironments(t *testing.T) {
	m := terraform(t)
	defaults := map[string]cty.Value{}
	for _, b := range m.blocks("variable") {
		v := cty.NullVal(cty.DynamicPseudoType)
		if a, ok := b.Body.Attributes["default"]; ok {
			if lv, ok := literal(a.Expr); ok {
				v = lv
			}
		}
		defaults[b.Labels[0]] = v
	}

	want := map[string]struct{ shards, tasks, cpu int }{
		"dev":  {shards: 1, tasks: 1, cpu: 256},
		"demo": {shards: 15},
	}
	files, _ := filepath.Glob(filepath.Join(terraformDir, "environments", "*.tfvars"))
	seen := map[string]bool{}
	for _, f := range files {
		env := strings.TrimSuffix(filepath.Base(f), ".tfvars")
		seen[env] = true
		t.Run(env, func(t *testing.T) {
			file, diags := hclparse.NewParser().ParseHCLFile(f)
			if diags.HasErrors() {
				t.Fatalf("parse: %s", diags.Error())
			}
			attrs, diags := file.Body.JustAttributes()
			if diags.HasErrors() {
				t.Fatalf("%s: %s", f, diags.Error())
			}
			vals := map[string]cty.Value{}
			for k, v := range defaults {
				vals[k] = v
			}
			for name, a := range attrs {
				if _, ok := defaults[name]; !ok {
					t.Errorf("%s sets %q, which variables.tf does not declare", f, name)
					continue
				}
				v, diags := a.Expr.Value(nil)
				if diags.HasErrors() {
					t.Errorf("%s: %s: %s", f, name, diags.Error())
					continue
				}
				vals[name] = v
			}
			num := func(name string) int {
				v := vals[name]
				if v.IsNull() || v.Type() != cty.Number {
					t.Fatalf("%s: %s is not a number: %#v", f, name, v)
				}
				bf := v.AsBigFloat()
				n, _ := bf.Int64()
				return int(n)
			}
			str := func(name string) string {
				v := vals[name]
				if v.IsNull() || v.Type() != cty.String {
					t.Fatalf("%s: %s is not a string", f, name)
				}
				return v.AsString()
			}
			if got := str("environment"); got != env {
				t.Errorf("environment = %q in %s; want the file's name %q", got, f, env)
			}

			shards := num("shard_count")
			if str("stream_mode") == "ON_DEMAND" {
				shards = num("on_demand_shard_estimate")
			} else if shards < 1 || shards > 15 {
				t.Errorf("shard_count = %d; the shipped environments use 1 to 15", shards)
			}
			tasks := int(math.Ceil(float64(shards) / float64(num("shards_per_task"))))
			cpu, mem := num("task_cpu"), num("task_memory")
			if !slices.Contains(fargateMemory(cpu), mem) {
				t.Errorf("task_cpu = %d, task_memory = %d: not a Fargate size (memory for that CPU: %v)", cpu, mem, fargateMemory(cpu))
			}

			w, ok := want[env]
			if !ok {
				return
			}
			if shards != w.shards {
				t.Errorf("shards = %d, want %d", shards, w.shards)
			}
			if w.tasks != 0 && tasks != w.tasks {
				t.Errorf("tasks = %d, want %d", tasks, w.tasks)
			}
			if w.cpu != 0 && cpu != w.cpu {
				t.Errorf("task_cpu = %d, want %d", cpu, w.cpu)
			}
		})
	}
	for env := range want {
		if !seen[env] {
			t.Errorf("environments/%s.tfvars is missing", env)
		}
	}
}
