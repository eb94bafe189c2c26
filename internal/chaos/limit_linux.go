//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// limitFileSize makes every write that grows a file fail with EFBIG in
// process pid (a full disk, for the catalog and the warehouse alike; Go
// ignores SIGXFSZ). lift puts the old limit back. uid is the user pid runs
// as (-1: ours).
func limitFileSize(pid, uid int) (lift func() error, err error) {
	var old unix.Rlimit
	err = unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old)
	if err == nil {
		lim := unix.Rlimit{Cur: 0, Max: old.Max}
		if err = unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil); err == nil {
			return func() error { return unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil) }, nil
		}
	}
	if !errors.Is(err, unix.EPERM) || uid < 0 {
		return nil, fmt.Errorf("RLIMIT_FSIZE of pid %d: %w", pid, err)
	}
	// Without CAP_SYS_RESOURCE (root in a container) only a process of the
	// same user may change another's limits: run util-linux prlimit as uid.
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(context.Background(), "prlimit", append([]string{"--pid", strconv.Itoa(pid)}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("prlimit %s as uid %d: %w: %s", strings.Join(args, " "), uid, err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	}
	soft, err := run("--fsize", "--raw", "--noheadings", "--output", "SOFT")
	if err != nil {
		return nil, err
	}
	if _, err := run("--fsize=0:"); err != nil {
		return nil, err
	}
	return func() error { _, err := run("--fsize=" + soft + ":"); return err }, nil
}
