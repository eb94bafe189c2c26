package deploy

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// staticBinaries are what `make build-static` must produce, and the image ships.
var staticBinaries = []string{"consumer", "producer"}

// copyBuildContext copies the repository into dst as `docker build .` would
// send it: without what .dockerignore excludes.
func copyBuildContext(t *testing.T, dst string) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatalf("the Docker build context needs a .dockerignore (keeps .git, bin and data out): %v", err)
	}
	patterns, err := ignorefile.ReadAll(f)
	_ = f.Close()
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walked (another process's scratch file)
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			if err := copyFile(path, target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil // sockets, symlinks: not part of a Go build
	})
	if err != nil {
		t.Fatalf("copy build context: %v", err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// checkStatic returns why the ELF file at path is not a static executable.
func checkStatic(path string) []string {
	f, err := elf.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("%s: not an ELF file: %v", path, err)}
	}
	defer func() { _ = f.Close() }()
	var problems []string
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			problems = append(problems, "has a PT_INTERP program header (needs a dynamic loader, which distroless static lacks)")
		case elf.PT_DYNAMIC:
			problems = append(problems, "has a PT_DYNAMIC program header (dynamically linked)")
		}
	}
	for _, name := range []string{".interp", ".dynamic"} {
		if f.Section(name) != nil {
			problems = append(problems, "has a "+name+" section")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		problems = append(problems, fmt.Sprintf("imports shared libraries %v", libs))
	}
	return problems
}

// TestStaticBinaries builds the image's binaries exactly as the Dockerfile does
// (`make build-static VERSION=...` in the build context) and checks that they
// are static pure-Go executables, built with -trimpath and the version stamped
// in, that start and report that version.
func TestStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the consumer and producer from scratch with CGO_ENABLED=0; skipped with -short")
	}
	ctxDir := filepath.Join(t.TempDir(), "context")
	copyBuildContext(t, ctxDir)
	for _, need := range []string{"Makefile", "go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join(ctxDir, need)); err != nil {
			t.Fatalf("the build context has no %s (excluded by .dockerignore or missing): %v", need, err)
		}
	}

	version := fmt.Sprintf("deploytest-%d", time.Now().UnixNano())
	out, err := run(t, 20*time.Minute, ctxDir, cleanEnv(), "make", "build-static", "VERSION="+version)
	if err != nil {
		t.Fatalf("`make build-static VERSION=%s` (what the Dockerfile runs) failed: %v\n%s", version, err, out)
	}

	for _, name := range staticBinaries {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(ctxDir, "bin", name)
			if _, err := os.Stat(bin); err != nil {
				t.Fatalf("make build-static did not produce bin/%s (the Dockerfile copies it): %v", name, err)
			}
			for _, p := range checkStatic(bin) {
				t.Errorf("bin/%s %s", name, p)
			}

			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatalf("bin/%s: no Go build info: %v", name, err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" {
				t.Errorf("bin/%s built with CGO_ENABLED=%q; want 0", name, settings["CGO_ENABLED"])
			}
			if settings["-trimpath"] != "true" {
				t.Errorf("bin/%s built without -trimpath", name)
			}
			// Go does not record -ldflags with -trimpath; --version below shows the stamp.
			raw, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(ctxDir)) {
				t.Errorf("bin/%s contains the build directory %s: paths are not trimmed", name, ctxDir)
			}

			out, err := run(t, 30*time.Second, t.TempDir(), cleanEnv(), bin, "--version")
			if err != nil {
				t.Fatalf("bin/%s --version: %v\n%s", name, err, out)
			}
			if !strings.Contains(out, version) {
				t.Errorf("bin/%s --version printed %q; want it to contain %s", name, strings.TrimSpace(out), version)
			}
		})
	}
}

// TestStaticCheckCatchesDynamicBinary runs checkStatic on a dynamically linked
// executable of this machine, so the check is known to be able to fail.
func TestStaticCheckCatchesDynamicBinary(t *testing.T) {
	for _, candidate := range []string{"/bin/sh", "/usr/bin/env", "/bin/ls"} {
		f, err := elf.Open(candidate)
		if err != nil {
			continue
		}
		dynamic := false
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				dynamic = true
			}
		}
		_ = f.Close()
		if !dynamic {
			continue
		}
		if len(checkStatic(candidate)) == 0 {
			t.Fatalf("checkStatic(%s) found nothing, but it has an ELF interpreter", candidate)
		}
		return
	}
	t.Skip("no dynamically linked executable on this machine to check against")
}
