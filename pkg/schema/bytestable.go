package schema

import "hash/maphash"

// bytesTable finds a dictionary value by its bytes: an open-addressing
// table (linear probing) of indices into the dictionary's values, each
// with a tag from its hash so that most probes that meet another value
// compare no bytes. It replaces a map[string]int32 lookup for
// EventColumns' customer_id, the one dictionary with thousands of values
// a batch: a Go map lookup of a changing []byte key cost about 40 ns.
type bytesTable struct {
	slots []uint64 // 0: empty; else tag<<32 | (index+1)
	n     int
}

var bytesSeed = maphash.MakeSeed()

// find returns the index of b among values, or -1 with the slot where b
// goes and its tag (for insert).
func (t *bytesTable) find(b []byte, values []string) (k int32, slot int, tag uint64) {
	if len(t.slots) == 0 {
		t.slots = make([]uint64, 1024)
	}
	h := maphash.Bytes(bytesSeed, b)
	tag = uint64(uint32(h>>32) | 1)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == 0 {
			return -1, int(i), tag
		}
		if s>>32 == tag && values[uint32(s)-1] == string(b) {
			return int32(uint32(s) - 1), int(i), tag
		}
	}
}

// insert records that values[k] is at the slot, with the tag, that find
// returned for it; values holds every value inserted so far, its
// included.
func (t *bytesTable) insert(slot int, tag uint64, k int32, values []string) {
	t.slots[slot] = tag<<32 | uint64(k+1)
	t.n++
	if t.n*4 > len(t.slots)*3 { // load above 3/4: double
		t.rebuild(values, 2*len(t.slots))
	}
}

// rebuild makes a table of size slots (a power of two) holding values.
func (t *bytesTable) rebuild(values []string, size int) {
	for size*3 < len(values)*4 {
		size *= 2
	}
	t.slots, t.n = make([]uint64, size), 0
	mask := uint64(size - 1)
	for k, v := range values {
		h := maphash.String(bytesSeed, v)
		i := h & mask
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = uint64(uint32(h>>32)|1)<<32 | uint64(k+1)
		t.n++
	}
}

// reset empties the table, keeping its size.
func (t *bytesTable) reset() {
	clear(t.slots)
	t.n = 0
}
