//go:build linux

package chaos

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxyFaults(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	call := func(target string) (int, string, error) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, p.URL(), strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Target", target)
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	const kin, ddb = "Kinesis_20131202.GetRecords", "DynamoDB_20120810.UpdateItem"
	for _, tc := range []struct {
		name     string
		fault    NetFault
		target   string
		status   int    // 0: a transport error
		body     string // substring
		backend  int64  // requests that reached the backend
		minDelay time.Duration
	}{
		{"none", NetFault{}, kin, 200, "{}", 1, 0},
		{"errors before", NetFault{ErrorRate: 1}, kin, 500, "InternalFailure", 0, 0},
		{"errors after apply", NetFault{ErrorRate: 1, After: true}, ddb, 500, "dynamodb.v20120810#InternalServerError", 1, 0},
		{"throttle", NetFault{ErrorRate: 1, Throttle: true}, kin, 400, "ProvisionedThroughputExceededException", 0, 0},
		{"other service untouched", NetFault{Service: "dynamodb", ErrorRate: 1}, kin, 200, "{}", 1, 0},
		{"down", NetFault{Down: true}, ddb, 0, "", 0, 0},
		{"latency", NetFault{Latency: 200 * time.Millisecond}, kin, 200, "{}", 1, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Set(tc.fault)
			before := hits.Load()
			start := time.Now()
			status, body, err := call(tc.target)
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("got %d %s, want a transport error", status, body)
				}
			} else if err != nil || status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %q %v, want %d containing %q", status, body, err, tc.status, tc.body)
			}
			if got := hits.Load() - before; got != tc.backend {
				t.Errorf("%d requests reached the emulator, want %d", got, tc.backend)
			}
			if d := time.Since(start); d < tc.minDelay {
				t.Errorf("answered after %s, want at least %s", d, tc.minDelay)
			}
		})
	}
}
