package producer

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/kpl"
)

// entry is one PutRecords entry: a plain record, or a KPL aggregate of
// several user records (--aggregate).
type entry struct {
	data       []byte
	key        string    // partition key
	recs       []*record // the user records it carries, in sub-sequence order
	aggregated bool
}

// size is what the entry counts against the PutRecords limits.
func (e *entry) size() int { return len(e.data) + len(e.key) }

// userRecords counts the user records carried by es.
func userRecords(es []*entry) int {
	n := 0
	for _, e := range es {
		n += len(e.recs)
	}
	return n
}

// plainEntries makes one entry per record.
func plainEntries(recs []*record) []*entry {
	es := make([]*entry, len(recs))
	for i, r := range recs {
		es[i] = &entry{data: r.data, key: r.key, recs: []*record{r}}
	}
	return es
}

// hash128 is a Kinesis hash key: a 128-bit unsigned integer.
type hash128 struct{ hi, lo uint64 }

func (h hash128) less(o hash128) bool { return h.hi < o.hi || (h.hi == o.hi && h.lo < o.lo) }

// hashKey is the hash key Kinesis gives a partition key: its MD5 read as a
// big-endian 128-bit integer.
func hashKey(pk string) hash128 {
	s := md5.Sum([]byte(pk))
	return hash128{binary.BigEndian.Uint64(s[:8]), binary.BigEndian.Uint64(s[8:])}
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// parseHash reads a decimal hash key as ListShards gives it.
func parseHash(s string) (hash128, error) {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.Sign() < 0 || b.Cmp(maxHash) > 0 {
		return hash128{}, fmt.Errorf("hash key %q is not a decimal between 0 and 2^128-1", s)
	}
	var buf [16]byte
	b.FillBytes(buf[:])
	return hash128{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}, nil
}

// shardMap is the stream's open shards by the start of their hash key
// ranges, as ListShards gave them when the run started. A reshard during
// the run makes it stale: an aggregate then still goes to one shard (the
// one holding its first user record's key), but its other user records
// may belong to a neighbour by the new map.
type shardMap struct {
	ids    []string
	starts []hash128 // ascending
}

// shard returns the index of the shard whose range holds pk's hash key.
func (m *shardMap) shard(pk string) int {
	h := hashKey(pk)
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
			open = append(open, shard{aws.ToString(sh.ShardId), start})
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
	}
	return m, nil
}

// aggregation packs a batch's records into KPL aggregates, one open
// aggregate per shard of the map. Safe for concurrent use: each call
// packs with aggregators of its own.
type aggregation struct {
	shards *shardMap
	limit  int // --aggregate-max-bytes
}

// entries packs recs into aggregates. Records bound for one shard share
// aggregates, in their order; a record too large for any aggregate goes
// as a plain entry. Every aggregate is closed at the end of the batch, so
// a record never waits for a later batch.
func (a *aggregation) entries(recs []*record) ([]*entry, error) {
	type open struct {
		agg  *kpl.Aggregator
		recs []*record
	}
	perShard := make([]*open, len(a.shards.ids))
	var out []*entry
	flush := func(o *open) {
		agg, ok := o.agg.Flush()
		if !ok {
			return
		}
		out = append(out, &entry{data: agg.Data, key: agg.PartitionKey, recs: o.recs, aggregated: true})
		o.recs = nil
	}
	for _, r := range recs {
		i := a.shards.shard(r.key)
		o := perShard[i]
		if o == nil {
			agg, err := kpl.NewAggregator(a.limit)
			if err != nil {
				return nil, err
			}
			o = &open{agg: agg}
			perShard[i] = o
		}
		ur := kpl.UserRecord{PartitionKey: r.key, Data: r.data}
		if !o.agg.Fits(ur) {
			flush(o)
		}
		err := o.agg.Add(ur)
		switch {
		case errors.Is(err, kpl.ErrTooLarge):
			out = append(out, &entry{data: r.data, key: r.key, recs: []*record{r}})
			continue
		case err != nil:
			return nil, err
		}
		o.recs = append(o.recs, r)
	}
	for _, o := range perShard {
		if o != nil {
			flush(o)
		}
	}
	return out, nil
}
