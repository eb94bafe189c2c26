package deploy

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// envVars returns the variables' values for one environment file: the
// literal defaults of variables.tf overridden by the file.
func envVars(t *testing.T, m *module, file string) map[string]cty.Value {
	t.Helper()
	vals := map[string]cty.Value{}
	for _, b := range m.blocks("variable") {
		vals[b.Labels[0]] = cty.NullVal(cty.DynamicPseudoType)
		if a, ok := b.Body.Attributes["default"]; ok {
			if v, ok := literal(a.Expr); ok {
				vals[b.Labels[0]] = v
			}
		}
	}
	f, diags := hclparse.NewParser().ParseHCLFile(file)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %s", file, diags.Error())
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		t.Fatalf("%s: %s", file, diags.Error())
	}
	for name, a := range attrs {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("%s: %s: %s", file, name, diags.Error())
		}
		vals[name] = v
	}
	return vals
}

// evalMemory evaluates the named locals, which may use variables, other
// such locals and the ceil, floor and tostring functions.
func evalMemory(t *testing.T, m *module, vars map[string]cty.Value, names ...string) map[string]cty.Value {
	t.Helper()
	exprs := m.locals()
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: map[string]function.Function{
			"ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc, "tostring": stdlib.MakeToFunc(cty.String),
			"min": stdlib.MinFunc, "max": stdlib.MaxFunc, "coalesce": stdlib.CoalesceFunc,
		},
	}
	vals := map[string]cty.Value{}
	var eval func(name string) cty.Value
	eval = func(name string) cty.Value {
		if v, ok := vals[name]; ok {
			return v
		}
		e, ok := exprs[name]
		if !ok {
			t.Fatalf("local.%s is not defined", name)
		}
		for _, tr := range e.Variables() {
			if tr.RootName() == "local" && len(tr) > 1 {
				if a, ok := tr[1].(hcl.TraverseAttr); ok {
					eval(a.Name)
				}
			}
		}
		ctx.Variables["local"] = cty.ObjectVal(vals)
		v, diags := e.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("local.%s: %s", name, diags.Error())
		}
		vals[name] = v
		return v
	}
	out := map[string]cty.Value{}
	for _, n := range names {
		out[n] = eval(n)
	}
	return out
}

func mib(v cty.Value) int64 {
	n, _ := v.AsBigFloat().Int64()
	return n
}

// TestTaskMemorySizing: in every shipped environment the task's memory
// holds what the consumer needs for its shards (deploy/README.md, "Task
// memory") within GOMEMLIMIT, and GOMEMLIMIT is 80–90 % of the task's
// memory, so the garbage collector holds the heap below the point where
// ECS kills the task.
func TestTaskMemorySizing(t *testing.T) {
	m := terraform(t)
	c, err := container(m, consumerContainerName)
	if err != nil {
		t.Fatal(err)
	}
	env, err := containerEnv(m, c)
	if err != nil {
		t.Fatal(err)
	}
	limitExpr, ok := env["GOMEMLIMIT"]
	if !ok {
		t.Fatal("GOMEMLIMIT is not set in the consumer container")
	}
	files, _ := filepath.Glob(filepath.Join(terraformDir, "environments", "*.tfvars"))
	if len(files) == 0 {
		t.Fatal("no environments found")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".tfvars"), func(t *testing.T) {
			vars := envVars(t, m, f)
			got := evalMemory(t, m, vars, "consumer_memory_need_mib", "consumer_memory_limit_mib")
			need, limit := mib(got["consumer_memory_need_mib"]), mib(got["consumer_memory_limit_mib"])
			task, _ := vars["task_memory"].AsBigFloat().Int64()
			if share := float64(limit) / float64(task); share < 0.8 || share > 0.9 {
				t.Errorf("GOMEMLIMIT is %d MiB of a %d MiB task (%.0f%%); want 80–90%%", limit, task, 100*share)
			}
			if need > limit {
				t.Errorf("the consumer needs %d MiB for its shards; GOMEMLIMIT is %d MiB of a %d MiB task", need, limit, task)
			}
			ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(got)}}
			v, diags := limitExpr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("GOMEMLIMIT = %s: %s", limitExpr.Range(), diags.Error())
			}
			if want := fmt.Sprintf("%dMiB", limit); v.Type() != cty.String || v.AsString() != want {
				t.Errorf("GOMEMLIMIT = %#v, want %q", v, want)
			}
			t.Logf("task %d MiB, GOMEMLIMIT %d MiB, need %d MiB", task, limit, need)
		})
	}
}

// TestTaskCountFromThroughput: with events_per_second set, the task count
// is what the events need at events_per_vcpu per vCPU of a task, at least
// one and at most one task per shard, and the memory check sizes each task
// for the shards it then holds; unset, it is ceil(shards / shards_per_task).
func TestTaskCountFromThroughput(t *testing.T) {
	m := terraform(t)
	base := envVars(t, m, filepath.Join(terraformDir, "environments", "demo.tfvars"))
	num := func(v cty.Value) int64 { n, _ := v.AsBigFloat().Int64(); return n }
	shards := num(base["shard_count"])
	for _, tc := range []struct {
		name       string
		eps        cty.Value
		cpu        int64
		wantTasks  int64
		wantShards int64
	}{
		{"by shards", cty.NullVal(cty.Number), 512, (shards + num(base["shards_per_task"]) - 1) / num(base["shards_per_task"]), 0},
		{"light load: one task", cty.NumberIntVal(1000), 512, 1, shards},
		{"10,000 events/s on half a vCPU at 20,000 per vCPU", cty.NumberIntVal(10000), 512, 1, shards},
		{"30,000 events/s on half a vCPU", cty.NumberIntVal(30000), 512, 3, (shards + 2) / 3},
		{"more than the shards can use", cty.NumberIntVal(10_000_000), 256, shards, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := maps.Clone(base)
			vars["events_per_second"] = tc.eps
			vars["events_per_vcpu"] = cty.NumberIntVal(20000)
			vars["task_cpu"] = cty.NumberIntVal(tc.cpu)
			got := evalMemory(t, m, vars, "desired_tasks", "shards_per_task")
			if n := num(got["desired_tasks"]); n != tc.wantTasks {
				t.Errorf("desired_tasks = %d, want %d", n, tc.wantTasks)
			}
			if want := (shards + tc.wantTasks - 1) / tc.wantTasks; num(got["shards_per_task"]) != want {
				t.Errorf("shards_per_task = %d, want %d", num(got["shards_per_task"]), want)
			}
			if tc.wantShards != 0 && num(got["shards_per_task"]) != tc.wantShards {
				t.Errorf("shards_per_task = %d, want %d", num(got["shards_per_task"]), tc.wantShards)
			}
		})
	}
}
