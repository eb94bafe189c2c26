package kinesistest

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stream states as the API names them.
const (
	statusCreating = "CREATING"
	statusActive   = "ACTIVE"
	statusUpdating = "UPDATING"
)

// Kinesis limits.
const (
	maxGetRecords     = 10_000
	maxGetBytes       = 10 << 20
	maxPutEntries     = 500
	maxPutBytes       = 5 << 20
	maxRecordBytes    = 1 << 20
	maxPartitionKey   = 256
	defaultListShards = 1_000
	maxListShards     = 10_000
	maxShards         = 10_000
)

// maxHashKey is 2^128 - 1, the top of the hash key space.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

type stream struct {
	name    string
	arn     string
	created time.Time
	status  string
	// pending is applied when the clock reaches pendingAt (a delayed
	// create or reshard); the stream is CREATING or UPDATING until then.
	pending   func()
	pendingAt time.Time

	shards  []*shard // in creation order: parents before children
	byID    map[string]*shard
	counter uint64 // last sequence counter handed out, stream-wide

	consumers map[string]*consumer // by name
}

type shard struct {
	id         string
	idx        int
	parent     string
	adjParent  string
	start, end *big.Int // hash key range, inclusive
	startSeq   string
	endSeq     string // "" while open
	records    []record

	// per-second windows for WithReadLimit / WithWriteLimit
	reads, writes perSecond // calls / records this second, for the read and write limits

	// notify, when not nil, is closed by the next append to or close of
	// the shard: subscriptions wait on it.
	notify chan struct{}
}

type record struct {
	counter uint64
	seq     string
	data    []byte
	key     string
	arrival time.Time
}

func (sh *shard) open() bool { return sh.endSeq == "" }

// seqNumber renders a stream-wide counter and a shard index as a 56-digit
// sequence number: strictly increasing per shard, unique in the stream, far
// above 2^64 like AWS's.
func seqNumber(counter uint64, shardIdx int) string {
	return fmt.Sprintf("49%030d%024d", counter, shardIdx)
}

// parseSeq is seqNumber's inverse.
func parseSeq(s string) (counter uint64, shardIdx int, ok bool) {
	if len(s) != 56 || !strings.HasPrefix(s, "49") {
		return 0, 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	c, err1 := strconv.ParseUint(s[2:32], 10, 64)
	i, err2 := strconv.ParseInt(s[32:], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return c, int(i), true
}

func shardID(idx int) string { return fmt.Sprintf("shardId-%012d", idx) }

// newShard appends an open shard with the given hash range and parents.
func (st *stream) newShard(start, end *big.Int, parent, adj string) *shard {
	idx := len(st.shards)
	sh := &shard{
		id: shardID(idx), idx: idx, parent: parent, adjParent: adj,
		start: new(big.Int).Set(start), end: new(big.Int).Set(end),
		startSeq: seqNumber(st.counter, idx),
	}
	st.shards = append(st.shards, sh)
	st.byID[sh.id] = sh
	return sh
}

// closeShard ends sh: no record is written to it any more.
func (st *stream) closeShard(sh *shard) {
	sh.endSeq = seqNumber(st.counter, sh.idx)
	sh.wake()
}

func (st *stream) openShards() []*shard {
	var out []*shard
	for _, sh := range st.shards {
		if sh.open() {
			out = append(out, sh)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Cmp(out[j].start) < 0 })
	return out
}

// shardFor returns the open shard whose hash range holds h.
func (st *stream) shardFor(h *big.Int) *shard {
	for _, sh := range st.shards {
		if sh.open() && sh.start.Cmp(h) <= 0 && h.Cmp(sh.end) <= 0 {
			return sh
		}
	}
	return nil // open shards always cover the key space
}

// advance applies a delayed change whose time has come.
func (st *stream) advance(now time.Time) {
	if st.pending != nil && !now.Before(st.pendingAt) {
		f := st.pending
		st.pending = nil
		f()
		st.status = statusActive
	}
}

// schedule runs f after delay (at once when delay is 0), with the stream in
// status meanwhile.
func (st *stream) schedule(now time.Time, delay time.Duration, status string, f func()) {
	if delay <= 0 {
		f()
		st.status = statusActive
		return
	}
	st.status = status
	st.pending = f
	st.pendingAt = now.Add(delay)
}

// uniformStart is the first hash key of range i of n equal ranges.
func uniformStart(i, n int) *big.Int {
	v := new(big.Int).Lsh(big.NewInt(int64(i)), 128)
	return v.Div(v, big.NewInt(int64(n)))
}

func (sh *shard) out() shardOut {
	o := shardOut{
		ShardID:             sh.id,
		HashKeyRange:        hashKeyRange{hashString(sh.start), hashString(sh.end)},
		SequenceNumberRange: seqRange{StartingSequenceNumber: sh.startSeq},
	}
	if sh.parent != "" {
		o.ParentShardID = &sh.parent
	}
	if sh.adjParent != "" {
		o.AdjacentParentShardID = &sh.adjParent
	}
	if sh.endSeq != "" {
		e := sh.endSeq
		o.SequenceNumberRange.EndingSequenceNumber = &e
	}
	return o
}

func (st *stream) children(id string) []childShardOut {
	var out []childShardOut
	for _, sh := range st.shards {
		if sh.parent == id || sh.adjParent == id {
			ps := []string{sh.parent}
			if sh.adjParent != "" {
				ps = append(ps, sh.adjParent)
			}
			out = append(out, childShardOut{ShardID: sh.id, ParentShards: ps, HashKeyRange: hashKeyRange{hashString(sh.start), hashString(sh.end)}})
		}
	}
	return out
}

// ---- lookups (callers hold s.mu) ----

func (s *Server) now() time.Time { return s.cfg.now() }

func (s *Server) arn(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", s.cfg.region, s.cfg.account, name)
}

// stream finds the stream a request names and applies its due changes.
func (s *Server) stream(ref streamRef) (*stream, error) {
	name := deref(ref.StreamName)
	if name == "" && ref.StreamARN != nil {
		_, after, ok := strings.Cut(*ref.StreamARN, ":stream/")
		if !ok {
			return nil, invalidArg("StreamARN %q is not a Kinesis stream ARN", *ref.StreamARN)
		}
		name = after
	}
	if name == "" {
		return nil, invalidArg("either StreamName or StreamARN must be given")
	}
	st := s.streams[name]
	if st == nil {
		return nil, errorf("ResourceNotFoundException", "Stream %s under account %s not found.", name, s.cfg.account)
	}
	st.advance(s.now())
	return st, nil
}

func (s *Server) shard(st *stream, id string) (*shard, error) {
	sh := st.byID[id]
	if sh == nil {
		return nil, errorf("ResourceNotFoundException", "Shard %s in stream %s under account %s does not exist", id, st.name, s.cfg.account)
	}
	return sh, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ---- stream operations ----

type createStreamIn struct {
	StreamName        string
	ShardCount        *int
	StreamModeDetails *streamMode
}

func (s *Server) createStream(in *createStreamIn) (any, error) {
	n := 1
	if in.ShardCount != nil {
		n = *in.ShardCount
	}
	if in.StreamName == "" || len(in.StreamName) > 128 {
		return nil, invalidArg("StreamName must be 1 to 128 characters")
	}
	if n < 1 || n > maxShards {
		return nil, invalidArg("ShardCount %d must be between 1 and %d", n, maxShards)
	}
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode == "ON_DEMAND" {
		return nil, invalidArg("kinesistest models PROVISIONED streams only")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.streams[in.StreamName]; ok {
		return nil, errorf("ResourceInUseException", "Stream %s under account %s already exists.", in.StreamName, s.cfg.account)
	}
	now := s.now()
	st := &stream{name: in.StreamName, arn: s.arn(in.StreamName), created: now, byID: map[string]*shard{}, consumers: map[string]*consumer{}}
	for i := range n {
		end := new(big.Int).Sub(uniformStart(i+1, n), big.NewInt(1))
		st.newShard(uniformStart(i, n), end, "", "")
	}
	st.schedule(now, s.cfg.createDelay, statusCreating, func() {})
	s.streams[in.StreamName] = st
	return nil, nil
}

type deleteStreamIn struct {
	streamRef
}

func (s *Server) deleteStream(in *deleteStreamIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	delete(s.streams, st.name)
	for _, c := range st.consumers {
		c.endSubscriptions(errorf("ResourceNotFoundException", "Stream %s under account %s was deleted.", st.name, s.cfg.account))
	}
	return nil, nil
}

type listStreamsIn struct{}

func (s *Server) listStreams(*listStreamsIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	return map[string]any{"StreamNames": names, "HasMoreStreams": false}, nil
}

type describeStreamIn struct {
	streamRef
	Limit                 *int
	ExclusiveStartShardID *string `json:"ExclusiveStartShardId"`
}

func (s *Server) describeStream(in *describeStreamIn) (any, error) {
	limit := 100
	if in.Limit != nil {
		limit = *in.Limit
	}
	if limit < 1 || limit > maxListShards {
		return nil, invalidArg("Limit %d must be between 1 and %d", limit, maxListShards)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	shards := []shardOut{}
	more := false
	for _, sh := range st.shards {
		if in.ExclusiveStartShardID != nil && sh.id <= *in.ExclusiveStartShardID {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, sh.out())
	}
	return map[string]any{"StreamDescription": map[string]any{
		"StreamName":              st.name,
		"StreamARN":               st.arn,
		"StreamStatus":            st.status,
		"StreamModeDetails":       streamMode{"PROVISIONED"},
		"Shards":                  shards,
		"HasMoreShards":           more,
		"RetentionPeriodHours":    24,
		"StreamCreationTimestamp": epochTime(st.created),
		"EnhancedMonitoring":      []enhancedMetrics{{ShardLevelMetrics: []string{}}},
		"EncryptionType":          "NONE",
	}}, nil
}

type describeStreamSummaryIn struct {
	streamRef
}

func (s *Server) describeStreamSummary(in *describeStreamSummaryIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	return map[string]any{"StreamDescriptionSummary": map[string]any{
		"StreamName":              st.name,
		"StreamARN":               st.arn,
		"StreamStatus":            st.status,
		"StreamModeDetails":       streamMode{"PROVISIONED"},
		"RetentionPeriodHours":    24,
		"StreamCreationTimestamp": epochTime(st.created),
		"EnhancedMonitoring":      []enhancedMetrics{{ShardLevelMetrics: []string{}}},
		"EncryptionType":          "NONE",
		"OpenShardCount":          len(st.openShards()),
		"ConsumerCount":           len(st.liveConsumers(s.now())),
	}}, nil
}

// ---- ListShards ----

type shardFilter struct {
	Type      string
	ShardID   *string `json:"ShardId"`
	Timestamp *epochTime
}

type listShardsIn struct {
	streamRef
	NextToken             *string
	MaxResults            *int
	ExclusiveStartShardID *string `json:"ExclusiveStartShardId"`
	ShardFilter           *shardFilter
}

// listToken is what a ListShards NextToken carries.
type listToken struct {
	Nonce   string
	Stream  string
	Created int64
	After   string // last shard id returned
	Filter  string
	Issued  int64
}

func (s *Server) listShards(in *listShardsIn) (any, error) {
	limit := defaultListShards
	if in.MaxResults != nil {
		limit = *in.MaxResults
	}
	if limit < 1 || limit > maxListShards {
		return nil, invalidArg("MaxResults %d must be between 1 and %d", limit, maxListShards)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var (
		st     *stream
		after  string
		filter string
		err    error
	)
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil || in.ExclusiveStartShardID != nil || in.ShardFilter != nil {
			return nil, invalidArg("NextToken cannot be combined with StreamName, StreamARN, ExclusiveStartShardId or ShardFilter")
		}
		var tok listToken
		if !decodeToken(*in.NextToken, &tok) || tok.Nonce != s.nonce {
			return nil, invalidArg("NextToken %q is not a valid ListShards token", *in.NextToken)
		}
		if now.Sub(time.Unix(0, tok.Issued)) > s.cfg.tokenTTL {
			return nil, errorf("ExpiredNextTokenException", "NextToken has expired (issued %s)", time.Unix(0, tok.Issued).UTC().Format(time.RFC3339))
		}
		if st, err = s.stream(streamRef{StreamName: &tok.Stream}); err != nil {
			return nil, err
		}
		if st.created.UnixNano() != tok.Created {
			return nil, errorf("ResourceNotFoundException", "Stream %s was deleted since NextToken was issued", tok.Stream)
		}
		after, filter = tok.After, tok.Filter
	} else {
		if st, err = s.stream(in.streamRef); err != nil {
			return nil, err
		}
		after = deref(in.ExclusiveStartShardID)
		if f := in.ShardFilter; f != nil {
			switch f.Type {
			case "AT_LATEST", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON":
				filter = f.Type
			default:
				return nil, invalidArg("ShardFilter type %q is not supported by kinesistest (AT_LATEST, AT_TRIM_HORIZON, FROM_TRIM_HORIZON are)", f.Type)
			}
		}
	}
	shards := []shardOut{}
	var last string
	more := false
	for _, sh := range st.shards {
		if after != "" && sh.id <= after {
			continue
		}
		if filter == "AT_LATEST" && !sh.open() {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, sh.out())
		last = sh.id
	}
	out := map[string]any{"Shards": shards}
	if more {
		out["NextToken"] = encodeToken(listToken{Nonce: s.nonce, Stream: st.name, Created: st.created.UnixNano(), After: last, Filter: filter, Issued: now.UnixNano()})
	}
	return out, nil
}

func encodeToken(v any) string {
	b, _ := json.Marshal(v)
	return base64.StdEncoding.EncodeToString(b)
}

func decodeToken(s string, v any) bool {
	b, err := base64.StdEncoding.DecodeString(s)
	return err == nil && json.Unmarshal(b, v) == nil
}

// ---- writes ----

type putEntry struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey *string
}

type putRecordIn struct {
	streamRef
	putEntry
	SequenceNumberForOrdering *string
}

type putRecordsIn struct {
	streamRef
	Records []putEntry
}

// hashKey returns the hash key a record is routed by.
func hashKey(e *putEntry) (*big.Int, error) {
	if e.PartitionKey == "" || len([]rune(e.PartitionKey)) > maxPartitionKey {
		return nil, invalidArg("PartitionKey must be 1 to %d characters", maxPartitionKey)
	}
	if len(e.Data)+len(e.PartitionKey) > maxRecordBytes {
		return nil, invalidArg("a record's data and partition key are %d bytes, more than the %d allowed", len(e.Data)+len(e.PartitionKey), maxRecordBytes)
	}
	if e.ExplicitHashKey != nil {
		h, ok := new(big.Int).SetString(*e.ExplicitHashKey, 10)
		if !ok || h.Sign() < 0 || h.Cmp(maxHashKey) > 0 {
			return nil, invalidArg("ExplicitHashKey %q is not a decimal between 0 and 2^128-1", *e.ExplicitHashKey)
		}
		return h, nil
	}
	sum := md5.Sum([]byte(e.PartitionKey))
	return new(big.Int).SetBytes(sum[:]), nil
}

// writable returns an error unless st accepts writes.
func writable(st *stream) error {
	if st.status == statusCreating {
		return errorf("ResourceNotFoundException", "Stream %s is CREATING and not yet accepting writes", st.name)
	}
	return nil
}

// perSecond counts events within one wall-clock second.
type perSecond struct {
	sec   int64
	count int
}

// exceeds counts one event at now and reports whether it goes past limit
// events in now's second; limit <= 0 means no limit.
func (p *perSecond) exceeds(now time.Time, limit int) bool {
	if limit <= 0 {
		return false
	}
	if sec := now.Unix(); p.sec != sec {
		p.sec, p.count = sec, 0
	}
	if p.count >= limit {
		return true
	}
	p.count++
	return false
}

// append stores one record in sh.
func (s *Server) append(st *stream, sh *shard, e *putEntry, now time.Time) string {
	st.counter++
	seq := seqNumber(st.counter, sh.idx)
	sh.records = append(sh.records, record{counter: st.counter, seq: seq, data: e.Data, key: e.PartitionKey, arrival: now})
	sh.wake()
	s.stats.RecordsPut++
	return seq
}

func throttledMsg(st *stream, sh *shard, acct string) string {
	return fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", sh.id, st.name, acct)
}

func (s *Server) putRecord(in *putRecordIn) (any, error) {
	h, err := hashKey(&in.putEntry)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := writable(st); err != nil {
		return nil, err
	}
	now := s.now()
	sh := st.shardFor(h)
	if s.throttle(s.faults.PutRecords, &s.putCalls, sh.id) || sh.writes.exceeds(now, s.cfg.writeLimit) {
		s.stats.PutThrottled++
		return nil, errorf("ProvisionedThroughputExceededException", "%s", throttledMsg(st, sh, s.cfg.account))
	}
	seq := s.append(st, sh, &in.putEntry, now)
	return map[string]any{"ShardId": sh.id, "SequenceNumber": seq, "EncryptionType": "NONE"}, nil
}

type putResult struct {
	SequenceNumber *string `json:",omitempty"`
	ShardID        *string `json:"ShardId,omitempty"`
	ErrorCode      *string `json:",omitempty"`
	ErrorMessage   *string `json:",omitempty"`
}

func (s *Server) putRecords(in *putRecordsIn) (any, error) {
	if len(in.Records) < 1 || len(in.Records) > maxPutEntries {
		return nil, invalidArg("Records has %d entries; a PutRecords call takes 1 to %d", len(in.Records), maxPutEntries)
	}
	hashes := make([]*big.Int, len(in.Records))
	total := 0
	for i := range in.Records {
		h, err := hashKey(&in.Records[i])
		if err != nil {
			return nil, err
		}
		hashes[i] = h
		total += len(in.Records[i].Data) + len(in.Records[i].PartitionKey)
	}
	if total > maxPutBytes {
		return nil, invalidArg("the request's records are %d bytes, more than the %d a PutRecords call takes", total, maxPutBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := writable(st); err != nil {
		return nil, err
	}
	now := s.now()
	results := make([]putResult, len(in.Records))
	failed := 0
	code := "ProvisionedThroughputExceededException"
	for i := range in.Records {
		sh := st.shardFor(hashes[i])
		if s.throttle(s.faults.PutRecords, &s.putCalls, sh.id) || sh.writes.exceeds(now, s.cfg.writeLimit) {
			s.stats.PutThrottled++
			failed++
			msg := throttledMsg(st, sh, s.cfg.account)
			results[i] = putResult{ErrorCode: &code, ErrorMessage: &msg}
			continue
		}
		seq := s.append(st, sh, &in.Records[i], now)
		id := sh.id
		results[i] = putResult{SequenceNumber: &seq, ShardID: &id}
	}
	return map[string]any{"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"}, nil
}

// ---- reads ----

type getShardIteratorIn struct {
	streamRef
	ShardID                string `json:"ShardId"`
	ShardIteratorType      string
	StartingSequenceNumber *string
	Timestamp              *epochTime
}

// iterToken is what a shard iterator carries: a position (the index of the
// next record in the shard) and when it was issued.
type iterToken struct {
	Nonce   string
	Stream  string
	Created int64
	Shard   string
	Pos     int
	Issued  int64
}

func (s *Server) iterator(st *stream, sh *shard, pos int, now time.Time) string {
	return encodeToken(iterToken{Nonce: s.nonce, Stream: st.name, Created: st.created.UnixNano(), Shard: sh.id, Pos: pos, Issued: now.UnixNano()})
}

// seqPos returns the index of the first record of sh with a counter above
// (after) or at (!after) the sequence number's.
func (s *Server) seqPos(st *stream, sh *shard, seq *string, after bool) (int, error) {
	if seq == nil {
		return 0, invalidArg("StartingSequenceNumber is required for AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER")
	}
	c, idx, ok := parseSeq(*seq)
	if !ok {
		return 0, invalidArg("StartingSequenceNumber %s is not a valid sequence number", *seq)
	}
	if idx != sh.idx {
		return 0, invalidArg("Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", shardID(idx), sh.id)
	}
	if c > st.counter {
		return 0, invalidArg("StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it did not come from this stream.", *seq, sh.id, st.name, s.cfg.account)
	}
	return sort.Search(len(sh.records), func(i int) bool {
		if after {
			return sh.records[i].counter > c
		}
		return sh.records[i].counter >= c
	}), nil
}

func (s *Server) getShardIterator(in *getShardIteratorIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	sh, err := s.shard(st, in.ShardID)
	if err != nil {
		return nil, err
	}
	var pos int
	switch in.ShardIteratorType {
	case "TRIM_HORIZON":
		pos = 0
	case "LATEST":
		pos = len(sh.records)
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if pos, err = s.seqPos(st, sh, in.StartingSequenceNumber, in.ShardIteratorType == "AFTER_SEQUENCE_NUMBER"); err != nil {
			return nil, err
		}
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			return nil, invalidArg("Timestamp is required for AT_TIMESTAMP")
		}
		ts := time.Time(*in.Timestamp)
		pos = sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].arrival.Before(ts) })
	default:
		return nil, invalidArg("ShardIteratorType %q must be one of TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, AT_TIMESTAMP", in.ShardIteratorType)
	}
	return map[string]any{"ShardIterator": s.iterator(st, sh, pos, s.now())}, nil
}

type getRecordsIn struct {
	ShardIterator string
	Limit         *int
}

func (s *Server) getRecords(in *getRecordsIn) (any, error) {
	limit := maxGetRecords
	if in.Limit != nil {
		limit = *in.Limit
	}
	if limit < 1 || limit > maxGetRecords {
		return nil, invalidArg("Limit %d must be between 1 and %d", limit, maxGetRecords)
	}
	var tok iterToken
	if in.ShardIterator == "" || !decodeToken(in.ShardIterator, &tok) || tok.Nonce != s.nonce {
		return nil, invalidArg("ShardIterator %q is not a valid shard iterator", in.ShardIterator)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st, err := s.stream(streamRef{StreamName: &tok.Stream})
	if err != nil {
		return nil, err
	}
	if st.created.UnixNano() != tok.Created {
		return nil, errorf("ResourceNotFoundException", "Stream %s was deleted since the iterator was issued", tok.Stream)
	}
	sh, err := s.shard(st, tok.Shard)
	if err != nil {
		return nil, err
	}
	if issued := time.Unix(0, tok.Issued); now.Sub(issued) > s.cfg.iteratorTTL {
		s.stats.IteratorsExpired++
		return nil, errorf("ExpiredIteratorException", "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), s.cfg.iteratorTTL.Milliseconds())
	}
	if s.throttle(s.faults.GetRecords, &s.getCalls, sh.id) || sh.reads.exceeds(now, s.cfg.readLimit) {
		s.stats.GetRecordsThrottled++
		return nil, errorf("ProvisionedThroughputExceededException", "%s", throttledMsg(st, sh, s.cfg.account))
	}
	if tok.Pos < 0 || tok.Pos > len(sh.records) {
		return nil, invalidArg("ShardIterator position is out of range")
	}
	recs := []recordOut{}
	bytes := 0
	pos := tok.Pos
	for pos < len(sh.records) && len(recs) < limit {
		r := &sh.records[pos]
		size := len(r.data) + len(r.key)
		if len(recs) > 0 && bytes+size > maxGetBytes {
			break
		}
		bytes += size
		recs = append(recs, recordOut{SequenceNumber: r.seq, ApproximateArrivalTimestamp: epochTime(r.arrival), Data: r.data, PartitionKey: r.key})
		pos++
	}
	s.stats.RecordsRead += len(recs)
	var behind int64
	if pos < len(sh.records) {
		behind = max(now.Sub(sh.records[pos].arrival).Milliseconds(), 0)
	}
	out := map[string]any{"Records": recs, "MillisBehindLatest": behind}
	if !sh.open() && pos == len(sh.records) {
		out["ChildShards"] = st.children(sh.id)
	} else {
		out["NextShardIterator"] = s.iterator(st, sh, pos, now)
	}
	return out, nil
}

// ---- resharding ----

type splitShardIn struct {
	streamRef
	ShardToSplit       string
	NewStartingHashKey string
}

// reshardable returns an error unless st may be resharded now.
func (s *Server) reshardable(st *stream) error {
	if st.status != statusActive {
		return errorf("ResourceInUseException", "Stream %s under account %s is %s; resharding needs an ACTIVE stream.", st.name, s.cfg.account, st.status)
	}
	return nil
}

func (s *Server) openShard(st *stream, id string) (*shard, error) {
	sh, err := s.shard(st, id)
	if err != nil {
		return nil, err
	}
	if !sh.open() {
		return nil, errorf("ResourceInUseException", "Shard %s in stream %s under account %s is closed (ending sequence number %s).", sh.id, st.name, s.cfg.account, sh.endSeq)
	}
	return sh, nil
}

func (s *Server) splitShard(in *splitShardIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := s.reshardable(st); err != nil {
		return nil, err
	}
	sh, err := s.openShard(st, in.ShardToSplit)
	if err != nil {
		return nil, err
	}
	at, ok := new(big.Int).SetString(in.NewStartingHashKey, 10)
	if !ok || at.Cmp(sh.start) <= 0 || at.Cmp(sh.end) > 0 {
		return nil, invalidArg("NewStartingHashKey %q must be a decimal in (%s, %s], the range of %s", in.NewStartingHashKey, sh.start, sh.end, sh.id)
	}
	if len(st.shards)+2 > maxShards {
		return nil, errorf("LimitExceededException", "stream %s would have more than %d shards", st.name, maxShards)
	}
	st.schedule(s.now(), s.cfg.reshardDelay, statusUpdating, func() { st.split(sh, at) })
	return nil, nil
}

// split closes sh and opens two children covering its range, cut at at.
func (st *stream) split(sh *shard, at *big.Int) (left, right *shard) {
	st.closeShard(sh)
	left = st.newShard(sh.start, new(big.Int).Sub(at, big.NewInt(1)), sh.id, "")
	right = st.newShard(at, sh.end, sh.id, "")
	return left, right
}

// merge closes a and b (adjacent, either order) and opens their child.
func (st *stream) merge(a, b *shard) *shard {
	st.closeShard(a)
	st.closeShard(b)
	lo, hi := a, b
	if b.start.Cmp(a.start) < 0 {
		lo, hi = b, a
	}
	return st.newShard(lo.start, hi.end, a.id, b.id)
}

func adjacent(a, b *shard) bool {
	one := big.NewInt(1)
	return new(big.Int).Add(a.end, one).Cmp(b.start) == 0 || new(big.Int).Add(b.end, one).Cmp(a.start) == 0
}

type mergeShardsIn struct {
	streamRef
	ShardToMerge         string
	AdjacentShardToMerge string
}

func (s *Server) mergeShards(in *mergeShardsIn) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := s.reshardable(st); err != nil {
		return nil, err
	}
	a, err := s.openShard(st, in.ShardToMerge)
	if err != nil {
		return nil, err
	}
	b, err := s.openShard(st, in.AdjacentShardToMerge)
	if err != nil {
		return nil, err
	}
	if a == b || !adjacent(a, b) {
		return nil, invalidArg("Shards %s and %s are not adjacent: their hash key ranges must meet", a.id, b.id)
	}
	if len(st.shards)+1 > maxShards {
		return nil, errorf("LimitExceededException", "stream %s would have more than %d shards", st.name, maxShards)
	}
	st.schedule(s.now(), s.cfg.reshardDelay, statusUpdating, func() { st.merge(a, b) })
	return nil, nil
}

type updateShardCountIn struct {
	streamRef
	TargetShardCount int
	ScalingType      string
}

func (s *Server) updateShardCount(in *updateShardCountIn) (any, error) {
	if in.ScalingType != "UNIFORM_SCALING" {
		return nil, invalidArg("ScalingType %q must be UNIFORM_SCALING", in.ScalingType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stream(in.streamRef)
	if err != nil {
		return nil, err
	}
	if err := s.reshardable(st); err != nil {
		return nil, err
	}
	cur := len(st.openShards())
	n := in.TargetShardCount
	if n < 1 || n > 2*cur || 2*n < cur {
		return nil, invalidArg("TargetShardCount %d must be between half (%d) and double (%d) the current %d open shards", n, (cur+1)/2, 2*cur, cur)
	}
	// Worst case every open shard is split at every boundary and merged again.
	if len(st.shards)+3*(cur+n) > maxShards {
		return nil, errorf("LimitExceededException", "stream %s would have more than %d shards", st.name, maxShards)
	}
	st.schedule(s.now(), s.cfg.reshardDelay, statusUpdating, func() { st.scaleUniform(n) })
	return map[string]any{"StreamName": st.name, "StreamARN": st.arn, "CurrentShardCount": cur, "TargetShardCount": n}, nil
}

// scaleUniform reshapes the open shards into n uniform ranges: each open
// shard is split at every target boundary inside it, then the pieces of
// each target range are merged left to right. Shards already matching a
// target range are left alone.
func (st *stream) scaleUniform(n int) {
	var pieces []*shard
	for _, sh := range st.openShards() {
		cur := sh
		for i := 1; i < n; i++ {
			b := uniformStart(i, n)
			if b.Cmp(cur.start) > 0 && b.Cmp(cur.end) <= 0 {
				left, right := st.split(cur, b)
				pieces = append(pieces, left)
				cur = right
			}
		}
		pieces = append(pieces, cur)
	}
	// pieces are in hash order; each lies inside one target range.
	target := func(sh *shard) int {
		for i := n - 1; i > 0; i-- {
			if sh.start.Cmp(uniformStart(i, n)) >= 0 {
				return i
			}
		}
		return 0
	}
	var acc *shard
	for _, p := range pieces {
		switch {
		case acc == nil:
			acc = p
		case target(p) == target(acc):
			acc = st.merge(acc, p)
		default:
			acc = p
		}
	}
}
