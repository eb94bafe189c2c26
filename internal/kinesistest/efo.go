package kinesistest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

// Enhanced fan-out: stream consumers and SubscribeToShard.
//
// A consumer belongs to its stream and is looked up lazily on the server
// clock, like a delayed stream create: CREATING until readyAt, then ACTIVE;
// after DeregisterStreamConsumer DELETING until goneAt, then gone.
//
// A subscription is served by the HTTP handler goroutine of its
// SubscribeToShard call. It reads the shard under s.mu, writes an event
// outside it, and waits on the shard's notify channel (closed by the next
// append or close of the shard), its lifetime timer, a heartbeat timer and
// its own done channel (closed when another subscription takes over, the
// consumer is deregistered or the stream deleted).

// Consumer states as the API names them.
const (
	consumerCreating = "CREATING"
	consumerActive   = "ACTIVE"
	consumerDeleting = "DELETING"
)

const (
	defaultConsumerLimit  = 20
	defaultSubLifetime    = 5 * time.Minute
	defaultResubscribe    = 5 * time.Second
	subscriptionHeartbeat = 5 * time.Second
	// headerDelay holds back a subscription's response headers. The SDK
	// (smithy-go) closes the request body as soon as the headers arrive;
	// if net/http's writer has not yet made its last read of the body,
	// that read fails (the closed body's WriteTo returns io.EOF) and the
	// transport closes the connection, killing the event stream. Against
	// AWS the network delay hides this; on loopback it hit about one
	// subscription in 30.
	headerDelay      = 25 * time.Millisecond
	maxListConsumers = 10_000
	eventStreamType  = "application/vnd.amazon.eventstream"
)

var consumerNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// WithConsumerDelay keeps a registered consumer CREATING, and a
// deregistered one DELETING, for d of the clock (default 0: at once; AWS
// takes seconds).
func WithConsumerDelay(d time.Duration) Option { return func(s *settings) { s.consumerDelay = d } }

// WithConsumerLimit sets how many consumers a stream may have registered
// (default 20, as in AWS); RegisterStreamConsumer beyond it fails with
// LimitExceededException.
func WithConsumerLimit(n int) Option { return func(s *settings) { s.consumerLimit = n } }

// WithSubscriptionLifetime sets how long a SubscribeToShard event stream
// lasts before the server ends it (default 5 min, as in AWS). It runs on
// real time, not the WithClock clock: the server pushes events in real
// time.
func WithSubscriptionLifetime(d time.Duration) Option {
	return func(s *settings) { s.subLifetime = d }
}

// WithResubscribeWindow sets how soon after a successful SubscribeToShard
// the same consumer may subscribe to the same shard again; earlier calls
// fail with ResourceInUseException (default 5 s of the clock, as in AWS;
// 0 turns the rule off).
func WithResubscribeWindow(d time.Duration) Option { return func(s *settings) { s.resubscribe = d } }

type consumer struct {
	name    string
	arn     string
	created time.Time
	readyAt time.Time
	goneAt  time.Time                // zero unless deregistered
	subs    map[string]*subscription // open subscriptions by shard id
	lastSub map[string]time.Time     // last successful SubscribeToShard by shard id
}

// status is the consumer's state at now; gone reports a finished delete.
func (c *consumer) status(now time.Time) (status string, gone bool) {
	switch {
	case !c.goneAt.IsZero():
		return consumerDeleting, !now.Before(c.goneAt)
	case now.Before(c.readyAt):
		return consumerCreating, false
	default:
		return consumerActive, false
	}
}

type subscription struct {
	st   *stream
	sh   *shard
	c    *consumer
	pos  int // index of the next record to push
	done chan struct{}
	err  *apiError // why done was closed; nil: no exception event
}

// end stops sub with err (sent as an exception event when not nil).
// Callers hold s.mu.
func (sub *subscription) end(err *apiError) {
	select {
	case <-sub.done:
	default:
		sub.err = err
		close(sub.done)
	}
}

// wake wakes the subscriptions waiting on sh. Callers hold s.mu.
func (sh *shard) wake() {
	if sh.notify != nil {
		close(sh.notify)
		sh.notify = nil
	}
}

// consumers returns the stream's consumers at now (dropping finished
// deletes), oldest first.
func (st *stream) liveConsumers(now time.Time) []*consumer {
	out := make([]*consumer, 0, len(st.consumers))
	for name, c := range st.consumers {
		if _, gone := c.status(now); gone {
			delete(st.consumers, name)
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].created.Equal(out[j].created) {
			return out[i].created.Before(out[j].created)
		}
		return out[i].name < out[j].name
	})
	return out
}

// endSubscriptions ends every subscription of c with err.
func (c *consumer) endSubscriptions(err *apiError) {
	for id, sub := range c.subs {
		sub.end(err)
		delete(c.subs, id)
	}
}

func (s *Server) consumerARN(st *stream, name string, created time.Time) string {
	return fmt.Sprintf("%s/consumer/%s:%d", st.arn, name, created.Unix())
}

// streamOfARN finds the stream of a required StreamARN.
func (s *Server) streamOfARN(arn *string) (*stream, error) {
	if arn == nil || *arn == "" {
		return nil, invalidArg("StreamARN is required")
	}
	return s.stream(streamRef{StreamARN: arn})
}

// consumer finds a consumer by ARN or by stream ARN and name, as
// DescribeStreamConsumer and DeregisterStreamConsumer take it.
func (s *Server) consumer(streamARN, name, arn *string) (*stream, *consumer, error) {
	now := s.now()
	if arn != nil && *arn != "" {
		streamPart, rest, ok := strings.Cut(*arn, "/consumer/")
		cname, _, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || !strings.Contains(streamPart, ":stream/") {
			return nil, nil, invalidArg("ConsumerARN %q is not a Kinesis stream consumer ARN", *arn)
		}
		st, err := s.stream(streamRef{StreamARN: &streamPart})
		if err != nil {
			return nil, nil, err
		}
		st.liveConsumers(now)
		c := st.consumers[cname]
		if c == nil || c.arn != *arn {
			return nil, nil, errorf("ResourceNotFoundException", "Consumer %s under account %s not found.", *arn, s.cfg.account)
		}
		return st, c, nil
	}
	if name == nil || *name == "" {
		return nil, nil, invalidArg("either ConsumerARN or StreamARN and ConsumerName must be given")
	}
	st, err := s.streamOfARN(streamARN)
	if err != nil {
		return nil, nil, err
	}
	st.liveConsumers(now)
	c := st.consumers[*name]
	if c == nil {
		return nil, nil, errorf("ResourceNotFoundException", "Consumer %s on stream %s under account %s not found.", *name, st.name, s.cfg.account)
	}
	return st, c, nil
}

type consumerOut struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp epochTime
}

func (c *consumer) out(now time.Time) consumerOut {
	status, _ := c.status(now)
	return consumerOut{ConsumerName: c.name, ConsumerARN: c.arn, ConsumerStatus: status, ConsumerCreationTimestamp: epochTime(c.created)}
}

type registerConsumerIn struct {
	StreamARN    *string
	ConsumerName string
}

func (s *Server) registerStreamConsumer(in *registerConsumerIn) (any, error) {
	if !consumerNameRE.MatchString(in.ConsumerName) {
		return nil, invalidArg("ConsumerName %q must be 1 to 128 of a-z, A-Z, 0-9, _ . -", in.ConsumerName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamOfARN(in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.now()
	live := st.liveConsumers(now)
	if _, ok := st.consumers[in.ConsumerName]; ok {
		return nil, errorf("ResourceInUseException", "Consumer %s under account %s already exists for stream %s.", in.ConsumerName, s.cfg.account, st.name)
	}
	if len(live) >= s.cfg.consumerLimit {
		return nil, errorf("LimitExceededException", "Stream %s under account %s has %d registered consumers, the limit.", st.name, s.cfg.account, len(live))
	}
	c := &consumer{name: in.ConsumerName, created: now, readyAt: now.Add(s.cfg.consumerDelay), subs: map[string]*subscription{}, lastSub: map[string]time.Time{}}
	c.arn = s.consumerARN(st, c.name, now)
	st.consumers[c.name] = c
	return map[string]any{"Consumer": c.out(now)}, nil
}

type consumerRefIn struct {
	StreamARN    *string
	ConsumerName *string
	ConsumerARN  *string
}

func (s *Server) describeStreamConsumer(in *consumerRefIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.consumer(in.StreamARN, in.ConsumerName, in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	o := c.out(s.now())
	return map[string]any{"ConsumerDescription": map[string]any{
		"ConsumerName":              o.ConsumerName,
		"ConsumerARN":               o.ConsumerARN,
		"ConsumerStatus":            o.ConsumerStatus,
		"ConsumerCreationTimestamp": o.ConsumerCreationTimestamp,
		"StreamARN":                 st.arn,
	}}, nil
}

func (s *Server) deregisterStreamConsumer(in *consumerRefIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, err := s.consumer(in.StreamARN, in.ConsumerName, in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if status, _ := c.status(now); status == consumerDeleting {
		return nil, errorf("ResourceInUseException", "Consumer %s is already DELETING.", c.arn)
	}
	c.goneAt = now.Add(s.cfg.consumerDelay)
	c.endSubscriptions(errorf("ResourceNotFoundException", "Consumer %s was deregistered.", c.arn))
	st.liveConsumers(now)
	return nil, nil
}

type listConsumersIn struct {
	StreamARN               *string
	NextToken               *string
	MaxResults              *int
	StreamCreationTimestamp *epochTime
}

// consumerToken is what a ListStreamConsumers NextToken carries.
type consumerToken struct {
	Nonce  string
	Stream string
	Offset int
	Issued int64
}

func (s *Server) listStreamConsumers(in *listConsumersIn) (any, error) {
	limit := 100
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	if limit < 1 || limit > maxListConsumers {
		return nil, invalidArg("MaxResults %d must be between 1 and %d", limit, maxListConsumers)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.streamOfARN(in.StreamARN)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if in.StreamCreationTimestamp != nil && !time.Time(*in.StreamCreationTimestamp).Equal(st.created.Round(time.Millisecond)) {
		return nil, errorf("ResourceNotFoundException", "Stream %s created at %s not found.", st.name, time.Time(*in.StreamCreationTimestamp).UTC().Format(time.RFC3339))
	}
	offset := 0
	if in.NextToken != nil {
		var tok consumerToken
		if !decodeToken(*in.NextToken, &tok) || tok.Nonce != s.nonce || tok.Stream != st.arn || tok.Offset < 0 {
			return nil, invalidArg("NextToken %q is not a valid ListStreamConsumers token for this stream", *in.NextToken)
		}
		if now.Sub(time.Unix(0, tok.Issued)) > s.cfg.tokenTTL {
			return nil, errorf("ExpiredNextTokenException", "NextToken has expired (issued %s)", time.Unix(0, tok.Issued).UTC().Format(time.RFC3339))
		}
		offset = tok.Offset
	}
	live := st.liveConsumers(now)
	out := []consumerOut{}
	for i := offset; i < len(live) && len(out) < limit; i++ {
		out = append(out, live[i].out(now))
	}
	res := map[string]any{"Consumers": out}
	if next := offset + len(out); next < len(live) {
		res["NextToken"] = encodeToken(consumerToken{Nonce: s.nonce, Stream: st.arn, Offset: next, Issued: now.UnixNano()})
	}
	return res, nil
}

// ---- SubscribeToShard ----

type startingPosition struct {
	Type           string
	SequenceNumber *string
	Timestamp      *epochTime
}

type subscribeIn struct {
	ConsumerARN      string
	ShardID          string `json:"ShardId"`
	StartingPosition *startingPosition
}

// subscribeToShard checks a call and registers its subscription; ServeHTTP
// then streams it with serveSubscription.
func (s *Server) subscribeToShard(in *subscribeIn) (any, error) {
	if in.ConsumerARN == "" {
		return nil, invalidArg("ConsumerARN is required")
	}
	if in.StartingPosition == nil {
		return nil, invalidArg("StartingPosition is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil, errorf("InternalFailure", "the server is closing")
	default:
	}
	st, c, err := s.consumer(nil, nil, &in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if status, _ := c.status(now); status != consumerActive {
		return nil, errorf("ResourceInUseException", "Consumer %s is %s; SubscribeToShard needs an ACTIVE consumer.", c.arn, status)
	}
	sh, err := s.shard(st, in.ShardID)
	if err != nil {
		return nil, err
	}
	var pos int
	p := in.StartingPosition
	switch p.Type {
	case "TRIM_HORIZON":
		pos = 0
	case "LATEST":
		pos = len(sh.records)
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if pos, err = s.seqPos(st, sh, p.SequenceNumber, p.Type == "AFTER_SEQUENCE_NUMBER"); err != nil {
			return nil, err
		}
	case "AT_TIMESTAMP":
		if p.Timestamp == nil {
			return nil, invalidArg("Timestamp is required for AT_TIMESTAMP")
		}
		ts := time.Time(*p.Timestamp)
		pos = sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(ts) })
	default:
		return nil, invalidArg("StartingPosition type %q must be one of TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP", p.Type)
	}
	// The window counts from the last successful call, whether or not its
	// stream is still open.
	if last, ok := c.lastSub[sh.id]; ok && s.cfg.resubscribe > 0 && now.Sub(last) < s.cfg.resubscribe {
		return nil, errorf("ResourceInUseException", "Consumer %s subscribed to shard %s at %s; subscribe again at least %s after the last successful call.", c.arn, sh.id, last.UTC().Format(time.RFC3339Nano), s.cfg.resubscribe)
	}
	if prev := c.subs[sh.id]; prev != nil {
		// The new call takes over; the old stream fails, as in AWS.
		prev.end(errorf("ResourceInUseException", "Another subscription for consumer %s on shard %s took over.", c.arn, sh.id))
	}
	c.lastSub[sh.id] = now
	sub := &subscription{st: st, sh: sh, c: c, pos: pos, done: make(chan struct{})}
	c.subs[sh.id] = sub
	s.subWG.Add(1)
	return sub, nil
}

// subscribeEvent is a SubscribeToShardEvent's JSON payload.
type subscribeEvent struct {
	Records                    []recordOut
	ContinuationSequenceNumber *string `json:",omitempty"`
	MillisBehindLatest         int64
	ChildShards                []childShardOut `json:",omitempty"`
}

// nextEvent takes the next records of sub's shard. It returns the event,
// whether records remain for another event at once (more), whether the
// shard has ended (the event then carries ChildShards and is the last) and
// the channel that is closed when the shard changes. Callers hold s.mu.
func (s *Server) nextEvent(sub *subscription) (ev subscribeEvent, more, ended bool, notify chan struct{}) {
	sh, now := sub.sh, s.now()
	ev.Records = []recordOut{}
	size := 0
	for sub.pos < len(sh.records) && len(ev.Records) < maxGetRecords {
		r := &sh.records[sub.pos]
		n := len(r.data) + len(r.key)
		if len(ev.Records) > 0 && size+n > maxGetBytes {
			break
		}
		size += n
		ev.Records = append(ev.Records, recordOut{SequenceNumber: r.seq, ApproximateArrivalTimestamp: epochTime(r.arrival), Data: r.data, PartitionKey: r.key})
		sub.pos++
	}
	s.stats.RecordsPushed += len(ev.Records)
	if sub.pos < len(sh.records) {
		ev.MillisBehindLatest = max(now.Sub(sh.records[sub.pos].arrival).Milliseconds(), 0)
		more = true
	}
	if !more && !sh.open() {
		ev.ChildShards = sub.st.children(sh.id)
		return ev, false, true, nil
	}
	// The continuation is the last record pushed: AFTER_SEQUENCE_NUMBER of
	// it resumes with the next. Before the first record it is the shard's
	// starting number, which every record of the shard is after.
	cont := sh.startSeq
	if sub.pos > 0 {
		cont = sh.records[sub.pos-1].seq
	}
	ev.ContinuationSequenceNumber = &cont
	if sh.notify == nil {
		sh.notify = make(chan struct{})
	}
	return ev, more, false, sh.notify
}

// release forgets sub in its consumer unless another took over.
func (s *Server) release(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.c.subs[sub.sh.id] == sub {
		delete(sub.c.subs, sub.sh.id)
	}
	sub.end(nil)
}

// eventWriter writes event stream messages to a response and flushes each.
type eventWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *eventstream.Encoder
	buf bytes.Buffer
}

func (ew *eventWriter) write(msg eventstream.Message) error {
	ew.buf.Reset()
	if err := ew.enc.Encode(&ew.buf, msg); err != nil {
		return err
	}
	if _, err := ew.w.Write(ew.buf.Bytes()); err != nil {
		return err
	}
	return ew.rc.Flush()
}

func jsonMessage(messageType, typeHeader, typeName string, payload any) (eventstream.Message, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return eventstream.Message{}, err
	}
	var msg eventstream.Message
	msg.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(messageType))
	msg.Headers.Set(typeHeader, eventstream.StringValue(typeName))
	msg.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue("application/json"))
	msg.Payload = b
	return msg, nil
}

func (ew *eventWriter) event(name string, payload any) error {
	msg, err := jsonMessage(eventstream.EventMessageType, eventstream.EventTypeHeader, name, payload)
	if err != nil {
		return err
	}
	return ew.write(msg)
}

func (ew *eventWriter) exception(e *apiError) error {
	msg, err := jsonMessage(eventstream.ExceptionMessageType, eventstream.ExceptionTypeHeader, e.code, map[string]string{"message": e.msg})
	if err != nil {
		return err
	}
	return ew.write(msg)
}

// serveSubscription streams sub: the initial response, then a
// SubscribeToShardEvent at once, whenever records arrive and after
// subscriptionHeartbeat without any, until the lifetime ends, the shard
// ends (the last event carries ChildShards), the client goes away, the
// server closes or the subscription is ended (an exception event says why).
func (s *Server) serveSubscription(w http.ResponseWriter, r *http.Request, sub *subscription) {
	defer s.subWG.Done()
	defer s.release(sub)
	reason := s.pushEvents(w, r, sub)
	s.cfg.log.Debug("kinesistest subscription ended", "consumer", sub.c.name, "shard", sub.sh.id, "reason", reason)
}

// pushEvents writes sub's event stream and says why it ended.
func (s *Server) pushEvents(w http.ResponseWriter, r *http.Request, sub *subscription) string {
	hold := time.NewTimer(headerDelay)
	select {
	case <-hold.C:
	case <-r.Context().Done():
		hold.Stop()
		return "client gone"
	case <-s.done:
		hold.Stop()
		return "server closed"
	}
	w.Header().Set("Content-Type", eventStreamType)
	w.WriteHeader(http.StatusOK)
	ew := &eventWriter{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder()}
	if err := ew.event("initial-response", struct{}{}); err != nil {
		return "write: " + err.Error()
	}
	lifetime := time.NewTimer(s.cfg.subLifetime)
	defer lifetime.Stop()
	heartbeat := time.NewTimer(subscriptionHeartbeat)
	defer heartbeat.Stop()
	force := true // the first event goes out even when empty
	for {
		s.mu.Lock()
		ev, more, ended, notify := s.nextEvent(sub)
		s.mu.Unlock()
		if force || len(ev.Records) > 0 || ended {
			if err := ew.event("SubscribeToShardEvent", ev); err != nil {
				return "write: " + err.Error()
			}
			force = false
			heartbeat.Reset(subscriptionHeartbeat)
		}
		if ended {
			return "shard end"
		}
		if more {
			select {
			case <-sub.done:
			case <-r.Context().Done():
				return "client gone"
			case <-lifetime.C:
				return "lifetime"
			default:
				continue
			}
		}
		select {
		case <-notify:
		case <-heartbeat.C:
			force = true
		case <-lifetime.C:
			return "lifetime"
		case <-sub.done:
			s.mu.Lock()
			e := sub.err
			s.mu.Unlock()
			if e != nil {
				_ = ew.exception(e)
				return e.code
			}
			return "ended"
		case <-r.Context().Done():
			return "client gone"
		case <-s.done:
			return "server closed"
		}
	}
}
