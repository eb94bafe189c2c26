package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/kpl"
)

// shardMap is the stream's open shards by the start of their hash key
// ranges, as one listing gave them. Never changed once built: a refresh
// replaces it.
type shardMap struct {
	ids    []string
	starts []hash128 // ascending
	ehks   []string  // starts in decimal: the explicit hash keys of aggregates
}

// find returns the index of the shard whose range holds h.
func (m *shardMap) find(h hash128) int {
	// the last shard starting at or below h
	i := sort.Search(len(m.starts), func(i int) bool { return h.less(m.starts[i]) })
	return max(i-1, 0)
}

// loadShardMap lists the stream's open shards (those without an ending
// sequence number).
func loadShardMap(ctx context.Context, cfg *Config, kc Kinesis) (*shardMap, error) {
	type shard struct {
		id    string
		start hash128
		ehk   string
	}
	var open []shard
	var next *string
	for {
		in := &kinesis.ListShardsInput{NextToken: next}
		if next == nil {
			in.StreamName = aws.String(cfg.Stream)
		}
		lctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		out, err := kc.ListShards(lctx, in)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list the shards of stream %q at %s (--aggregate groups records by shard): %w", cfg.Stream, cfg.Endpoint, err)
		}
		for _, sh := range out.Shards {
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed
			}
			if sh.HashKeyRange == nil {
				return nil, fmt.Errorf("stream %q: shard %s has no hash key range", cfg.Stream, aws.ToString(sh.ShardId))
			}
			start, err := parseHash(aws.ToString(sh.HashKeyRange.StartingHashKey))
			if err != nil {
				return nil, fmt.Errorf("stream %q: shard %s: %w", cfg.Stream, aws.ToString(sh.ShardId), err)
			}
			open = append(open, shard{aws.ToString(sh.ShardId), start, start.String()})
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	if len(open) == 0 {
		return nil, fmt.Errorf("stream %q at %s has no open shards", cfg.Stream, cfg.Endpoint)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].start.less(open[j].start) })
	m := &shardMap{}
	for _, s := range open {
		m.ids = append(m.ids, s.id)
		m.starts = append(m.starts, s.start)
		m.ehks = append(m.ehks, s.ehk)
	}
	return m, nil
}

// refreshRetry is the least time between a failed listing and the next.
const refreshRetry = time.Second

// router groups --aggregate's user records by shard, and keeps every copy
// of an event in one shard lineage across reshards.
//
// Every aggregate is put with the explicit hash key of the start of its
// shard's range, so with a fresh map it lands on that shard whatever
// records it carries, and all aggregates built for one shard land
// together. After a reshard the map is stale: an aggregate built for a
// closed shard lands on the child holding the start of its range, and the
// PutRecords answer names that child. The sender reports it (landed); the
// router then lists the shards again (once per reshard: only when the put
// began after the last listing), bumps the generation so that records not
// yet handed to PutRecords are grouped again, and pins every event with a
// copy in a misrouted entry — or in one still in flight, that will be —
// whose partition key now goes to another shard: its later copies go by
// the hash key of that entry, so they land on the shard the copy landed
// on or a descendant, never a sibling. The consumer de-duplicates per
// shard lineage. The KPL instead re-sends the user records of a misrouted
// aggregate and relies on its consumer library dropping the copy outside
// its shard's range, which paystream's consumer does not do. Pins are
// per event, not per partition key, so the customer's other events go to
// the shard its key belongs to, and a split spreads the load it was made
// to spread; a pin lives in the event, as long as its copies.
//
// Safe for concurrent use by the senders. The map is replaced, never
// changed; pins are set under mu and read atomically, and every change of
// either bumps gen, so entries packs without holding mu and claim refuses
// what was packed before a change.
type router struct {
	kc    Kinesis
	cfg   *Config
	log   *slog.Logger
	st    *stats
	limit int // --aggregate-max-bytes

	mu         sync.Mutex
	shards     *shardMap
	listedAt   time.Time // when the listing of shards began
	gen        uint64    // bumped whenever shards or pins change
	inflight   map[*entry]struct{}
	refreshing bool
	failedAt   time.Time // last failed listing
}

// newRouter lists the stream's shards.
func newRouter(ctx context.Context, cfg *Config, kc Kinesis, st *stats, log *slog.Logger) (*router, error) {
	at := time.Now()
	m, err := loadShardMap(ctx, cfg, kc)
	if err != nil {
		return nil, err
	}
	return &router{kc: kc, cfg: cfg, log: log, st: st, limit: cfg.AggregateBytes,
		shards: m, listedAt: at, inflight: map[*entry]struct{}{}}, nil
}

// routeOf is the hash key a record goes by: its event's pin, or the MD5
// of its partition key.
func routeOf(rec *record) hash128 {
	if rec.ev != nil {
		if p := rec.ev.pin.Load(); p != nil {
			return *p
		}
	}
	return hashKey(rec.key)
}

// entries packs recs into aggregates, one open aggregate per shard of the
// map, and returns the routing generation they were built on (claim
// checks it). Records bound for one shard share aggregates, in their
// order; a record too large for any aggregate goes as a plain entry (by
// its event's pin if it has one). Every aggregate is closed at the end,
// so a record never waits for a later batch.
func (r *router) entries(recs []*record) ([]*entry, uint64, error) {
	r.mu.Lock()
	m, gen := r.shards, r.gen
	r.mu.Unlock()
	type open struct {
		agg  *kpl.Aggregator
		recs []*record
	}
	perShard := make([]*open, len(m.ids))
	var out []*entry
	flush := func(i int) {
		o := perShard[i]
		agg, ok := o.agg.Flush()
		if !ok {
			return
		}
		out = append(out, &entry{data: agg.Data, key: agg.PartitionKey, recs: o.recs, aggregated: true,
			ehk: m.ehks[i], route: m.starts[i], shard: m.ids[i]})
		o.recs = nil
	}
	for _, rec := range recs {
		h := routeOf(rec)
		i := m.find(h)
		o := perShard[i]
		if o == nil {
			agg, err := kpl.NewAggregator(r.limit)
			if err != nil {
				return nil, 0, err
			}
			o = &open{agg: agg}
			perShard[i] = o
		}
		ur := kpl.UserRecord{PartitionKey: rec.key, Data: rec.data}
		if !o.agg.Fits(ur) {
			flush(i)
		}
		err := o.agg.Add(ur)
		switch {
		case errors.Is(err, kpl.ErrTooLarge):
			e := &entry{data: rec.data, key: rec.key, recs: []*record{rec}, route: h, shard: m.ids[i]}
			if h != hashKey(rec.key) {
				e.ehk = h.String() // pinned
			}
			out = append(out, e)
			continue
		case err != nil:
			return nil, 0, err
		}
		o.recs = append(o.recs, rec)
	}
	for i, o := range perShard {
		if o != nil {
			flush(i)
		}
	}
	return out, gen, nil
}

// claim marks es as handed to PutRecords. False when the routing changed
// since es were built on gen: group their records again.
func (r *router) claim(es []*entry, gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		return false
	}
	for _, e := range es {
		r.inflight[e] = struct{}{}
	}
	return true
}

// settle forgets es: every one is acknowledged or given up.
func (r *router) settle(es []*entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range es {
		delete(r.inflight, e)
	}
}

// landed is told, before the acknowledgement is counted, that e (claimed)
// landed on shard in a put that began at putStart. Off the predicted
// shard, it refreshes the map if the put began after the last listing,
// and pins the events of e's records that would now go elsewhere.
func (r *router) landed(ctx context.Context, e *entry, shard string, putStart time.Time) {
	if shard == e.shard || shard == "" {
		return
	}
	r.st.misrouted()
	r.mu.Lock()
	refresh := !r.refreshing && r.listedAt.Before(putStart) && time.Since(r.failedAt) >= refreshRetry
	r.refreshing = r.refreshing || refresh
	r.mu.Unlock()
	if refresh {
		r.refresh(ctx, e, shard)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := pinDisplaced(e, shard, r.shards); n > 0 {
		r.gen++
		r.st.pinned(n)
	}
}

// refresh lists the shards again and pins the events of every entry in
// flight as it would land by the new map. A failed listing keeps the old
// map (landed still pins by it) and is not retried for refreshRetry.
func (r *router) refresh(ctx context.Context, e *entry, landed string) {
	at := time.Now()
	m, err := loadShardMap(ctx, r.cfg, r.kc)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshing = false
	if err != nil {
		r.failedAt = time.Now()
		r.log.Warn("shard map refresh failed; keeping the old map", "landed", landed, "predicted", e.shard, "err", err)
		return
	}
	n := 0
	for f := range r.inflight {
		n += pinDisplaced(f, m.ids[m.find(f.route)], m)
	}
	r.shards, r.listedAt = m, at
	r.gen++
	r.st.refreshed()
	r.st.pinned(n)
	r.log.Info("shard map refreshed: a put landed on another shard than predicted",
		"landed", landed, "predicted", e.shard, "open_shards", len(m.ids), "pinned_events", n)
}

// pinDisplaced pins to e's hash key the event of each of e's records that
// m would send to another shard than landed, where e landed (or will).
// It returns the number of events pinned. Invalid records have no event:
// they are never sent twice. Call with mu held.
func pinDisplaced(e *entry, landed string, m *shardMap) int {
	n := 0
	for _, rec := range e.recs {
		if rec.ev == nil {
			continue
		}
		h := routeOf(rec)
		if h == e.route || m.ids[m.find(h)] == landed {
			continue
		}
		route := e.route
		rec.ev.pin.Store(&route)
		n++
	}
	return n
}
