package kinesistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Option configures a Server.
type Option func(*settings)

type settings struct {
	addr         string
	now          func() time.Time
	iteratorTTL  time.Duration
	tokenTTL     time.Duration
	reshardDelay time.Duration
	createDelay  time.Duration
	readLimit    int
	writeLimit   int
	faults       Faults
	region       string
	account      string
	log          *slog.Logger

	answerDelay time.Duration

	consumerDelay time.Duration
	consumerLimit int
	subLifetime   time.Duration
	resubscribe   time.Duration
}

// WithAddr sets the listen address (default "127.0.0.1:0", a free port).
func WithAddr(addr string) Option { return func(s *settings) { s.addr = addr } }

// WithClock sets the clock used for arrival times, iterator and NextToken
// expiry, rate limits and delays (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithIteratorTTL sets how long a shard iterator stays valid (default
// 5 min, as in AWS).
func WithIteratorTTL(d time.Duration) Option { return func(s *settings) { s.iteratorTTL = d } }

// WithReshardDelay keeps a stream UPDATING for d after SplitShard,
// MergeShards or UpdateShardCount before the change takes effect (default
// 0: at once).
func WithReshardDelay(d time.Duration) Option { return func(s *settings) { s.reshardDelay = d } }

// WithAnswerDelay holds back every answer but a subscription's (which has
// its own short hold) by d after the call was carried out, as a network
// would (default 0). A server in another process than its clients wants
// it: smithy-go (v1.28.9) closes a request's body as soon as the answer's
// headers arrive, and when they come before net/http's transport has made
// its last read of the body (a loaded machine can deschedule it for
// milliseconds), that read fails and the transport drops the connection:
// the caller sees a failure for a call that was applied, and a producer
// resends records that landed.
func WithAnswerDelay(d time.Duration) Option { return func(s *settings) { s.answerDelay = d } }

// WithCreateDelay keeps a new stream CREATING for d (default 0).
func WithCreateDelay(d time.Duration) Option { return func(s *settings) { s.createDelay = d } }

// WithReadLimit throttles GetRecords calls beyond n per shard per second of
// the clock (AWS: 5). 0, the default, sets no limit.
func WithReadLimit(n int) Option { return func(s *settings) { s.readLimit = n } }

// WithWriteLimit throttles records beyond n per shard per second of the
// clock (AWS: 1,000). 0, the default, sets no limit.
func WithWriteLimit(n int) Option { return func(s *settings) { s.writeLimit = n } }

// WithFaults sets the initial fault injection (see SetFaults).
func WithFaults(f Faults) Option { return func(s *settings) { s.faults = f } }

// WithLogger logs each request at debug level and server errors at error
// level (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// Faults says which calls the server throttles with
// ProvisionedThroughputExceededException.
type Faults struct {
	GetRecords Throttle // GetRecords calls
	PutRecords Throttle // PutRecords entries and PutRecord calls
	// Seed seeds the RNG that Throttle.Probability draws from.
	Seed uint64
}

// Throttle throttles some of a kind of call. Both rules may be set; a call
// is throttled when either says so.
type Throttle struct {
	// Every > 0 throttles the last Burst calls of every Every calls
	// (Every 3, Burst 1: calls 3, 6, 9, ...).
	Every int
	// Burst is how many consecutive calls of each Every are throttled
	// (default 1, at most Every).
	Burst int
	// Probability throttles each call with this probability.
	Probability float64
	// Shards, when not empty, limits the rule to calls to these shards
	// (by shard id; for PutRecords, the shard an entry would go to). Only
	// those calls count for Every.
	Shards []string
}

func (t Throttle) validate(name string) error {
	if t.Every < 0 || t.Burst < 0 || (t.Every > 0 && t.Burst > t.Every) {
		return fmt.Errorf("kinesistest: %s throttle: Every %d and Burst %d must be >= 0 with Burst <= Every", name, t.Every, t.Burst)
	}
	if !(t.Probability >= 0 && t.Probability <= 1) {
		return fmt.Errorf("kinesistest: %s throttle: Probability %v is not in [0, 1]", name, t.Probability)
	}
	return nil
}

// Stats counts what the server has served since it started.
type Stats struct {
	Requests            map[string]int // by operation, including failed calls
	RecordsPut          int            // records stored
	RecordsRead         int            // records returned by GetRecords
	GetRecordsThrottled int            // GetRecords calls answered with a throttle
	PutThrottled        int            // PutRecords entries and PutRecord calls throttled
	IteratorsExpired    int            // GetRecords calls with an expired iterator
	RecordsPushed       int            // records sent in SubscribeToShard events
}

// Server is the emulator. Its exported field URL is the endpoint to give
// the SDK ("http://127.0.0.1:PORT").
type Server struct {
	URL string

	cfg    settings
	nonce  string
	ln     net.Listener
	hs     *http.Server
	served chan struct{}
	closed atomic.Bool
	done   chan struct{}  // closed by Close (under mu): subscriptions end
	subWG  sync.WaitGroup // serving subscriptions; Add under mu while done is open

	mu       sync.Mutex // guards everything below
	streams  map[string]*stream
	faults   Faults
	rng      *mrand.Rand
	getCalls int
	putCalls int
	stats    Stats
}

// NewServer starts a server listening on WithAddr (default a free
// loopback port). It serves until Close.
func NewServer(opts ...Option) (*Server, error) {
	cfg := settings{
		addr:        "127.0.0.1:0",
		now:         time.Now,
		iteratorTTL: 5 * time.Minute,
		tokenTTL:    5 * time.Minute,
		region:      "us-east-1",
		account:     "000000000000",
		log:         slog.New(slog.DiscardHandler),

		consumerLimit: defaultConsumerLimit,
		subLifetime:   defaultSubLifetime,
		resubscribe:   defaultResubscribe,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.iteratorTTL <= 0 {
		return nil, errors.New("kinesistest: iterator TTL must be positive")
	}
	if cfg.reshardDelay < 0 || cfg.createDelay < 0 || cfg.answerDelay < 0 || cfg.readLimit < 0 || cfg.writeLimit < 0 {
		return nil, errors.New("kinesistest: delays and limits must not be negative")
	}
	if cfg.consumerDelay < 0 || cfg.resubscribe < 0 || cfg.consumerLimit < 0 {
		return nil, errors.New("kinesistest: consumer delay, consumer limit and resubscribe window must not be negative")
	}
	if cfg.subLifetime <= 0 {
		return nil, errors.New("kinesistest: subscription lifetime must be positive")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Server{cfg: cfg, nonce: hex.EncodeToString(b[:]), streams: map[string]*stream{}, stats: Stats{Requests: map[string]int{}}, done: make(chan struct{})}
	if err := s.SetFaults(cfg.faults); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("kinesistest: listen on %s: %w", cfg.addr, err)
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		_ = s.hs.Serve(ln)
	}()
	return s, nil
}

// Start starts a server for one test and closes it in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := NewServer(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops serving, ends subscriptions, closes open connections and
// waits for the serving goroutines. Calling it again does nothing.
func (s *Server) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.mu.Lock()
	close(s.done)
	s.mu.Unlock()
	_ = s.hs.Close()
	<-s.served
	s.subWG.Wait()
}

// SetFaults replaces the fault injection and restarts its call counters
// and RNG.
func (s *Server) SetFaults(f Faults) error {
	if err := errors.Join(f.GetRecords.validate("GetRecords"), f.PutRecords.validate("PutRecords")); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f.GetRecords.Shards = slices.Clone(f.GetRecords.Shards)
	f.PutRecords.Shards = slices.Clone(f.PutRecords.Shards)
	s.faults = f
	s.rng = mrand.New(mrand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	s.getCalls, s.putCalls = 0, 0
	return nil
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Requests = make(map[string]int, len(s.stats.Requests))
	for k, v := range s.stats.Requests {
		out.Requests[k] = v
	}
	return out
}

// throttle counts a call of a kind to shard in *calls and decides whether
// it is throttled. Callers hold s.mu.
func (s *Server) throttle(t Throttle, calls *int, shard string) bool {
	if len(t.Shards) > 0 && !slices.Contains(t.Shards, shard) {
		return false
	}
	*calls++
	n := *calls
	if t.Every > 0 {
		burst := max(t.Burst, 1)
		if (n-1)%t.Every >= t.Every-burst {
			return true
		}
	}
	return t.Probability > 0 && s.rng.Float64() < t.Probability
}

// ---- HTTP ----

const (
	targetPrefix = "Kinesis_20131202."
	contentType  = "application/x-amz-json-1.1"
	maxBody      = 12 << 20 // PutRecords is at most 5 MiB of data, base64 grows it by a third
)

// apiError is an error in the AWS JSON shape.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

func invalidArg(format string, args ...any) *apiError {
	return errorf("InvalidArgumentException", format, args...)
}

type handler func(s *Server, body []byte) (any, error)

// op adapts a typed operation to a handler that decodes its JSON input.
func op[I any](f func(*Server, *I) (any, error)) handler {
	return func(s *Server, body []byte) (any, error) {
		in := new(I)
		if len(body) > 0 {
			if err := json.Unmarshal(body, in); err != nil {
				return nil, errorf("SerializationException", "cannot decode the request body: %v", err)
			}
		}
		return f(s, in)
	}
}

var handlers = map[string]handler{
	"CreateStream":          op((*Server).createStream),
	"DeleteStream":          op((*Server).deleteStream),
	"ListStreams":           op((*Server).listStreams),
	"DescribeStream":        op((*Server).describeStream),
	"DescribeStreamSummary": op((*Server).describeStreamSummary),
	"ListShards":            op((*Server).listShards),
	"PutRecord":             op((*Server).putRecord),
	"PutRecords":            op((*Server).putRecords),
	"GetShardIterator":      op((*Server).getShardIterator),
	"GetRecords":            op((*Server).getRecords),
	"SplitShard":            op((*Server).splitShard),
	"MergeShards":           op((*Server).mergeShards),
	"UpdateShardCount":      op((*Server).updateShardCount),

	"RegisterStreamConsumer":   op((*Server).registerStreamConsumer),
	"DescribeStreamConsumer":   op((*Server).describeStreamConsumer),
	"ListStreamConsumers":      op((*Server).listStreamConsumers),
	"DeregisterStreamConsumer": op((*Server).deregisterStreamConsumer),
	"SubscribeToShard":         op((*Server).subscribeToShard),
}

// ServeHTTP answers one Kinesis API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	name, ok := strings.CutPrefix(target, targetPrefix)
	h := handlers[name]
	s.mu.Lock()
	s.stats.Requests[name]++
	s.mu.Unlock()
	var (
		out any
		err error
	)
	switch {
	case r.Method != http.MethodPost:
		err = errorf("UnknownOperationException", "Kinesis calls are POST requests, not %s", r.Method)
	case !ok:
		err = errorf("UnknownOperationException", "X-Amz-Target %q is not a Kinesis_20131202 operation", target)
	case h == nil:
		err = errorf("UnknownOperationException", "kinesistest does not implement %s", name)
	default:
		body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if rerr != nil {
			err = errorf("SerializationException", "cannot read the request body: %v", rerr)
			break
		}
		out, err = h(s, body)
	}
	if sub, ok := out.(*subscription); ok && err == nil {
		s.cfg.log.Debug("kinesistest call", "op", name)
		s.serveSubscription(w, r, sub)
		return
	}
	if d := s.cfg.answerDelay; d > 0 {
		hold := time.NewTimer(d)
		select {
		case <-hold.C:
		case <-r.Context().Done():
			hold.Stop()
			return
		}
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-RequestId", s.nonce+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, code: "InternalFailure", msg: err.Error()}
			s.cfg.log.Error("kinesistest internal failure", "op", name, "err", err.Error())
		}
		s.cfg.log.Debug("kinesistest call failed", "op", name, "code", ae.code, "message", ae.msg)
		w.Header().Set("X-Amzn-ErrorType", ae.code)
		w.WriteHeader(ae.status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": ae.code, "message": ae.msg})
		return
	}
	s.cfg.log.Debug("kinesistest call", "op", name)
	if out == nil {
		out = struct{}{}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// ---- wire types (the JSON 1.1 shapes; the SDK's Go types carry no JSON tags) ----

// epochTime is a timestamp as the protocol writes it: epoch seconds with
// millisecond decimals.
type epochTime time.Time

func (e epochTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(e).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1e3, 'f', 3, 64)), nil
}

func (e *epochTime) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("timestamp %s is not epoch seconds: %w", b, err)
	}
	sec := int64(f)
	*e = epochTime(time.Unix(sec, int64((f-float64(sec))*1e9)).Round(time.Millisecond))
	return nil
}

// streamRef is the stream selector most inputs carry.
type streamRef struct {
	StreamName *string
	StreamARN  *string
}

type hashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

type seqRange struct {
	StartingSequenceNumber string
	EndingSequenceNumber   *string `json:",omitempty"`
}

type shardOut struct {
	ShardID               string  `json:"ShardId"`
	ParentShardID         *string `json:"ParentShardId,omitempty"`
	AdjacentParentShardID *string `json:"AdjacentParentShardId,omitempty"`
	HashKeyRange          hashKeyRange
	SequenceNumberRange   seqRange
}

type childShardOut struct {
	ShardID      string `json:"ShardId"`
	ParentShards []string
	HashKeyRange hashKeyRange
}

type recordOut struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp epochTime
	Data                        []byte
	PartitionKey                string
}

type enhancedMetrics struct {
	ShardLevelMetrics []string
}

type streamMode struct {
	StreamMode string
}

func hashString(v *big.Int) string { return v.String() }
