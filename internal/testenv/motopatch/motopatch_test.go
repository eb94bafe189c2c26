package motopatch

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	t.Setenv("PYTHONPATH", "/elsewhere")
	t.Setenv(KinesisReshard.Env, "1") // inherited: must not leak through
	dir := filepath.Join(t.TempDir(), "patch")
	env, err := Env(dir, GlueVersionID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "sitecustomize.py"))
	if err != nil || !bytes.Equal(got, source) {
		t.Fatalf("sitecustomize.py not written to %s: %v", dir, err)
	}
	// exec.Cmd keeps the last value of a repeated variable.
	last := func(name string) string {
		v := ""
		for _, kv := range env {
			if k, val, _ := strings.Cut(kv, "="); k == name {
				v = val
			}
		}
		return v
	}
	if pp := last("PYTHONPATH"); pp != dir+string(os.PathListSeparator)+"/elsewhere" {
		t.Errorf("PYTHONPATH = %q; want the patch folder first", pp)
	}
	if v := last(GlueVersionID.Env); v != "1" {
		t.Errorf("%s = %q, want 1", GlueVersionID.Env, v)
	}
	if v := last(KinesisReshard.Env); v != "0" {
		t.Errorf("%s = %q, want 0 (not asked for)", KinesisReshard.Env, v)
	}
}

func TestCheck(t *testing.T) {
	both := []Patch{KinesisReshard, GlueVersionID}
	if err := Check(KinesisReshard.Marker+"\n"+GlueVersionID.Marker+"\n", both...); err != nil {
		t.Errorf("both markers present: %v", err)
	}
	err := Check(KinesisReshard.Marker+"\npaystream-motopatch: glue VersionId patch FAILED: ImportError()\n", both...)
	if err == nil || !strings.Contains(err.Error(), GlueVersionID.Name) || strings.Contains(err.Error(), KinesisReshard.Name) {
		t.Errorf("glue marker missing: err = %v; want one naming only %q", err, GlueVersionID.Name)
	}
	// A marker or variable renamed on one side only is caught here, not as
	// a moto start failure in every test.
	for _, p := range All {
		if !bytes.Contains(source, []byte(p.Marker)) || !bytes.Contains(source, []byte(p.Env)) {
			t.Errorf("sitecustomize.py does not mention %q / %q", p.Marker, p.Env)
		}
	}
}
