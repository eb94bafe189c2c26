//go:build linux

package iceberg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const fsizeChildEnv = "PAYSTREAM_TEST_FSIZE_CHILD"

// A full disk must not leave a truncated object under the final name: the
// child process writes an object four times its file size limit
// (RLIMIT_FSIZE; Go ignores SIGXFSZ, so the write fails with EFBIG).
func TestWriteObjectUnderFileSizeLimitLeavesNothing(t *testing.T) {
	if dir := os.Getenv(fsizeChildEnv); dir != "" {
		writeUnderLimit(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.run=^TestWriteObjectUnderFileSizeLimitLeavesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("write failed as expected")) {
		t.Fatalf("the child did not reach the failing write:\n%s", out)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind after a failed write: %s", e.Name())
	}
}

func writeUnderLimit(t *testing.T, dir string) {
	lim := unix.Rlimit{Cur: 4096, Max: 4096}
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat(`{"raw":"0123456789abcdef"}`+"\n", 16384/27+1))
	err := writeObject(context.Background(), fileURL(filepath.Join(dir, "a", "1-2.ndjson")), data)
	if !errors.Is(err, unix.EFBIG) {
		t.Fatalf("write under RLIMIT_FSIZE: err = %v, want EFBIG", err)
	}
	t.Log("write failed as expected")
	fmt.Println("write failed as expected")
}
