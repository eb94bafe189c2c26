//go:build linux

package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// KinesisOptions are the emulator settings of an efo trial.
type KinesisOptions struct {
	// SubscriptionLifetime is how long a SubscribeToShard event stream
	// lasts (AWS: 5 min, longer than a trial); a trial sets it short so
	// that readers resubscribe from their continuation while faults fly.
	SubscriptionLifetime time.Duration
	// ResubscribeWindow is how soon the same consumer may subscribe to
	// the same shard again (AWS: 5 s); 0 leaves the emulator's default.
	ResubscribeWindow time.Duration
}

// Kinesis is an internal/kinesistest emulator the harness started as a
// process of its own (internal/cmd/kinesistest): the trial's Kinesis in
// read mode efo, since moto does not serve SubscribeToShard. DynamoDB, S3
// and Glue stay on moto.
type Kinesis struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartKinesis starts the emulator binary bin on a free loopback port,
// logging (debug: every call and every subscription's end) to
// dir/kinesis.log, and returns once it serves.
func StartKinesis(dir, bin string, o KinesisOptions) (*Kinesis, error) {
	if bin == "" {
		return nil, errors.New("no kinesistest binary: build ./internal/cmd/kinesistest (chaos.Build does, or put it in CHAOS_BIN)")
	}
	logf, err := os.Create(filepath.Join(dir, "kinesis.log"))
	if err != nil {
		return nil, err
	}
	// Every answer 25 ms late, as over a network: answered at once, a
	// producer's PutRecords failed now and then on this loaded machine
	// after it applied (kinesistest.WithAnswerDelay), and the resend made
	// the sent log miss where the first copies landed.
	args := []string{"--addr", "127.0.0.1:0", "--log-level", "debug", "--answer-delay", "25ms"}
	if o.SubscriptionLifetime > 0 {
		args = append(args, "--subscription-lifetime", o.SubscriptionLifetime.String())
	}
	if o.ResubscribeWindow > 0 {
		args = append(args, "--resubscribe-window", o.ResubscribeWindow.String())
	}
	// Stopped by Stop (or Pdeathsig), not by a context.
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		_ = logf.Close()
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	k := &Kinesis{cmd: cmd, done: make(chan struct{})}
	url := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "kinesistest listening on "); ok {
				url <- u
			}
		}
		_ = cmd.Wait()
		_ = logf.Close()
		close(k.done)
	}()
	select {
	case k.URL = <-url:
		return k, nil
	case <-k.done:
		b, _ := os.ReadFile(filepath.Join(dir, "kinesis.log"))
		return nil, fmt.Errorf("kinesistest exited before it served:\n%s", b)
	case <-time.After(30 * time.Second):
		k.Stop()
		return nil, errors.New("kinesistest did not report its address within 30s")
	}
}

// Stop ends the emulator and waits for it.
func (k *Kinesis) Stop() {
	_ = k.cmd.Process.Kill()
	<-k.done
}
