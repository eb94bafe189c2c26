//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/paystream/paystream/internal/testenv/motopatch"
)

// motoPatches are the moto patches every trial runs with.
var motoPatches = []motopatch.Patch{motopatch.KinesisReshard, motopatch.KinesisAtomic, motopatch.GlueVersionID, motopatch.DynamoDBAtomic}

// ErrNoMoto means moto_server is not installed.
var ErrNoMoto = errors.New("moto_server not found on PATH; install it with: pip install 'moto[server]'")

// Moto is a moto_server the harness started. Its Kinesis resharding is
// patched to behave like Kinesis (see internal/testenv/motopatch): moto 5.x
// keeps routing records to closed parents, copies merged parents' records
// into the child and never ends a closed shard. Its Glue UpdateTable
// enforces VersionId like AWS Glue, as in every other moto-backed test.
type Moto struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// StartMoto starts moto_server on a free loopback port, logging to
// dir/moto.log, and waits until it answers.
func StartMoto(dir string) (*Moto, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNoMoto
	}
	env, err := motopatch.Env(filepath.Join(dir, "motopatch"), motoPatches...)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "moto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// Stopped by Stop (or Pdeathsig), not by a context.
	cmd := exec.CommandContext(context.Background(), bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(m.done) }()
	if err := m.waitReady(30 * time.Second); err != nil {
		m.Stop()
		return nil, err
	}
	out, _ := os.ReadFile(logPath)
	if err := motopatch.Check(string(out), motoPatches...); err != nil {
		m.Stop()
		return nil, fmt.Errorf("%w; output:\n%s", err, out)
	}
	return m, nil
}

func (m *Moto) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/moto-api/", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		select {
		case <-m.done:
			out, _ := os.ReadFile(m.log)
			return fmt.Errorf("moto_server exited before it was ready:\n%s", out)
		case <-ctx.Done():
			return fmt.Errorf("moto_server on %s not ready after %s: %w", m.URL, limit, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop kills moto_server and waits for it.
func (m *Moto) Stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
