package lease_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/lease"
)

// lossyProxy forwards requests to an emulator; while armed, the next
// request whose body contains match is forwarded and applied, and its
// answer replaced by a 500: the SDK sees an error it retries and resends
// the write, as when a response is lost or fails its checksum.
type lossyProxy struct {
	URL    string
	target *url.URL
	match  atomic.Value // string; "" disarmed
	lost   atomic.Int64
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{target: u}
	p.match.Store("")
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	answer, _ := io.ReadAll(resp.Body)
	if m := p.match.Load().(string); m != "" && strings.Contains(string(body), m) && p.match.CompareAndSwap(m, "") {
		p.lost.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost after the write applied"}`))
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// TestLeaseWriteResentAfterItAppliedSucceeds: the SDK resends a
// conditional lease write whose answer was lost after it applied; the
// resend fails the condition on the write's own result. Every holder
// write used to report that as a lost lease (ErrLost, ErrHeld), so a
// worker dropped a lease it held and logged that another process runs
// under its worker id.
func TestLeaseWriteResentAfterItAppliedSucceeds(t *testing.T) {
	p, s, l := lossyStore(t, "leases-resend")
	ctx := t.Context()
	var err error
	// loseNext arms the proxy for the next UpdateItem and checks that it
	// fired, so that no step passes without a lost answer.
	loseNext := func(step string, write func() error) {
		t.Helper()
		before := p.lost.Load()
		p.match.Store("UpdateExpression")
		err := write()
		if p.lost.Load() != before+1 {
			t.Fatalf("%s: the proxy lost no answer; the test did not run its case", step)
		}
		if err != nil {
			t.Fatalf("%s after a lost answer and the SDK's resend: %v, want success (the write applied)", step, err)
		}
	}
	loseNext("take", func() error { l, err = s.Take(ctx, l, "w1"); return err })
	loseNext("renew", func() error { l, err = s.Renew(ctx, l); return err })
	loseNext("checkpoint", func() error { l, err = s.UpdateCheckpoint(ctx, l, "42"); return err })
	got, err := s.Get(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != "w1" || got.Counter != l.Counter || got.Checkpoint != "42" {
		t.Fatalf("lease %+v, want owner w1, counter %d, checkpoint 42", got, l.Counter)
	}
	loseNext("release", func() error { return s.Release(ctx, l) })
	got, err = s.Get(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != "" || got.Counter != l.Counter+1 {
		t.Fatalf("released lease %+v, want no owner and counter %d", got, l.Counter+1)
	}
	// A write that lost to another writer still fails.
	if _, err := s.Renew(ctx, l); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("renew of a released lease: %v, want ErrLost", err)
	}
}

// TestSettleStagedResentAfterItAppliedSucceeds: the committer's mark of a
// staged batch (committed, with its snapshot) whose answer was lost after
// it applied is resent by the SDK and fails its "still staged" condition
// on its own result. It used to report ErrNotStaged, so the committer
// logged a committed batch as not marked and skipped its stage latency.
func TestSettleStagedResentAfterItAppliedSucceeds(t *testing.T) {
	p, s, l := lossyStore(t, "leases-settle-resend")
	ctx := t.Context()
	if _, err := s.Take(ctx, l, "w1"); err != nil {
		t.Fatal(err)
	}
	for i, state := range []lease.StagedState{lease.StateCommitted, lease.StateRefused} {
		id := fmt.Sprintf("batch-%d", i)
		if err := s.Stage(ctx, lease.Staged{CommitID: id, Worker: "w1", Shards: []string{"shard-1"}, StagedAt: time.Now(), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		snap := int64(0)
		if state == lease.StateCommitted {
			snap = 77
		}
		before := p.lost.Load()
		p.match.Store(":staged")
		err := s.SettleStaged(ctx, id, state, snap, "why", time.Now())
		if p.lost.Load() != before+1 {
			t.Fatalf("%s: the proxy lost no answer; the test did not run its case", state)
		}
		if err != nil {
			t.Fatalf("settle %s after a lost answer and the SDK's resend: %v, want success (the write applied)", state, err)
		}
		got, err := s.GetStaged(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != state || got.SnapshotID != snap {
			t.Fatalf("staged item %s in snapshot %d, want %s in %d", got.State, got.SnapshotID, state, snap)
		}
		// Settling again, as a second committer would, still fails.
		if err := s.SettleStaged(ctx, id, state, snap, "why", time.Now()); !errors.Is(err, lease.ErrNotStaged) {
			t.Fatalf("settle of a settled batch: %v, want ErrNotStaged", err)
		}
	}
}

// lossyStore is a lease store in table, reached through a lossyProxy in
// front of moto, holding one new lease, shard-1, which it returns.
func lossyStore(t *testing.T, table string) (*lossyProxy, *lease.DynamoStore, lease.Lease) {
	t.Helper()
	p := newLossyProxy(t, testenv.Moto(t))
	s, err := lease.NewDynamoStore(newDynamoClient(t, p.URL), lease.DynamoStoreConfig{Table: table, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, lease.Lease{Key: "shard-1"}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Get(ctx, "shard-1")
	if err != nil {
		t.Fatal(err)
	}
	return p, s, l
}
