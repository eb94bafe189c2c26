package motopatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/internal/testenv/motopatch"
)

// TestKinesisAtomic hammers one moto shard with PutRecords from several
// goroutines while others read it with GetRecords. Plain moto answers some
// of those calls with HTTP 500 (OrderedDict mutated during iteration);
// with the KinesisAtomic patch none fails, and every record put is read
// back exactly once under its own sequence number.
//
// The plain run is the reproduction: it runs first, until it has seen a
// failure (or a time limit, which fails the test, since the patched run
// would then prove nothing), and the patched run then does at least as
// many calls.
func TestKinesisAtomic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server twice")
	}
	plain := hammer(t, startMoto(t), 0, 2*time.Minute)
	t.Logf("plain moto: %d of %d calls failed with HTTP 500 (first: %v)", plain.failed, plain.calls, plain.first)
	if plain.failed == 0 {
		t.Fatalf("plain moto: no HTTP 500 in %d calls; the hammer no longer reproduces the race, so the patched run below would prove nothing", plain.calls)
	}
	patched := hammer(t, startMoto(t, motopatch.KinesisAtomic), plain.calls, 2*time.Minute)
	t.Logf("patched moto: %d of %d calls failed", patched.failed, patched.calls)
	if patched.failed != 0 {
		t.Fatalf("patched moto: %d of %d calls failed (first: %v)", patched.failed, patched.calls, patched.first)
	}
	if patched.put == 0 || patched.read < patched.put || patched.read > patched.put+patched.unknown || patched.seqs != patched.read {
		t.Fatalf("patched moto: put %d records (%d more with an unknown outcome), read back %d under %d distinct sequence numbers; want every record put read back once, under its own sequence number", patched.put, patched.unknown, patched.read, patched.seqs)
	}
}

type outcome struct {
	calls, failed int64 // PutRecords and GetRecords calls; those answered with HTTP 500
	first         error
	put, read     int64 // records acknowledged; records read back
	unknown       int64 // records of PutRecords calls answered 200 whose body the client lost
	seqs          int64 // distinct sequence numbers read back
}

// hammer runs writers and readers against a fresh one-shard stream until
// minCalls calls are done and, when minCalls is 0, a call failed with HTTP
// 500 or limit passed. It then reads the shard back from TRIM_HORIZON.
func hammer(t *testing.T, endpoint string, minCalls int64, limit time.Duration) outcome {
	t.Helper()
	ctx := t.Context()
	kc := client(t, endpoint)
	const stream = "race"
	if _, err := kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	shard := aws.String("shardId-000000000000")

	var o outcome
	var mu sync.Mutex
	fail := func(err error) bool {
		if !isServerError(err) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		o.failed++
		if o.first == nil {
			o.first = err
		}
		return true
	}
	var calls atomic.Int64
	var put, unknown atomic.Int64
	deadline := time.Now().Add(limit)
	done := func() bool {
		n := calls.Load()
		if minCalls > 0 {
			return n >= minCalls
		}
		mu.Lock()
		defer mu.Unlock()
		return o.failed > 0 || time.Now().After(deadline)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !done(); i++ {
				entries := make([]ktypes.PutRecordsRequestEntry, 100)
				for j := range entries {
					entries[j] = ktypes.PutRecordsRequestEntry{Data: []byte("x"), PartitionKey: aws.String(fmt.Sprint(w, "-", i, "-", j))}
				}
				out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
				calls.Add(1)
				switch {
				case err == nil:
					put.Add(int64(len(entries)) - int64(aws.ToInt32(out.FailedRecordCount)))
				case answeredButLost(err):
					// The server answered 200 and the client lost the body
					// (a connection closed under load): the records may be
					// in, their number is not known.
					unknown.Add(int64(len(entries)))
				case !fail(err):
					errs <- fmt.Errorf("PutRecords: %w", err)
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for !done() {
				it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: shard, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
				calls.Add(1)
				if err != nil {
					if !fail(err) {
						errs <- fmt.Errorf("GetShardIterator: %w", err)
						return
					}
					continue
				}
				_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(10000)})
				calls.Add(1)
				if err != nil && !answeredButLost(err) && !fail(err) {
					errs <- fmt.Errorf("GetRecords: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	o.calls, o.put, o.unknown = calls.Load(), put.Load(), unknown.Load()

	// Read back, with nothing writing.
	seqs := map[string]bool{}
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: shard, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	for iter := it.ShardIterator; iter != nil; {
		res, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) == 0 {
			break
		}
		for _, r := range res.Records {
			o.read++
			seqs[aws.ToString(r.SequenceNumber)] = true
		}
		iter = res.NextShardIterator
	}
	o.seqs = int64(len(seqs))
	return o
}

// answeredButLost reports an HTTP 200 answer whose body the client could
// not read (a connection closed under load): not the server's failure.
func answeredButLost(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == 200
}

// isServerError reports an HTTP 5xx answer.
func isServerError(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() >= 500
}

func client(t *testing.T, endpoint string) *kinesis.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.Retryer = aws.NopRetryer{} // every 500 is seen
	})
}

// startMoto starts moto_server with exactly the given patches (every other
// one switched off) and stops it when t ends.
func startMoto(t *testing.T, patches ...motopatch.Patch) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("moto_server not found on PATH; CI must install it (pip install 'moto[server]')")
		}
		t.Skip("moto_server not found on PATH; install it with: pip install 'moto[server]'")
	}
	env, err := motopatch.Env(filepath.Join(t.TempDir(), "motopatch"), patches...)
	if err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = env
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		kill()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { kill(); <-exited })
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/moto-api/", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
			if err = motopatch.Check(out.String(), patches...); err == nil {
				return endpoint
			}
		}
		select {
		case <-exited:
			t.Fatalf("moto_server exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server not ready: %v\n%s", err, out.String())
		}
	}
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

// TestKinesisFastPath runs testdata/kinesis_equivalence.py: the patch's
// GetRecords and first/last sequence numbers answer exactly as moto's own
// code, on consecutive keys and on a shard with a gap.
func TestKinesisFastPath(t *testing.T) {
	if err := exec.CommandContext(t.Context(), "python3", "-c", "import moto.kinesis").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 cannot import moto: %v; CI must install it (pip install 'moto[server]')", err)
		}
		t.Skipf("python3 cannot import moto (%v); install it with: pip install 'moto[server]'", err)
	}
	dir := filepath.Join(t.TempDir(), "motopatch")
	if _, err := motopatch.Env(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "python3", "testdata/kinesis_equivalence.py", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kinesis fast path matches moto") {
		t.Fatalf("kinesis_equivalence.py: %v\n%s", err, out)
	}
}
