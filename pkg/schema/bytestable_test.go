package schema

import (
	"strconv"
	"testing"
)

// TestBytesTable inserts 50,000 values (the table doubles several times),
// then finds every one at its index and none of 1,000 others, again after
// a rebuild to a smaller size and not at all after a reset.
func TestBytesTable(t *testing.T) {
	var tb bytesTable
	var values []string
	for i := range 50_000 {
		v := []byte("cus_" + strconv.Itoa(i*7919))
		k, slot, tag := tb.find(v, values)
		if k >= 0 {
			t.Fatalf("%s found at %d before it was inserted", v, k)
		}
		values = append(values, string(v))
		tb.insert(slot, tag, int32(len(values)-1), values)
	}
	check := func(when string) {
		t.Helper()
		for i, v := range values {
			if k, _, _ := tb.find([]byte(v), values); k != int32(i) {
				t.Fatalf("%s: %s found at %d, want %d", when, v, k, i)
			}
		}
		for i := range 1000 {
			if k, _, _ := tb.find([]byte("absent_"+strconv.Itoa(i)), values); k >= 0 {
				t.Fatalf("%s: an absent value found at %d", when, k)
			}
		}
	}
	check("after the inserts")
	if tb.n*4 > len(tb.slots)*3 {
		t.Fatalf("load %d of %d slots, above 3/4", tb.n, len(tb.slots))
	}
	tb.rebuild(values, 1024) // grows to fit
	check("after a rebuild")
	tb.reset()
	if k, _, _ := tb.find([]byte(values[0]), values); k >= 0 {
		t.Fatal("a value found after reset")
	}
}
