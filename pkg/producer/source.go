package producer

import (
	"container/heap"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/paystream/paystream/pkg/schema"
)

// record is one Kinesis record the producer sends. A duplicate is a second
// record value sharing data (identical bytes), key and ev with its original.
type record struct {
	data        []byte
	key         string // partition key: customer_id; "invalid_<n>" for malformed records
	eventID     string // empty for invalid records
	invalidKind string // set for invalid records
	ev          *event // shared by every copy of one valid event; nil for invalid
}

// event counts the acknowledged copies of one valid event: the first is
// the unique one, later ones are duplicates. With --aggregate, pin is the
// hash key its later copies go by after a copy landed off its shard
// (router). It lives as long as its copies.
type event struct {
	acks atomic.Int32
	pin  atomic.Pointer[hash128]
}

// batch is the records of one PutRecords call (or one write to --output).
type batch struct {
	recs  []*record
	bytes int
}

func (b *batch) fits(r *record, maxRecords int) bool {
	return len(b.recs) < maxRecords && b.bytes+len(r.data)+len(r.key) <= MaxBatchBytes
}

func (b *batch) add(r *record) {
	b.recs = append(b.recs, r)
	b.bytes += len(r.data) + len(r.key)
}

// source decides what each record slot carries: a delayed duplicate that
// is due, a malformed record (--invalid-rate) or a new event, which may get
// a duplicate (--duplicate-rate) in the same call or later. Owned by the
// generating goroutine; not safe for concurrent use.
type source struct {
	gen      *schema.Generator
	rng      *rand.Rand
	dupRate  float64
	invRate  float64
	delay    time.Duration
	pending  dupHeap // delayed duplicates, earliest due first
	invalidN uint64
}

func newSource(cfg *Config, start time.Time) *source {
	return &source{
		gen:     schema.NewGenerator(cfg.Seed, start),
		rng:     rand.New(rand.NewPCG(cfg.Seed^0x5eed5eed, cfg.Seed+0xd0b1e)),
		dupRate: cfg.DuplicateRate,
		invRate: cfg.InvalidRate,
		delay:   cfg.DuplicateDelay,
	}
}

// next appends the records for the next slot to buf: one record, or an
// event followed by its same-call duplicate. remaining is the number of
// slots the run may still fill (this one included); next never returns
// more than remaining records and schedules no duplicate that could not
// be sent before the run's record limit is reached: once the pending
// duplicates fill the remaining slots they go out early.
func (s *source) next(now time.Time, remaining int64, buf []*record) []*record {
	if n := len(s.pending); n > 0 && (!s.pending[0].due.After(now) || int64(n) >= remaining) {
		return append(buf, heap.Pop(&s.pending).(delayed).rec)
	}
	if s.invRate > 0 && s.rng.Float64() < s.invRate {
		raw, kind := s.gen.NextInvalid(now)
		s.invalidN++
		return append(buf, &record{data: raw, key: "invalid_" + strconv.FormatUint(s.invalidN, 10), invalidKind: kind})
	}
	e := s.gen.Next(now)
	r := &record{data: e.AppendJSON(nil), key: e.CustomerID, eventID: e.EventID, ev: &event{}}
	buf = append(buf, r)
	if s.dupRate > 0 && s.rng.Float64() < s.dupRate {
		dup := &record{data: r.data, key: r.key, eventID: r.eventID, ev: r.ev}
		if s.rng.IntN(2) == 0 {
			if remaining >= 2 {
				buf = append(buf, dup)
			}
		} else if int64(len(s.pending))+1 < remaining {
			// between half of --duplicate-delay and all of it later
			half := int64(s.delay / 2)
			due := now.Add(time.Duration(half + s.rng.Int64N(half+1)))
			heap.Push(&s.pending, delayed{due: due, rec: dup})
		}
	}
	return buf
}

type delayed struct {
	due time.Time
	rec *record
}

type dupHeap []delayed

func (h dupHeap) Len() int           { return len(h) }
func (h dupHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dupHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dupHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *dupHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = delayed{}
	*h = old[:len(old)-1]
	return x
}
