package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// pin routes a partition key's records by hash instead of by the MD5 of
// the key, since a copy of one of them landed off its shard.
type pin struct {
	hash  hash128
	since time.Time
}

// pinTTL is how long a pin lasts: the consumer's default --dedup-window.
// A copy sent later than that is not de-duplicated on any shard.
const pinTTL = time.Hour

// refreshRetry is the least time between a failed listing and the next.
const refreshRetry = time.Second

// router groups --aggregate's user records by shard, and keeps every copy
// of a partition key's records in one shard lineage across reshards.
//
// Every aggregate is put with the explicit hash key of the start of its
// shard's range, so with a fresh map it lands on that shard whatever
// records it carries, and all aggregates built for one shard land
// together. After a reshard the map is stale: an aggregate built for a
// closed shard lands on the child holding the start of its range, and the
// PutRecords answer names that child. The sender reports it (landed); the
// router then lists the shards again (once per reshard: only when the
// put began after the last listing), bumps the generation so that records
// not yet handed to PutRecords are grouped again, and pins every
// partition key with a copy in a misrouted entry — or in one still in
// flight, that will be — whose own hash key now goes to another shard: its
// later records go by the hash key of that entry, so they land on the
// shard the copy landed on or a descendant, never a sibling. The
// consumer de-duplicates per shard lineage; the KPL instead re-sends the
// user records of a misrouted aggregate and relies on its consumer library
// dropping the copy outside its shard's range, which paystream's consumer
// does not do.
//
// Safe for concurrent use by the senders. The map and the pins are
// replaced, never changed, so entries reads a consistent pair without
// holding mu while it packs.
type router struct {
	kc    Kinesis
	cfg   *Config
	log   *slog.Logger
	st    *stats
	limit int // --aggregate-max-bytes

	mu         sync.Mutex
	shards     *shardMap
	listedAt   time.Time      // when the listing of shards began
	pins       map[string]pin // by partition key
	gen        uint64         // bumped whenever shards or pins change
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
		shards: m, listedAt: at, pins: map[string]pin{}, inflight: map[*entry]struct{}{}}, nil
}

// routeOf is the hash key a partition key's records go by.
func routeOf(pins map[string]pin, key string) hash128 {
	if p, ok := pins[key]; ok {
		return p.hash
	}
	return hashKey(key)
}

// entries packs recs into aggregates, one open aggregate per shard of the
// map, and returns the routing generation they were built on (claim
// checks it). Records bound for one shard share aggregates, in their
// order; a record too large for any aggregate goes as a plain entry (by
// its pin's hash key if it has one). Every aggregate is closed at the end,
// so a record never waits for a later batch.
func (r *router) entries(recs []*record) ([]*entry, uint64, error) {
	r.mu.Lock()
	m, pins, gen := r.shards, r.pins, r.gen
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
		h := routeOf(pins, rec.key)
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
			if _, pinned := pins[rec.key]; pinned {
				e.ehk = h.String()
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
// and pins the keys of e's records that would now go elsewhere.
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
	pins := maps.Clone(r.pins)
	if n := pinDisplaced(pins, e, shard, r.shards, time.Now()); n > 0 {
		r.pins = pins
		r.gen++
		r.st.pinned(n)
	}
}

// refresh lists the shards again and pins the keys of every entry in
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
	pins := make(map[string]pin, len(r.pins))
	for k, p := range r.pins {
		if at.Sub(p.since) < pinTTL {
			pins[k] = p
		}
	}
	n := 0
	for f := range r.inflight {
		n += pinDisplaced(pins, f, m.ids[m.find(f.route)], m, at)
	}
	r.shards, r.pins, r.listedAt = m, pins, at
	r.gen++
	r.st.refreshed()
	r.st.pinned(n)
	r.log.Info("shard map refreshed: a put landed on another shard than predicted",
		"landed", landed, "predicted", e.shard, "open_shards", len(m.ids), "pinned_keys", n)
}

// pinDisplaced pins to e's hash key the partition key of each of e's
// records that m would send to another shard than landed, where e landed
// (or will). It returns the number of keys pinned.
func pinDisplaced(pins map[string]pin, e *entry, landed string, m *shardMap, now time.Time) int {
	n := 0
	for _, rec := range e.recs {
		h := routeOf(pins, rec.key)
		if h == e.route || m.ids[m.find(h)] == landed {
			continue
		}
		pins[rec.key] = pin{hash: e.route, since: now}
		n++
	}
	return n
}
