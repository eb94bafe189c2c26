package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/paystream/paystream/internal/flagenv"
)

// runHealthcheck probes a running consumer's /healthz on --metrics-addr and
// returns nil on 200. The container image has no shell or curl, so ECS's
// health check runs `consumer healthcheck`.
func runHealthcheck(ctx context.Context, args []string, lookup func(string) (string, bool), stdout io.Writer) error {
	addr := defaultServiceConfig().MetricsAddr
	timeout := 5 * time.Second
	fs := flag.NewFlagSet("consumer healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.StringVar(&addr, "metrics-addr", addr, "address the consumer serves /healthz on (an empty host means localhost)")
	fs.DurationVar(&timeout, "timeout", timeout, "give up after this long")
	fs.Usage = func() {
		flagenv.Usage(fs, stdout, "consumer healthcheck — exit 0 when the consumer on --metrics-addr answers /healthz with 200")
	}
	if err := flagenv.Parse(fs, args, lookup); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &usageError{fmt.Errorf("--metrics-addr %q: want host:port such as :9090", addr)}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check %s: status %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
