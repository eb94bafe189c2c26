package dedup

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"math"
	"math/bits"
	"time"
	"unsafe"
)

// h128 is the key the window stores for an event_id: AES-CMAC(k, id)
// under a key k drawn at random when the process starts, never the id
// itself (see "Hashing and false positives" in doc.go).
type h128 struct{ lo, hi uint64 }

// idMAC is the process's event_id key. Windows never leave the process
// (Seed and Inherit re-key ids read from the table or copy entries within
// one Filter), so every key of every window is made with it.
var idMAC = newCMAC(randomKey())

func randomKey() []byte {
	k := make([]byte, 16)
	if _, err := rand.Read(k); err != nil {
		panic("dedup: no random key: " + err.Error())
	}
	return k
}

// hashID returns id's key, using scratch (heap memory the caller owns
// for the call) as the cipher's block.
func hashID(id string, scratch *[16]byte) h128 {
	idMAC.sum(id, scratch)
	sum := scratch
	return h128{
		lo: binary.LittleEndian.Uint64(sum[0:8]),
		hi: binary.LittleEndian.Uint64(sum[8:16]),
	}
}

// cmac is AES-CMAC (RFC 4493, NIST SP 800-38B): a pseudo-random function
// of messages of any length with a 128-bit result, two AES block
// encryptions for an event_id of up to 32 bytes.
type cmac struct {
	b      cipher.Block
	k1, k2 [aes.BlockSize]byte // subkeys for a full and a padded last block
}

func newCMAC(key []byte) *cmac {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("dedup: " + err.Error())
	}
	c := &cmac{b: b}
	var l [aes.BlockSize]byte
	b.Encrypt(l[:], l[:])
	c.k1 = double(l)
	c.k2 = double(c.k1)
	return c
}

// double multiplies by x in GF(2^128) (RFC 4493's subkey step).
func double(in [aes.BlockSize]byte) [aes.BlockSize]byte {
	var out [aes.BlockSize]byte
	carry := in[0] >> 7
	for i := range aes.BlockSize - 1 {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[aes.BlockSize-1] = in[aes.BlockSize-1]<<1 ^ 0x87*carry
	return out
}

// sum writes the CMAC of m to x.
func (c *cmac) sum(m string, x *[aes.BlockSize]byte) {
	*x = [aes.BlockSize]byte{}
	// Every block but the last: X = AES(X ⊕ M_i).
	for len(m) > aes.BlockSize {
		for i := range aes.BlockSize {
			x[i] ^= m[i]
		}
		c.b.Encrypt(x[:], x[:])
		m = m[aes.BlockSize:]
	}
	// The last block: full, ⊕ K1; or padded with 10…0, ⊕ K2.
	k := &c.k1
	if len(m) < aes.BlockSize {
		k = &c.k2
		x[len(m)] ^= 0x80
	}
	for i := range len(m) {
		x[i] ^= m[i]
	}
	for i := range aes.BlockSize {
		x[i] ^= k[i]
	}
	c.b.Encrypt(x[:], x[:])
}

// entry is one id with its commit time, used to move windows around
// (Seed, Inherit); the window itself keeps hashes and times in two arrays.
type entry struct {
	h h128
	t uint32
}

// secs converts a time to the window's clock: Unix seconds in a uint32
// (enough until 2106). Times before 1970 count as 0.
func secs(t time.Time) uint32 {
	u := t.Unix()
	switch {
	case u < 0:
		return 0
	case u > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(u)
}

// minCap is the ring capacity of a new or shrunk window.
const minCap = 1024

// window is one shard's set of recent ids: a FIFO ring in insertion order
// plus an open-addressing hash table pointing into the ring.
//
// Entries are numbered by a sequence that grows by one per insert; the
// oldest live entry has number headSeq, the newest headSeq+n-1. Entries
// numbered below committed belong to committed batches and carry their
// commit time; the rest are pending (time 0) and belong to open batches.
// Committed entries are in non-decreasing time order, so eviction by time
// and by count both take from the head.
//
// The table uses linear probing with backward-shift deletion (no
// tombstones); its size is a power of two at least 1.25× the ring
// capacity, so the load stays ≤ 0.8. A slot is 0 when empty, else ring
// position+1 in its low idxBits bits and, above them, the same bits of the
// id's hash (a tag): most probes that meet another id are rejected without
// reading the ring, which saves a cache miss per probe in a large window.
//
// A window is not safe for concurrent use; the shard's mutex guards it.
type window struct {
	max       int      // Config.MaxIDs
	hashes    []h128   // ring, len = capacity
	times     []uint32 // ring, Unix seconds of the commit; 0 while pending
	table     []uint32
	mask      uint64 // len(table)-1
	idxMask   uint32 // low bits of a slot: ring position+1
	head      int    // ring position of the oldest entry
	n         int    // live entries
	headSeq   uint64
	committed uint64 // sequence number of the first pending entry
	last      uint32 // newest commit time; commit times never go below it
	touched   uint32 // touch's sum, never read

	// keep is a capacity maybeShrink does not go below (Filter.Reserve);
	// 0 for none. Cleared when ids are evicted for their age.
	keep int

	evictedTime  uint64 // entries evicted because older than the window
	evictedCount uint64 // entries evicted because the window was full
}

func newWindow(maxIDs, capHint int) *window {
	c := min(max(capHint, minCap), maxIDs)
	w := &window{max: maxIDs}
	w.resize(c)
	return w
}

func tableSize(ringCap int) int {
	want := ringCap + ringCap/4 + 1
	return 1 << bits.Len(uint(want-1))
}

// resize moves the live entries to a ring of capacity c (c ≥ n) and
// rebuilds the table for it.
func (w *window) resize(c int) {
	hashes := make([]h128, c)
	times := make([]uint32, c)
	for k := range w.n {
		p := w.pos(k)
		hashes[k] = w.hashes[p]
		times[k] = w.times[p]
	}
	w.hashes, w.times, w.head = hashes, times, 0
	w.table = make([]uint32, tableSize(c))
	w.mask = uint64(len(w.table) - 1)
	w.idxMask = 1<<bits.Len(uint(c)) - 1
	for k := range w.n {
		w.insertTable(w.hashes[k], k)
	}
}

// reserve grows the ring so that n more entries fit without a resize (up
// to max). Growing takes at least a doubling, so that many small
// reservations cost no more than pushes would. With keep, the capacity
// becomes a floor for maybeShrink.
func (w *window) reserve(n int, keep bool) {
	need := min(w.n+max(n, 0), w.max)
	if need > len(w.hashes) {
		w.resize(min(max(need, 2*len(w.hashes)), w.max))
	}
	if keep {
		w.keep = max(w.keep, need)
	}
}

// pos is the ring position of the k-th oldest live entry.
func (w *window) pos(k int) int {
	p := w.head + k
	if p >= len(w.hashes) {
		p -= len(w.hashes)
	}
	return p
}

func (w *window) tail() uint64 { return w.headSeq + uint64(w.n) }

// tag is the part of h stored in a table slot above the ring position.
func (w *window) tag(h h128) uint32 { return uint32(h.hi) &^ w.idxMask }

func (w *window) contains(h h128) bool {
	i := h.lo & w.mask
	tag := w.tag(h)
	for {
		v := w.table[i]
		if v == 0 {
			return false
		}
		if v&^w.idxMask == tag && w.hashes[v&w.idxMask-1] == h {
			return true
		}
		i = (i + 1) & w.mask
	}
}

// touch reads the table slot where each of hs starts its probe, so that
// their cache misses are in flight together before contains and push
// probe one after another. The sum only keeps the loads from being
// optimised away.
func (w *window) touch(hs []h128) {
	var sum uint32
	for _, h := range hs {
		sum += w.table[h.lo&w.mask]
	}
	w.touched = sum
}

func (w *window) insertTable(h h128, p int) {
	i := h.lo & w.mask
	for w.table[i] != 0 {
		i = (i + 1) & w.mask
	}
	w.table[i] = w.tag(h) | uint32(p+1)
}

// deleteTable removes ring position p from the table and shifts later
// members of its probe run back, so lookups never need tombstones.
func (w *window) deleteTable(p int) {
	want := w.tag(w.hashes[p]) | uint32(p+1)
	i := w.hashes[p].lo & w.mask
	for w.table[i] != want {
		i = (i + 1) & w.mask
	}
	j := i
	for {
		j = (j + 1) & w.mask
		v := w.table[j]
		if v == 0 {
			break
		}
		k := w.hashes[v&w.idxMask-1].lo & w.mask // home slot of the entry at j
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (i < j && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			w.table[i] = v
			i = j
		}
	}
	w.table[i] = 0
}

// push appends h as the newest entry with time t. The caller has checked
// that h is not present. If the window is at max, the oldest entry is
// evicted first, and push reports true.
func (w *window) push(h h128, t uint32) (evicted bool) {
	if w.n == len(w.hashes) {
		if len(w.hashes) < w.max {
			w.resize(min(2*len(w.hashes), w.max))
		} else {
			w.evictOldest()
			w.evictedCount++
			evicted = true
		}
	}
	p := w.pos(w.n)
	w.hashes[p] = h
	w.times[p] = t
	w.insertTable(h, p)
	w.n++
	return evicted
}

// pushCommitted appends h as a committed entry at time t unless present
// (the first copy wins). Callers feed it in time order.
func (w *window) pushCommitted(h h128, t uint32) {
	if w.contains(h) {
		return
	}
	w.push(h, t)
	w.committed = w.tail()
	w.last = max(w.last, t)
}

func (w *window) evictOldest() {
	w.deleteTable(w.head)
	w.head++
	if w.head == len(w.hashes) {
		w.head = 0
	}
	w.n--
	w.headSeq++
	if w.committed < w.headSeq {
		// A pending entry was evicted (a batch larger than max).
		w.committed = w.headSeq
	}
}

// truncate removes the newest entries back to sequence number seq; it only
// ever removes pending entries.
func (w *window) truncate(seq uint64) {
	seq = max(seq, w.committed)
	for w.tail() > seq {
		w.deleteTable(w.pos(w.n - 1))
		w.n--
	}
}

// commit marks the entries numbered [from, to) committed at time t (raised
// to the newest earlier commit time so that times stay in order). from
// must equal the first pending entry or lie before the head.
func (w *window) commit(from, to uint64, t uint32) {
	t = max(t, w.last)
	w.last = t
	for s := max(from, w.headSeq); s < to; s++ {
		w.times[w.pos(int(s-w.headSeq))] = t
	}
	w.committed = max(to, w.headSeq)
}

// expire evicts committed entries whose commit time is more than window
// seconds before now, oldest first, and returns how many.
func (w *window) expire(now, window uint32) int {
	evicted := 0
	for w.n > 0 && w.headSeq < w.committed {
		t := w.times[w.head]
		if now < t || now-t <= window {
			break
		}
		w.evictOldest()
		evicted++
	}
	w.evictedTime += uint64(evicted)
	if evicted > 0 {
		w.keep = 0 // the reservation's ids are ageing out: shrink as usual
	}
	return evicted
}

// maybeShrink halves memory after the window fell below a quarter of its
// capacity (traffic dropped, or time eviction emptied it).
func (w *window) maybeShrink() {
	if c := len(w.hashes); c > minCap && c > w.keep && w.n < c/4 {
		w.resize(max(2*w.n, minCap, w.keep))
	}
}

// entries returns the committed entries, oldest first.
func (w *window) entries() []entry {
	n := int(w.committed - w.headSeq)
	out := make([]entry, n)
	for k := range n {
		p := w.pos(k)
		out[k] = entry{h: w.hashes[p], t: w.times[p]}
	}
	return out
}

// pending is the number of entries in open batches.
func (w *window) pending() int { return int(w.tail() - w.committed) }

const windowOverhead = int64(unsafe.Sizeof(window{}))

// bytes is the memory held by the window's arrays and header.
func (w *window) bytes() int64 {
	return windowOverhead +
		int64(len(w.hashes))*int64(unsafe.Sizeof(h128{})) +
		int64(len(w.times))*4 +
		int64(len(w.table))*4
}

// buildWindow makes a window from entries sorted by time, given as
// consecutive parts; the first copy of a repeated id is kept, and when
// there are more than maxIDs ids the newest are kept.
func buildWindow(maxIDs int, sorted ...[]entry) *window {
	n := 0
	for _, part := range sorted {
		n += len(part)
	}
	w := newWindow(maxIDs, n)
	for _, part := range sorted {
		for _, e := range part {
			w.pushCommitted(e.h, e.t)
		}
	}
	return w
}

// ringWindow makes a window whose ring is hs and ts up to their capacity,
// which it takes over: the len(hs) entries sorted by time, minCap ≤
// len(hs) ≤ cap(hs) = cap(ts) ≤ maxIDs. Repeated ids are removed in place
// (the first copy is kept) and the table is built for the ring's capacity.
func ringWindow(maxIDs int, hs []h128, ts []uint32) *window {
	n, c := len(hs), min(cap(hs), cap(ts))
	w := &window{max: maxIDs, hashes: hs[:c], times: ts[:c]}
	w.table = make([]uint32, tableSize(c))
	w.mask = uint64(len(w.table) - 1)
	w.idxMask = 1<<bits.Len(uint(c)) - 1
	k := 0
	for i := range n {
		h := hs[i]
		if w.contains(h) {
			continue
		}
		hs[k], ts[k] = h, ts[i]
		w.insertTable(h, k)
		k++
	}
	w.n, w.committed = k, uint64(k)
	if k > 0 {
		w.last = ts[k-1]
	}
	return w
}

// mergeEntries merges two time-sorted slices; on equal times a's entries
// come first.
func mergeEntries(a, b []entry) []entry {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]entry, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j].t < a[i].t {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
