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

// TestProxyServiceFaults checks the Glue, S3 and lease-write faults: the
// service comes from the signature's credential scope, the operation from
// X-Amz-Target or the S3 method, the body match, and each service's
// error shape.
func TestProxyServiceFaults(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	type req struct{ service, method, target, body string }
	call := func(rq req) (int, string, string) {
		r, _ := http.NewRequestWithContext(context.Background(), rq.method, p.URL()+"/bucket/key", strings.NewReader(rq.body))
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/"+rq.service+"/aws4_request, SignedHeaders=host, Signature=x")
		if rq.target != "" {
			r.Header.Set("X-Amz-Target", rq.target)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	updateTable := req{"glue", http.MethodPost, "AWSGlue.UpdateTable", `{}`}
	getTable := req{"glue", http.MethodPost, "AWSGlue.GetTable", `{}`}
	putObject := req{"s3", http.MethodPut, "", "parquet"}
	headObject := req{"s3", http.MethodHead, "", ""}
	checkpoint := req{"dynamodb", http.MethodPost, "DynamoDB_20120810.UpdateItem", `{"ExpressionAttributeNames":{"#cp":"checkpoint"}}`}
	renew := req{"dynamodb", http.MethodPost, "DynamoDB_20120810.UpdateItem", `{"ExpressionAttributeNames":{"#counter":"leaseCounter"}}`}
	glueOps := []string{"UpdateTable"}
	for _, tc := range []struct {
		name        string
		fault       NetFault
		req         req
		status      int
		contentType string
		body        string // substring
		backend     int64
	}{
		{"glue error before", NetFault{Service: "glue", Ops: glueOps, ErrorRate: 1}, updateTable, 500, "json", `"InternalServiceException"`, 0},
		{"glue error after", NetFault{Service: "glue", Ops: glueOps, ErrorRate: 1, After: true}, updateTable, 500, "json", `"InternalServiceException"`, 1},
		{"glue throttle", NetFault{Service: "glue", ErrorRate: 1, Throttle: true}, getTable, 400, "json", `"ThrottlingException"`, 0},
		{"other glue op untouched", NetFault{Service: "glue", Ops: glueOps, ErrorRate: 1}, getTable, 200, "", "{}", 1},
		{"s3 error before", NetFault{Service: "s3", Ops: []string{"PUT"}, ErrorRate: 1}, putObject, 500, "xml", "<Code>InternalError</Code>", 0},
		{"s3 error after", NetFault{Service: "s3", ErrorRate: 1, After: true}, putObject, 500, "xml", "<Code>InternalError</Code>", 1},
		{"s3 slow down", NetFault{Service: "s3", ErrorRate: 1, Throttle: true}, putObject, 503, "xml", "<Code>SlowDown</Code>", 0},
		{"s3 head: no body", NetFault{Service: "s3", ErrorRate: 1, Throttle: true}, headObject, 503, "xml", "", 0},
		{"s3 fault leaves glue alone", NetFault{Service: "s3", ErrorRate: 1}, updateTable, 200, "", "{}", 1},
		{"checkpoint write", NetFault{Service: "dynamodb", Ops: []string{"UpdateItem"}, Body: `"#cp"`, ErrorRate: 1}, checkpoint, 500, "json", "InternalServerError", 0},
		{"renewal untouched", NetFault{Service: "dynamodb", Ops: []string{"UpdateItem"}, Body: `"#cp"`, ErrorRate: 1}, renew, 200, "", "{}", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Set(tc.fault)
			before := hits.Load()
			status, ct, body := call(tc.req)
			if status != tc.status || !strings.Contains(ct, tc.contentType) || !strings.Contains(body, tc.body) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", status, ct, body, tc.status, tc.contentType, tc.body)
			}
			if got := hits.Load() - before; got != tc.backend {
				t.Errorf("%d requests reached the emulator, want %d", got, tc.backend)
			}
		})
	}
}

// TestProxyExpire checks an aged-out shard: GetShardIterator on it is
// answered ResourceNotFoundException without reaching the emulator, and
// ListShards answers leave it out; other shards are untouched.
func TestProxyExpire(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".ListShards") {
			_, _ = io.WriteString(w, `{"Shards":[{"ShardId":"shardId-0"},{"ShardId":"shardId-1"}],"NextToken":null}`)
			return
		}
		_, _ = io.WriteString(w, `{"ShardIterator":"it"}`)
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	p.Expire("shardId-0")
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(op, body string) (int, string) {
		r, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, p.URL(), strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := call("GetShardIterator", `{"ShardId":"shardId-0"}`); st != 400 || !strings.Contains(body, "ResourceNotFoundException") {
		t.Errorf("iterator on the aged-out shard: %d %s", st, body)
	}
	if st, body := call("GetShardIterator", `{"ShardId":"shardId-1"}`); st != 200 || !strings.Contains(body, `"it"`) {
		t.Errorf("iterator on a live shard: %d %s", st, body)
	}
	st, body := call("ListShards", `{}`)
	if st != 200 || strings.Contains(body, "shardId-0") || !strings.Contains(body, "shardId-1") {
		t.Errorf("list shards: %d %s", st, body)
	}
}
