package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/testenv/motopatch"
)

// motoPatches are the moto patches every moto-backed test runs with:
// Kinesis record calls and DynamoDB item calls are atomic, and Glue
// UpdateTable is a compare-and-swap on VersionId, as on AWS.
var motoPatches = []motopatch.Patch{motopatch.KinesisAtomic, motopatch.GlueVersionID, motopatch.DynamoDBAtomic}

// Region is the region every test client uses against the emulators.
const Region = "us-east-1"

// Moto starts a fresh moto_server for t and returns its endpoint URL
// ("http://127.0.0.1:PORT"). It also sets AWS_ENDPOINT_URL, AWS_REGION and
// static test credentials in t's environment (t.Setenv), so code that loads
// the standard AWS config reaches the emulator. Tests using it cannot be
// parallel.
func Moto(t testing.TB) string {
	t.Helper()
	endpoint := StartMoto(t)
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return endpoint
}

// StartMoto starts moto_server for t without touching the environment. Its
// Glue UpdateTable enforces VersionId like AWS Glue (see package doc); the
// start fails if that patch did not load.
func StartMoto(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("moto_server not found on PATH; CI must install it (pip install 'moto[server]')")
		}
		t.Skip("moto_server not found on PATH; install it with: pip install 'moto[server]' (make test does this)")
	}
	env, err := motopatch.Env(filepath.Join(t.TempDir(), "motopatch"), motoPatches...)
	if err != nil {
		t.Fatalf("moto_server: %v", err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatalf("find a free port for moto_server: %v", err)
	}
	var out lockedBuffer
	// Cancelling ctx kills the server (exec.CommandContext's default Cancel).
	// It is cancelled in t's cleanup, not bound to t.Context(), because
	// cleanups registered later run first and may still need the server.
	ctx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = env
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatalf("start moto_server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		kill()
		<-done
		if t.Failed() && testing.Verbose() {
			t.Logf("moto_server output:\n%s", out.String())
		}
	})
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	patched := func() error { return motopatch.Check(out.String(), motoPatches...) }
	if err := waitReady(endpoint, done, 30*time.Second, patched); err != nil {
		t.Fatalf("moto_server on %s: %v\noutput:\n%s", endpoint, err, out.String())
	}
	return endpoint
}

// waitReady waits until the server answers and patched reports no error
// (the patch markers are copied from the server's output by another
// goroutine, so they may arrive a moment after the first answer).
func waitReady(endpoint string, exited <-chan struct{}, limit time.Duration, patched func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/moto-api/", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
			if err = patched(); err == nil {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", limit, err)
		case <-tick.C:
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, err
	}
	return port, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
