package producer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paystream/paystream/internal/quantile"
)

// Kinds of sent records, as in the sent log and Sent.Kind.
const (
	KindValid     = "valid"     // first acknowledged copy of an event_id
	KindDuplicate = "duplicate" // a later acknowledged copy of an event_id already in the stream
	KindInvalid   = "invalid"   // a deliberately malformed record (schema.Decode rejects it)
)

// Sent describes one record that reached the stream (or the --output
// file). Shard and sequence number come from the PutRecords answer and
// identify the record in the stream; they are empty with --output.
type Sent struct {
	EventID        string `json:"event_id,omitempty"` // empty for invalid records
	Kind           string `json:"kind"`
	InvalidKind    string `json:"invalid_kind,omitempty"` // one of schema.InvalidKinds
	PartitionKey   string `json:"partition_key"`
	ShardID        string `json:"shard_id,omitempty"`
	SequenceNumber string `json:"sequence_number,omitempty"`
	// SubSequenceNumber is the record's index in its KPL aggregate
	// (--aggregate): the user record's position is (SequenceNumber,
	// SubSequenceNumber). Nil for a record sent on its own.
	SubSequenceNumber *uint64 `json:"sub_sequence_number,omitempty"`
}

// Summary is what one run did. The counts are exact: they describe the
// records the stream acknowledged, so reading every shard back finds Sent
// records, of which InvalidSent fail schema.Decode, UniqueEventIDs carry
// distinct event_ids and DuplicatesSent repeat one — unless
// UnknownOutcomeEntries > 0, in which case up to that many extra copies
// may exist (a call failed without an answer and was retried).
type Summary struct {
	Stream string `json:"stream,omitempty"`
	Output string `json:"output,omitempty"`
	Shards int    `json:"shards,omitempty"`
	Sent   int64  `json:"sent"`
	// KinesisRecords counts the Kinesis records acknowledged: with
	// Aggregated, the KPL aggregates (and records too large for one) that
	// carried the Sent user records; otherwise equal to Sent. 0 with
	// --output.
	KinesisRecords        int64 `json:"kinesis_records"`
	Aggregated            bool  `json:"aggregated,omitempty"` // --aggregate: Sent and the other record counts are user records
	UniqueEventIDs        int64 `json:"unique_event_ids"`
	DuplicatesSent        int64 `json:"duplicates_sent"`
	InvalidSent           int64 `json:"invalid_sent"`
	FailedAfterRetries    int64 `json:"failed_after_retries"`
	RetriedEntries        int64 `json:"retried_entries"`
	ThrottledEntries      int64 `json:"throttled_entries"`
	UnknownOutcomeEntries int64 `json:"unknown_outcome_entries"`
	// SequenceCollisions counts acknowledgements naming a shard and
	// sequence number already acknowledged for another record: the
	// endpoint overwrote a record. moto does this under concurrent
	// PutRecords to one shard; real Kinesis never should.
	SequenceCollisions int64 `json:"sequence_collisions"`
	// ShardMapRefreshes counts the times --aggregate listed the shards
	// again because a put landed on a shard other than the one predicted
	// (the stream was resharded). MisroutedRecords counts those Kinesis
	// records, PinnedEvents the events whose later copies were sent after a
	// copy that landed off its shard (see the package doc).
	ShardMapRefreshes int64   `json:"shard_map_refreshes"`
	MisroutedRecords  int64   `json:"misrouted_records"`
	PinnedEvents      int64   `json:"pinned_events"`
	PutRecordsCalls   int64   `json:"putrecords_calls"`
	LatencyP50Ms      float64 `json:"putrecords_latency_p50_ms"`
	LatencyP99Ms      float64 `json:"putrecords_latency_p99_ms"`
	ElapsedSeconds    float64 `json:"elapsed_seconds"`
	AchievedRate      float64 `json:"achieved_rate"`
	TargetRate        float64 `json:"target_rate"`
	RateHeld          *bool   `json:"rate_held,omitempty"` // set when --rate > 0 and records were sent: achieved within 2% of it
	Interrupted       bool    `json:"interrupted"`
	Error             string  `json:"error,omitempty"`
}

// RateTolerance is how far below --rate the achieved rate may fall and
// still count as held.
const RateTolerance = 0.02

// stats counts what happened. Every method is safe for concurrent use.
type stats struct {
	mu         sync.Mutex
	sent       int64
	kinesisRec int64
	unique     int64
	dups       int64
	invalid    int64
	failed     int64
	retried    int64
	throttled  int64
	unknown    int64
	calls      int64
	lat        latency
	lastAck    time.Time
	collisions int64
	refreshes  int64
	misroutes  int64
	pins       int64
	seen       recentPositions
	log        *bufio.Writer // --sent-log, may be nil
	logErr     error
	onSent     func(Sent)
	m          *metrics
}

// ackEntry records that e reached the stream at shard/seq: one Kinesis
// record carrying e's user records.
func (s *stats) ackEntry(e *entry, shard, seq string) {
	s.mu.Lock()
	s.kinesisRec++
	s.mu.Unlock()
	s.m.kinesisSent.Inc()
	for i, r := range e.recs {
		sub := -1
		if e.aggregated {
			sub = i
		}
		s.ack(r, shard, seq, sub)
	}
}

// ack records that user record r reached the stream at shard/seq, at
// sub-sequence number sub in an aggregate (-1: sent on its own).
func (s *stats) ack(r *record, shard, seq string, sub int) {
	kind := KindInvalid
	if r.ev != nil {
		kind = KindValid
		if r.ev.acks.Add(1) > 1 {
			kind = KindDuplicate
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	switch kind {
	case KindValid:
		s.unique++
	case KindDuplicate:
		s.dups++
	default:
		s.invalid++
	}
	s.lastAck = time.Now()
	s.m.sent(kind)
	pos := shard + "/" + seq
	if sub >= 0 {
		pos += "/" + strconv.Itoa(sub)
	}
	if seq != "" && s.seen.addDup(pos) {
		s.collisions++
	}
	if s.log == nil && s.onSent == nil {
		return
	}
	rec := Sent{EventID: r.eventID, Kind: kind, InvalidKind: r.invalidKind, PartitionKey: r.key, ShardID: shard, SequenceNumber: seq}
	if sub >= 0 {
		u := uint64(sub)
		rec.SubSequenceNumber = &u
	}
	if s.onSent != nil {
		s.onSent(rec)
	}
	if s.log != nil && s.logErr == nil {
		b, _ := json.Marshal(rec) // cannot fail: plain strings
		b = append(b, '\n')
		_, s.logErr = s.log.Write(b)
	}
}

// refreshed counts a listing of the shards after a misrouted put.
func (s *stats) refreshed() {
	s.mu.Lock()
	s.refreshes++
	s.mu.Unlock()
	s.m.refreshes.Inc()
}

// misrouted counts a Kinesis record that landed off its predicted shard.
func (s *stats) misrouted() {
	s.mu.Lock()
	s.misroutes++
	s.mu.Unlock()
	s.m.misrouted.Inc()
}

// pinned counts events pinned after a misrouted put.
func (s *stats) pinned(n int) {
	s.mu.Lock()
	s.pins += int64(n)
	s.mu.Unlock()
}

func (s *stats) fail(n int) {
	s.mu.Lock()
	s.failed += int64(n)
	s.mu.Unlock()
	s.m.failed.Add(float64(n))
}

func (s *stats) retry(n int) {
	s.mu.Lock()
	s.retried += int64(n)
	s.mu.Unlock()
	s.m.retried.Add(float64(n))
}

func (s *stats) throttle(n int) {
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.throttled += int64(n)
	s.mu.Unlock()
}

func (s *stats) unknownOutcome(n int) {
	s.mu.Lock()
	s.unknown += int64(n)
	s.mu.Unlock()
}

func (s *stats) call(d time.Duration) {
	s.mu.Lock()
	s.calls++
	s.lat.observe(d)
	s.mu.Unlock()
	s.m.duration.Observe(d.Seconds())
}

// summary builds the run's Summary. start is when sending began, end when
// the run finished; the rate is measured up to the last acknowledgement.
func (s *stats) summary(cfg *Config, start, end time.Time) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{
		Sent:                  s.sent,
		KinesisRecords:        s.kinesisRec,
		Aggregated:            cfg.Aggregate,
		UniqueEventIDs:        s.unique,
		DuplicatesSent:        s.dups,
		InvalidSent:           s.invalid,
		FailedAfterRetries:    s.failed,
		RetriedEntries:        s.retried,
		ThrottledEntries:      s.throttled,
		UnknownOutcomeEntries: s.unknown,
		SequenceCollisions:    s.collisions,
		ShardMapRefreshes:     s.refreshes,
		MisroutedRecords:      s.misroutes,
		PinnedEvents:          s.pins,
		PutRecordsCalls:       s.calls,
		LatencyP50Ms:          ms(s.lat.quantile(0.50)),
		LatencyP99Ms:          ms(s.lat.quantile(0.99)),
		ElapsedSeconds:        end.Sub(start).Seconds(),
		TargetRate:            cfg.Rate,
	}
	if cfg.Output != "" {
		sum.Output = cfg.Output
	} else {
		sum.Stream = cfg.Stream
	}
	if s.sent > 0 {
		if d := s.lastAck.Sub(start).Seconds(); d > 0 {
			sum.AchievedRate = float64(s.sent) / d
		}
	}
	if cfg.Rate > 0 && (s.sent > 0 || s.failed > 0) { // nothing attempted: nothing to judge
		held := sum.AchievedRate >= cfg.Rate*(1-RateTolerance)
		sum.RateHeld = &held
	}
	return sum
}

// progress is the one-line live view for a terminal.
func (s *stats) progress(start time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := time.Since(start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(s.sent) / el
	}
	return fmt.Sprintf("sent %d (%.0f/s)  dup %d  invalid %d  retried %d  failed %d  p99 %.1fms  %s",
		s.sent, rate, s.dups, s.invalid, s.retried, s.failed, ms(s.lat.quantile(0.99)), time.Duration(el*float64(time.Second)).Truncate(time.Second))
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// WriteText writes the human summary.
func (sum *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	where := fmt.Sprintf("stream %q", sum.Stream)
	if sum.Output != "" {
		where = fmt.Sprintf("output %q", sum.Output)
	} else if sum.Shards > 0 {
		where += fmt.Sprintf(", %d shards", sum.Shards)
	}
	status := ""
	if sum.Interrupted {
		status = ", interrupted"
	}
	fmt.Fprintf(&b, "paystream producer summary (%s%s)\n", where, status)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "  %-22s %s\n", name, fmt.Sprintf(format, args...))
	}
	if sum.Aggregated {
		per := 0.0
		if sum.KinesisRecords > 0 {
			per = float64(sum.Sent) / float64(sum.KinesisRecords)
		}
		row("sent", "%d user records in %d Kinesis records (KPL aggregates, %.1f user records each)", sum.Sent, sum.KinesisRecords, per)
	} else {
		row("sent", "%d records", sum.Sent)
	}
	row("unique event_ids", "%d", sum.UniqueEventIDs)
	row("duplicates sent", "%d", sum.DuplicatesSent)
	row("invalid sent", "%d", sum.InvalidSent)
	row("failed after retries", "%d", sum.FailedAfterRetries)
	row("retried entries", "%d (%d throttled)", sum.RetriedEntries, sum.ThrottledEntries)
	if sum.UnknownOutcomeEntries > 0 {
		row("unknown outcome", "%d entries in calls that got no answer and were retried; the stream may hold extra copies", sum.UnknownOutcomeEntries)
	}
	if sum.SequenceCollisions > 0 {
		row("SEQUENCE COLLISIONS", "%d: the endpoint gave two records the same shard and sequence number, so it overwrote %d records; "+
			"moto does this under concurrent PutRecords (use --concurrency 1 against moto)", sum.SequenceCollisions, sum.SequenceCollisions)
	}
	if sum.Aggregated {
		row("shard map", "%d refreshes; %d Kinesis records landed off their predicted shard, %d events' later copies follow them",
			sum.ShardMapRefreshes, sum.MisroutedRecords, sum.PinnedEvents)
	}
	rate := fmt.Sprintf("%.1f records/s over %.2fs", sum.AchievedRate, sum.ElapsedSeconds)
	switch {
	case sum.RateHeld == nil:
		rate += " (no --rate: as fast as possible)"
	case *sum.RateHeld:
		rate += fmt.Sprintf(" (target %g: held within %g%%)", sum.TargetRate, RateTolerance*100)
	default:
		rate += fmt.Sprintf(" (target %g: NOT held, could not hold --rate %g; %s)", sum.TargetRate, sum.TargetRate, sum.rateHint())
	}
	row("achieved rate", "%s", rate)
	if sum.PutRecordsCalls > 0 {
		row("PutRecords latency", "p50 %.1fms  p99 %.1fms  (%d calls)", sum.LatencyP50Ms, sum.LatencyP99Ms, sum.PutRecordsCalls)
	} else {
		row("PutRecords latency", "n/a (no calls)")
	}
	if sum.Error != "" {
		row("error", "%s", sum.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (sum *Summary) rateHint() string {
	switch {
	case sum.Interrupted:
		return "the run was interrupted"
	case sum.FailedAfterRetries > 0:
		return "records failed; see the error above"
	case sum.ThrottledEntries > 0:
		return "the stream throttled; add shards"
	default:
		return "the endpoint was too slow; raise --concurrency or --batch, or lower --rate"
	}
}

// WriteJSON writes the summary as one JSON object and a newline.
func (sum *Summary) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// latency is the PutRecords call latency, kept in microseconds in a
// log-bucketed histogram (2% wide buckets from 1 µs to about two minutes)
// that gives quantiles in bounded memory.
type latency struct{ h quantile.LogHistogram }

func (l *latency) observe(d time.Duration) { l.h.Observe(float64(d) / 1e3) }

// quantile returns the middle of the bucket holding quantile q; 0 before
// any call.
func (l *latency) quantile(q float64) time.Duration {
	return time.Duration(l.h.Quantile(q) * 1e3)
}

// recentPositions remembers the last few thousand acknowledged
// "shard/sequence" positions, enough to span every call in flight, to spot
// an endpoint that hands out one position twice.
type recentPositions struct {
	set  map[string]struct{}
	ring []string
	next int
}

const recentWindow = 1 << 15

// addDup adds pos and reports whether it was already there.
func (r *recentPositions) addDup(pos string) bool {
	if r.set == nil {
		r.set = make(map[string]struct{}, recentWindow)
		r.ring = make([]string, recentWindow)
	}
	if _, ok := r.set[pos]; ok {
		return true
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = pos
	r.next = (r.next + 1) % recentWindow
	r.set[pos] = struct{}{}
	return false
}
