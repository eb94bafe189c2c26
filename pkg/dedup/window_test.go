package dedup

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// checkInvariants verifies that the table indexes exactly the live ring
// entries and that committed entries are in time order.
func checkInvariants(t *testing.T, w *window) {
	t.Helper()
	used := 0
	for _, v := range w.table {
		if v != 0 {
			used++
		}
	}
	if used != w.n {
		t.Fatalf("table holds %d entries, ring %d", used, w.n)
	}
	for k := range w.n {
		if !w.contains(w.hashes[w.pos(k)]) {
			t.Fatalf("live entry %d not found in table", k)
		}
	}
	if w.committed < w.headSeq || w.committed > w.tail() {
		t.Fatalf("committed %d outside [%d, %d]", w.committed, w.headSeq, w.tail())
	}
	var prev uint32
	for k := range int(w.committed - w.headSeq) {
		if tm := w.times[w.pos(k)]; tm < prev {
			t.Fatalf("committed entry %d at %d after one at %d", k, tm, prev)
		} else {
			prev = tm
		}
	}
}

// TestTableCollidingHomes drives the table with hashes that share home
// slots and wrap around the table's end, where backward-shift deletion
// goes wrong if the cyclic comparison is off.
func TestTableCollidingHomes(t *testing.T) {
	w := newWindow(64, 0)
	size := uint64(len(w.table))
	var hs []h128
	for i := range 40 {
		// Homes cluster on the last three slots and slot 0.
		home := (size - 3 + uint64(i%4)) % size
		hs = append(hs, h128{lo: home + uint64(i)*size, hi: uint64(i)})
	}
	for _, h := range hs {
		w.pushCommitted(h, 1)
	}
	checkInvariants(t, w)
	for len(hs) > 0 {
		// Evict from the head (FIFO) and pop from the tail (abort) in turn.
		w.evictOldest()
		hs = hs[1:]
		checkInvariants(t, w)
		for _, h := range hs {
			if !w.contains(h) {
				t.Fatalf("lost %v after eviction", h)
			}
		}
		if len(hs) == 0 {
			break
		}
		w.committed = w.headSeq // make the newest entry pending
		w.truncate(w.tail() - 1)
		hs = hs[:len(hs)-1]
		checkInvariants(t, w)
		for _, h := range hs {
			if !w.contains(h) {
				t.Fatalf("lost %v after truncate", h)
			}
		}
		w.committed = w.tail()
	}
}

func TestResizeKeepsOrder(t *testing.T) {
	w := newWindow(10_000, 0)
	for i := range 5000 {
		w.pushCommitted(hashID(fmt.Sprint(i), new([16]byte)), uint32(i))
	}
	if len(w.hashes) != 8192 {
		t.Fatalf("capacity %d after 5000 inserts, want 8192", len(w.hashes))
	}
	for range 4500 {
		w.evictOldest()
	}
	w.maybeShrink()
	if len(w.hashes) != minCap {
		t.Fatalf("capacity %d after shrinking to 500 ids, want %d", len(w.hashes), minCap)
	}
	checkInvariants(t, w)
	es := w.entries()
	for k, e := range es {
		if e.h != hashID(fmt.Sprint(4500+k), new([16]byte)) || e.t != uint32(4500+k) {
			t.Fatalf("entry %d is not id %d after resize", k, 4500+k)
		}
	}
}

// model is the obvious, slow statement of the Filter's behaviour for one
// shard; TestModel checks the real thing against it.
type model struct {
	max, ttl int
	live     []modelEntry // oldest first
	last     int
}

type modelEntry struct {
	id        string
	t         int
	committed bool
	batch     int
}

func (m *model) check(id string, batch int) bool {
	for _, e := range m.live {
		if e.id == id {
			return true
		}
	}
	m.live = append(m.live, modelEntry{id: id, batch: batch})
	if len(m.live) > m.max {
		m.live = m.live[1:]
	}
	return false
}

func (m *model) commit(batch, at int) {
	m.last = max(m.last, at)
	for i := range m.live {
		if e := &m.live[i]; !e.committed && e.batch == batch {
			e.committed, e.t = true, m.last
		}
	}
	m.expire(m.last)
}

func (m *model) expire(now int) {
	for len(m.live) > 0 && m.live[0].committed && now-m.live[0].t > m.ttl {
		m.live = m.live[1:]
	}
}

func (m *model) abort(batch int) {
	m.live = slices.DeleteFunc(m.live, func(e modelEntry) bool { return !e.committed && e.batch >= batch })
}

// TestModel runs random Begin/Check/Commit/Abort/Expire sequences on one
// shard of a small Filter and compares every answer with the model.
func TestModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			const ttl = 100
			maxIDs := 50 + rng.IntN(1500)
			f, err := New(Config{Window: ttl * time.Second, MaxIDs: maxIDs})
			if err != nil {
				t.Fatal(err)
			}
			m := &model{max: maxIDs, ttl: ttl}
			now := 1_000_000
			type open struct {
				b  *Batch
				id int
			}
			var batches []open
			nextBatch := 0
			accepting := false // the newest batch may still Check
			for step := range 20_000 {
				switch r := rng.IntN(100); {
				case r < 3 || !accepting:
					batches = append(batches, open{f.Begin("s"), nextBatch})
					nextBatch++
					accepting = true
				case r < 85:
					// Ids from a small space so that duplicates are common.
					id := fmt.Sprint(rng.IntN(3 * maxIDs))
					cur := batches[len(batches)-1]
					if got, want := cur.b.Check(id), m.check(id, cur.id); got != want {
						t.Fatalf("step %d: Check(%s) = %v, model says %v", step, id, got, want)
					}
				case r < 93:
					if len(batches) == 1 {
						accepting = false
					}
					now += rng.IntN(30) - 5 // times may go backwards a little
					if err := batches[0].b.Commit(time.Unix(int64(now), 0)); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					m.commit(batches[0].id, now)
					batches = batches[1:]
				case r < 96:
					i := rng.IntN(len(batches))
					batches[i].b.Abort()
					m.abort(batches[i].id)
					batches = batches[:i]
					accepting = false
				default:
					now += rng.IntN(40)
					f.Expire(time.Unix(int64(now), 0))
					m.expire(now)
				}
				s := f.lookup("s")
				if s.w.n != len(m.live) {
					t.Fatalf("step %d: window holds %d ids, model %d", step, s.w.n, len(m.live))
				}
				if step%500 == 0 {
					checkInvariants(t, s.w)
				}
			}
		})
	}
}

// TestCMACMatchesRFC4493 checks the event_id key function against the
// AES-CMAC test vectors of RFC 4493 (section 4): empty, one full block,
// a padded last block, four full blocks.
func TestCMACMatchesRFC4493(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c := newCMAC(unhex("2b7e151628aed2a6abf7158809cf4f3c"))
	msg := unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		var got [16]byte
		c.sum(string(msg[:tc.n]), &got)
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("CMAC of %d bytes = %x, want %s", tc.n, got, tc.want)
		}
	}
}
