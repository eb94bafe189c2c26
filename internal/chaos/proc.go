//go:build linux

package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Proc is one running consumer process.
type Proc struct {
	Slot     int
	WorkerID string
	Start    time.Time
	LogPath  string
	cmd      *exec.Cmd
	done     chan struct{}
	exitAt   time.Time
	exitErr  error
	mu       sync.Mutex
	stopped  bool // SIGSTOPped and not yet continued
	signaled bool // the harness sent SIGTERM or SIGKILL
}

// ProcSpec says how to start a consumer.
type ProcSpec struct {
	Bin      string
	Args     []string
	Env      []string
	LogPath  string
	RunAsUID int // -1: run as this process's user
	Slot     int
	WorkerID string
}

// StartProc starts a consumer, its stdout and stderr going to spec.LogPath.
func StartProc(spec ProcSpec) (*Proc, error) {
	f, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// Ended by signals from the harness (and Pdeathsig), not by a context.
	cmd := exec.CommandContext(context.Background(), spec.Bin, spec.Args...)
	cmd.Env = spec.Env
	// A pipe, not the file: a process limited by the chaos faults (read-only
	// warehouse) must still be able to log.
	w := &lineWriter{w: f}
	cmd.Stdout = w
	cmd.Stderr = w
	// Setpgid keeps terminal signals away; Pdeathsig kills the consumer if
	// the harness dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.RunAsUID >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(spec.RunAsUID), Gid: uint32(spec.RunAsUID)}
	}
	p := &Proc{Slot: spec.Slot, WorkerID: spec.WorkerID, LogPath: spec.LogPath, cmd: cmd, done: make(chan struct{})}
	p.Start = time.Now()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Bin, err)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exitAt = time.Now()
		p.exitErr = err
		p.mu.Unlock()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitAt is when the process exited (zero while it runs).
func (p *Proc) ExitAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitAt
}

// ExitErr is the error cmd.Wait returned.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Signaled reports whether the harness sent SIGTERM or SIGKILL.
func (p *Proc) Signaled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signaled
}

// Paused reports whether the process is SIGSTOPped.
func (p *Proc) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// Signal sends sig. SIGTERM and SIGKILL mark the exit as wanted;
// SIGSTOP/SIGCONT track the paused state.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	switch sig {
	case syscall.SIGTERM, syscall.SIGKILL:
		p.signaled = true
	case syscall.SIGSTOP:
		p.stopped = true
	case syscall.SIGCONT:
		p.stopped = false
	}
	p.mu.Unlock()
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !p.Exited() {
		return fmt.Errorf("signal %s to pid %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// Wait waits up to limit for the exit and reports whether it happened.
func (p *Proc) Wait(limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// Kill sends SIGKILL (continuing a paused process is not needed) and waits.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// ExitCode is the exit status, -1 when killed by a signal or still running.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *Proc) String() string {
	return "slot " + strconv.Itoa(p.Slot) + " (" + p.WorkerID + ", pid " + strconv.Itoa(p.Pid()) + ")"
}

// lineWriter serialises stdout and stderr into one file.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

var _ io.Writer = (*lineWriter)(nil)
