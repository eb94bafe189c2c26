package ingest_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/paystream/paystream/pkg/producer"
)

// hangingDynamo is a proxy in front of moto's DynamoDB that, while hang is
// set, holds every checkpoint write (an UpdateItem that sets the checkpoint
// attribute) until the caller gives up; other calls pass.
type hangingDynamo struct {
	hang atomic.Bool
	hung atomic.Int64 // checkpoint writes held
}

func (h *hangingDynamo) start(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if h.hang.Load() && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".UpdateItem") && bytes.Contains(body, []byte(`"#cp"`)) {
			h.hung.Add(1)
			<-r.Context().Done() // the client's deadline
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// While every lease checkpoint write hangs, flushes go on committing at
// their pace, the leases are renewed and kept, and the failed writes are
// logged and counted. (The checkpoint used to be written on the pipeline
// goroutine with a 5 s deadline, holding the lease's write lock, which its
// renewal waits for, past the 3 s failover time: each commit waited 5 s per
// shard, and nothing counted the failures.)
func TestHungCheckpointWritesBlockNeitherCommitsNorRenewals(t *testing.T) {
	s := newStack(t, 2)
	ctx := context.Background()
	var h hangingDynamo
	endpoint := h.start(t, os.Getenv("AWS_ENDPOINT_URL"))
	s.dynamo = dynamodb.NewFromConfig(s.aws, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
	w := s.startWorker("w1", nil)
	waitUntilWithin(t, 20*time.Second, "the worker holds both shards", func() bool { return len(w.w.Held()) == 2 })

	h.hang.Store(true)
	commits := counterSum(t, w.reg, "paystream_sink_commits_total")
	start := time.Now()
	cfg := producer.DefaultConfig()
	cfg.Count, cfg.Rate = 1000, 125 // 8 s: more than two failover times
	_, sent := s.produce(ctx, cfg)
	commits = counterSum(t, w.reg, "paystream_sink_commits_total") - commits
	took := time.Since(start)
	s.expectExactlyOnce(ctx, sent, 30*time.Second)
	// One flush every 500 ms would be 16 (fewer on a loaded machine or
	// under -race); a flush held 5 s per shard, one per 10 s.
	t.Logf("%v commits in %s of produce while checkpoints hang", commits, took.Round(time.Millisecond))
	if commits < 3 {
		t.Errorf("%v commits in %s: flushes waited for the hung checkpoints", commits, took.Round(time.Millisecond))
	}

	failed := counterSum(t, w.reg, "paystream_ingest_lease_write_failures_total")
	lost := counterSum(t, w.reg, "paystream_lease_lost_total")
	t.Logf("checkpoint writes held by the proxy: %d; counted failures: %v; leases lost: %v", h.hung.Load(), failed, lost)
	if h.hung.Load() == 0 {
		t.Fatal("no checkpoint write reached the hanging proxy")
	}
	if failed == 0 {
		t.Error("paystream_ingest_lease_write_failures_total is 0 although checkpoint writes hung")
	}
	if lost != 0 || len(w.w.Held()) != 2 {
		t.Errorf("leases lost %v times, %d held: a hung checkpoint held up the renewals", lost, len(w.w.Held()))
	}
}
