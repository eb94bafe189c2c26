//go:build linux

package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go/eventstream"

	"github.com/paystream/paystream/internal/retry"
)

// NetFault is what a Proxy does to the requests it forwards while the fault
// is set. The zero value forwards everything untouched.
type NetFault struct {
	// Service limits the fault to "kinesis", "dynamodb", "glue" or "s3"
	// requests (the service of the request's signature); "" means every
	// request.
	Service string
	// Ops limits the fault to these operations: the action of a JSON
	// protocol request ("UpdateItem", "UpdateTable", from X-Amz-Target) or
	// the HTTP method of an S3 request ("PUT", "GET"). Empty: every one.
	Ops []string
	// Body limits the fault to requests whose body contains it (e.g. a
	// DynamoDB update expression). Empty: every body.
	Body string
	// Latency delays each matching request before it is forwarded.
	Latency time.Duration
	// ErrorRate is the fraction of matching requests answered with HTTP 500
	// in the service's own error shape (InternalFailure, InternalServerError,
	// InternalServiceException, S3's XML InternalError).
	ErrorRate float64
	// After makes the injected errors happen after the request reached the
	// emulator and was applied: the caller sees a failure for a write that
	// happened (an unknown outcome). Without it the request is not forwarded.
	After bool
	// Throttle answers the failing fraction with the service's throttling
	// error instead of 500 (never applied): 400
	// ProvisionedThroughputExceededException (Kinesis, DynamoDB), 400
	// ThrottlingException (Glue), 503 SlowDown (S3).
	Throttle bool
	// Down resets every matching connection without an answer, like an
	// endpoint that restarts.
	Down bool
}

func (f NetFault) String() string {
	var parts []string
	if f.Service != "" {
		parts = append(parts, f.Service)
	}
	if len(f.Ops) > 0 {
		parts = append(parts, strings.Join(f.Ops, "/"))
	}
	if f.Body != "" {
		parts = append(parts, fmt.Sprintf("body~%q", f.Body))
	}
	switch {
	case f.Down:
		parts = append(parts, "down")
	case f.Throttle:
		parts = append(parts, fmt.Sprintf("throttle %.0f%%", f.ErrorRate*100))
	case f.ErrorRate > 0 && f.After:
		parts = append(parts, fmt.Sprintf("errors-after-apply %.0f%%", f.ErrorRate*100))
	case f.ErrorRate > 0:
		parts = append(parts, fmt.Sprintf("errors %.0f%%", f.ErrorRate*100))
	}
	if f.Latency > 0 {
		parts = append(parts, "latency "+f.Latency.String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// ProxyStats counts what a Proxy did.
type ProxyStats struct {
	Forwarded, Delayed, Errors, ErrorsAfterApply, Throttled, Resets int64
	// Injected counts the injected failures by service, operation and
	// kind, e.g. "s3 PUT throttle", "glue UpdateTable error-after-apply".
	Injected map[string]int64 `json:",omitempty"`
}

// add adds o's counts to s.
func (s *ProxyStats) add(o ProxyStats) {
	s.Forwarded += o.Forwarded
	s.Delayed += o.Delayed
	s.Errors += o.Errors
	s.ErrorsAfterApply += o.ErrorsAfterApply
	s.Throttled += o.Throttled
	s.Resets += o.Resets
	for k, v := range o.Injected {
		if s.Injected == nil {
			s.Injected = map[string]int64{}
		}
		s.Injected[k] += v
	}
}

// Proxy is an HTTP reverse proxy between one consumer process and the AWS
// emulator that injects latency, errors, throttling and connection resets
// (NetFault). Start it with NewProxy; Close stops it.
//
// It passes SubscribeToShard's event stream through (the SDK reads it as
// a chunked HTTP/1.1 answer over plain http; each message is flushed as it
// arrives), and a fault can break an open one (see Set).
type Proxy struct {
	target *url.URL
	routes map[string]*url.URL // by service (Route)
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy

	mu       sync.Mutex
	fault    NetFault
	rng      *rand.Rand
	injected map[string]int64
	expired  map[string]bool // shards aged out of the stream (Expire)
	streams  map[*liveStream]bool

	forwarded, delayed, errs, errsAfter, throttled, resets atomic.Int64
}

var errInjectedAfter = errors.New("chaos: injected error after the request was applied")

// Route sends one service's requests (by the credential scope of their
// signature, as NetFault.Service) to another target than the proxy's.
type Route struct {
	Service string // "kinesis", "dynamodb", "glue", "s3"
	Target  string // http://127.0.0.1:PORT
}

// NewProxy listens on a free loopback port and forwards to target
// ("http://127.0.0.1:PORT"), or for a service in routes to its route's
// target. seed drives which requests fail.
func NewProxy(target string, seed uint64, routes ...Route) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	byService := map[string]*url.URL{}
	for _, rt := range routes {
		ru, err := url.Parse(rt.Target)
		if err != nil {
			return nil, fmt.Errorf("proxy route for %s %q: %w", rt.Service, rt.Target, err)
		}
		byService[rt.Service] = ru
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{target: u, routes: byService, ln: ln, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), injected: map[string]int64{}, streams: map[*liveStream]bool{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			to := u
			if ru, ok := byService[serviceOf(r.In)]; ok {
				to = ru
			}
			r.SetURL(to)
			r.Out.Host = r.In.Host // keep the signed Host header
		},
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ModifyResponse: func(resp *http.Response) error {
			if gone, _ := resp.Request.Context().Value(listKey{}).(map[string]bool); gone != nil {
				return dropShards(resp, gone)
			}
			after, _ := resp.Request.Context().Value(afterKey{}).(bool)
			stream := isEventStream(resp)
			switch {
			case after && stream:
				// The subscription is open at the emulator (it counts
				// for the resubscribe window) and is dropped here.
				_ = resp.Body.Close()
				return errInjectedAfter
			case after:
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				return errInjectedAfter
			case stream:
				if ls, _ := resp.Request.Context().Value(streamKey{}).(*liveStream); ls != nil {
					resp.Body = &eventBody{p: p, ls: ls, r: resp.Body}
				}
			}
			return nil
		},
		// A stream cut by a fault is counted in the stats, not logged.
		ErrorLog: log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errInjectedAfter) {
				p.errsAfter.Add(1)
				p.inject(r, "error-after-apply")
				writeAWSError(w, r, false)
				return
			}
			switch cause := context.Cause(r.Context()); {
			case errors.Is(cause, errStreamReset):
				reset(w) // a subscription cut before its answer began
				return
			case errors.Is(cause, errStreamFailed):
				writeAWSError(w, r, false)
				return
			case cause != nil:
				return // the client went away
			}
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "chaos proxy: "+err.Error())
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

type afterKey struct{}

// listKey marks a ListShards request whose answer must leave out the
// expired shards it holds.
type listKey struct{}

// Expire makes shards look aged out of the stream's retention from now on,
// as Kinesis drops a closed shard once its records are past retention:
// GetShardIterator on one answers ResourceNotFoundException and ListShards
// leaves it out. A reader that already holds an iterator reads on.
func (p *Proxy) Expire(shards ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.expired == nil {
		p.expired = map[string]bool{}
	}
	for _, id := range shards {
		p.expired[id] = true
	}
}

// expiredShards is a copy of the expired set (nil when empty).
func (p *Proxy) expiredShards() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.expired) == 0 {
		return nil
	}
	out := make(map[string]bool, len(p.expired))
	for k := range p.expired {
		out[k] = true
	}
	return out
}

// aged answers r itself when it asks for an iterator on an expired shard
// (true), or marks a ListShards request for filtering (returned in *r).
func (p *Proxy) aged(w http.ResponseWriter, r **http.Request) bool {
	gone := p.expiredShards()
	if gone == nil || serviceOf(*r) != "kinesis" {
		return false
	}
	switch opOf(*r) {
	case "ListShards":
		*r = (*r).WithContext(context.WithValue((*r).Context(), listKey{}, gone))
	case "GetShardIterator", "SubscribeToShard":
		b, err := io.ReadAll((*r).Body)
		_ = (*r).Body.Close()
		(*r).Body = io.NopCloser(bytes.NewReader(b))
		var in struct {
			ShardID string `json:"ShardId"`
		}
		if err != nil || json.Unmarshal(b, &in) != nil || !gone[in.ShardID] {
			return false
		}
		p.inject(*r, "expired")
		body := fmt.Sprintf(`{"__type":"ResourceNotFoundException","message":"Shard %s in stream under account 123456789012 does not exist"}`, in.ShardID)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, body)
		return true
	}
	return false
}

// dropShards rewrites a ListShards answer without the shards in gone.
func dropShards(resp *http.Response, gone map[string]bool) error {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("chaos: ListShards answer: %w", err)
	}
	var shards []json.RawMessage
	if err := json.Unmarshal(out["Shards"], &shards); err != nil {
		return fmt.Errorf("chaos: ListShards shards: %w", err)
	}
	kept := shards[:0]
	for _, sh := range shards {
		var id struct {
			ShardID string `json:"ShardId"`
		}
		if json.Unmarshal(sh, &id) == nil && gone[id.ShardID] {
			continue
		}
		kept = append(kept, sh)
	}
	if out["Shards"], err = json.Marshal(kept); err != nil {
		return err
	}
	if b, err = json.Marshal(out); err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return nil
}

// URL is the proxy's endpoint, for AWS_ENDPOINT_URL.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Set replaces the active fault. NetFault{} heals. A fault that matches
// Kinesis SubscribeToShard also acts on the event streams open through
// the proxy: Down cuts every one (the connection is aborted mid-stream),
// errors (not after apply, not throttling) end each with probability
// ErrorRate with an InternalFailureException event, as Kinesis ends a
// subscription it cannot serve; latency delays each message while it
// lasts.
func (p *Proxy) Set(f NetFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
	if !f.matchesStream() {
		return
	}
	for ls := range p.streams {
		switch {
		case f.Down:
			p.resets.Add(1)
			p.injected["kinesis SubscribeToShard reset-stream"]++
			ls.cancel(errStreamReset)
		case f.ErrorRate > 0 && !f.After && !f.Throttle && p.rng.Float64() < f.ErrorRate:
			p.errs.Add(1)
			p.injected["kinesis SubscribeToShard error-in-stream"]++
			ls.cancel(errStreamFailed)
		}
	}
}

// matchesStream reports whether f applies to Kinesis SubscribeToShard
// calls, and so to their open event streams.
func (f NetFault) matchesStream() bool {
	return (f.Service == "" || f.Service == "kinesis") && f.Body == "" &&
		(len(f.Ops) == 0 || slices.Contains(f.Ops, "SubscribeToShard"))
}

// Stats returns the counts so far.
func (p *Proxy) Stats() ProxyStats {
	st := ProxyStats{
		Forwarded: p.forwarded.Load(), Delayed: p.delayed.Load(), Errors: p.errs.Load(),
		ErrorsAfterApply: p.errsAfter.Load(), Throttled: p.throttled.Load(), Resets: p.resets.Load(),
		Injected: map[string]int64{},
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.injected {
		st.Injected[k] = v
	}
	return st
}

// inject counts one injected failure of kind on r.
func (p *Proxy) inject(r *http.Request, kind string) {
	key := serviceOf(r) + " " + opOf(r) + " " + kind
	p.mu.Lock()
	p.injected[key]++
	p.mu.Unlock()
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	return err
}

// serviceOf names the AWS service of r from the credential scope of its
// signature (…/REGION/SERVICE/aws4_request), or else its X-Amz-Target.
func serviceOf(r *http.Request) string {
	if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred, _, _ = strings.Cut(cred, ",")
		if parts := strings.Split(cred, "/"); len(parts) == 5 {
			return parts[3]
		}
	}
	t := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasPrefix(t, "Kinesis_"):
		return "kinesis"
	case strings.HasPrefix(t, "DynamoDB_"):
		return "dynamodb"
	case strings.HasPrefix(t, "AWSGlue."):
		return "glue"
	case t == "":
		return ""
	default:
		return strings.ToLower(strings.SplitN(t, "_", 2)[0])
	}
}

// opOf names the operation of r: the action of a JSON protocol request,
// else the HTTP method (S3).
func opOf(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	return r.Method
}

// matches reports whether f applies to r. It reads r's body when f
// matches on it, and puts it back.
func (f NetFault) matches(r *http.Request) bool {
	if f.Service != "" && f.Service != serviceOf(r) {
		return false
	}
	if len(f.Ops) > 0 && !slices.Contains(f.Ops, opOf(r)) {
		return false
	}
	if f.Body == "" {
		return true
	}
	b, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	return err == nil && bytes.Contains(b, []byte(f.Body))
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.fault
	roll := p.rng.Float64()
	p.mu.Unlock()
	if p.aged(w, &r) {
		return
	}
	if serviceOf(r) == "kinesis" && opOf(r) == "SubscribeToShard" {
		ls, done := p.track(r)
		defer done()
		r = r.WithContext(context.WithValue(ls.ctx, streamKey{}, ls))
	}
	if !f.matches(r) {
		f = NetFault{}
	}
	if f.Latency > 0 {
		p.delayed.Add(1)
		if retry.Sleep(r.Context(), f.Latency) != nil {
			return
		}
	}
	switch {
	case f.Down:
		p.resets.Add(1)
		p.inject(r, "reset")
		reset(w)
		return
	case f.ErrorRate > 0 && roll < f.ErrorRate && f.Throttle:
		p.throttled.Add(1)
		p.inject(r, "throttle")
		writeAWSError(w, r, true)
		return
	case f.ErrorRate > 0 && roll < f.ErrorRate && f.After:
		r = r.WithContext(context.WithValue(r.Context(), afterKey{}, true))
	case f.ErrorRate > 0 && roll < f.ErrorRate:
		p.errs.Add(1)
		p.inject(r, "error")
		writeAWSError(w, r, false)
		return
	}
	p.forwarded.Add(1)
	p.rp.ServeHTTP(w, r)
}

// reset closes the client's connection without an answer (TCP RST).
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeAWSError answers r with an injected server error (throttle false)
// or throttling error in the shape r's service's SDK client parses: JSON
// for Kinesis, DynamoDB (with its CRC32) and Glue, XML for S3.
func writeAWSError(w http.ResponseWriter, r *http.Request, throttle bool) {
	service := serviceOf(r)
	status, code, typ := http.StatusInternalServerError, "InternalFailure", ""
	switch {
	case service == "s3":
		writeS3Error(w, r, throttle)
		return
	case service == "glue" && throttle:
		status, code = http.StatusBadRequest, "ThrottlingException"
	case service == "glue":
		code = "InternalServiceException"
	case throttle:
		status, code = http.StatusBadRequest, "ProvisionedThroughputExceededException"
	case service == "dynamodb":
		code = "InternalServerError"
	}
	typ = code
	if service == "dynamodb" {
		typ = "com.amazonaws.dynamodb.v20120810#" + code
	}
	body := fmt.Sprintf(`{"__type":%q,"message":"chaos: injected %s"}`, typ, code)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	if service == "dynamodb" {
		// DynamoDB signs every answer with a CRC32 the SDK checks.
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10))
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// writeS3Error answers an S3 request with 500 InternalError or 503
// SlowDown in S3's XML error shape (no body for HEAD, as S3 does).
func writeS3Error(w http.ResponseWriter, r *http.Request, throttle bool) {
	status, code := http.StatusInternalServerError, "InternalError"
	if throttle {
		status, code = http.StatusServiceUnavailable, "SlowDown"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", "chaos")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>chaos: injected %s</Message><RequestId>chaos</RequestId><HostId>chaos</HostId></Error>`, code, code)
}

// ---- SubscribeToShard event streams ----

var (
	errStreamReset  = errors.New("chaos: event stream cut (endpoint down)")
	errStreamFailed = errors.New("chaos: event stream ended with an injected InternalFailureException")
)

// streamKey marks a SubscribeToShard request with its liveStream.
type streamKey struct{}

// liveStream is one SubscribeToShard call in flight through the proxy: its
// forwarded request's context, which Set cancels with a cause to break it.
type liveStream struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// track registers r's subscription until done is called.
func (p *Proxy) track(r *http.Request) (*liveStream, func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	ls := &liveStream{ctx: ctx, cancel: cancel}
	p.mu.Lock()
	p.streams[ls] = true
	p.mu.Unlock()
	return ls, func() {
		p.mu.Lock()
		delete(p.streams, ls)
		p.mu.Unlock()
		cancel(nil)
	}
}

// isEventStream reports an answer in AWS's event stream encoding.
func isEventStream(resp *http.Response) bool {
	return strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.amazon.eventstream")
}

// eventBody is a SubscribeToShard answer's body as the proxy forwards it:
// whole event stream messages (each starts with its total length), so
// that a fault can end the stream between two of them.
type eventBody struct {
	p       *Proxy
	ls      *liveStream
	r       io.ReadCloser
	pending []byte // the rest of the message being forwarded
	end     bool   // the injected exception was sent: EOF next
}

// maxEventMessage bounds a message's length (an event carries at most
// 10 MiB of records, base64 and JSON around them).
const maxEventMessage = 24 << 20

func (b *eventBody) Read(out []byte) (int, error) {
	if len(b.pending) == 0 {
		if b.end {
			return 0, io.EOF
		}
		msg, err := b.next()
		if err != nil {
			if errors.Is(context.Cause(b.ls.ctx), errStreamFailed) {
				b.pending, b.end = internalFailureMessage(), true
			} else {
				return 0, err
			}
		} else {
			b.pending = msg
		}
	}
	n := copy(out, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// next reads the next whole message, after the latency of a fault that
// holds when it arrived.
func (b *eventBody) next() ([]byte, error) {
	var prelude [4]byte
	if _, err := io.ReadFull(b.r, prelude[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(prelude[:])
	if n < 16 || n > maxEventMessage {
		return nil, fmt.Errorf("chaos: event stream message of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, prelude[:])
	if _, err := io.ReadFull(b.r, msg[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b.p.mu.Lock()
	f := b.p.fault
	b.p.mu.Unlock()
	if f.Latency > 0 && f.matchesStream() {
		b.p.delayed.Add(1)
		if err := retry.Sleep(b.ls.ctx, f.Latency); err != nil {
			return nil, err
		}
	}
	return msg, nil
}

func (b *eventBody) Close() error { return b.r.Close() }

// internalFailureMessage is the exception event Kinesis ends a
// subscription with when it fails on its side.
func internalFailureMessage() []byte {
	var msg eventstream.Message
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.ExceptionMessageType))
	msg.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue("InternalFailureException"))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = []byte(`{"message":"chaos: injected InternalFailureException"}`)
	var buf bytes.Buffer
	_ = eventstream.NewEncoder().Encode(&buf, msg)
	return buf.Bytes()
}
