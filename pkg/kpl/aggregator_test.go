package kpl

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The Aggregator's bytes equal the hand encoder's for the same records:
// each key once in its table, indexes into it, the MD5 trailer.
func TestAggregatorBytes(t *testing.T) {
	a, err := NewAggregator(DefaultAggregateBytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []UserRecord{
		{PartitionKey: "k", Data: []byte("a")},
		{PartitionKey: "k", Data: []byte("b"), ExplicitHashKey: "99"},
		{PartitionKey: "j", Data: []byte("c")},
		{PartitionKey: "k", Data: []byte("d"), ExplicitHashKey: "99"},
	} {
		if err := a.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	agg, ok := a.Flush()
	if !ok {
		t.Fatal("Flush: nothing")
	}
	want := hwrap(bytes.Join([][]byte{
		hfield(0x0A, []byte("k")), hfield(0x12, []byte("99")), hfield(0x0A, []byte("j")),
		hfield(0x1A, hrecord(0, -1, "a")),
		hfield(0x1A, hrecord(0, 0, "b")),
		hfield(0x1A, hrecord(1, -1, "c")),
		hfield(0x1A, hrecord(0, 0, "d")),
	}, nil))
	if !bytes.Equal(agg.Data, want) {
		t.Errorf("aggregate\n got %x\nwant %x", agg.Data, want)
	}
	if agg.PartitionKey != "k" || agg.ExplicitHashKey != "" || agg.Records != 4 {
		t.Errorf("aggregate = %q %q %d records, want k, no explicit hash key, 4", agg.PartitionKey, agg.ExplicitHashKey, agg.Records)
	}
	if _, ok := a.Flush(); ok || a.Len() != 0 || a.Size() != 0 {
		t.Errorf("after Flush: ok %v, Len %d, Size %d; want an empty aggregator", ok, a.Len(), a.Size())
	}
	// The tables start over after a Flush.
	if err := a.Add(UserRecord{PartitionKey: "j", Data: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	agg, _ = a.Flush()
	if want := hwrap(append(hfield(0x0A, []byte("j")), hfield(0x1A, hrecord(0, -1, "e"))...)); !bytes.Equal(agg.Data, want) {
		t.Errorf("second aggregate\n got %x\nwant %x", agg.Data, want)
	}
}

// Size is exact, no aggregate passes the limit, each is full (its next
// record did not fit), and de-aggregating every aggregate gives back every
// record in order.
func TestAggregatorLimit(t *testing.T) {
	for _, limit := range []int{MinAggregateBytes, 1000, DefaultAggregateBytes, MaxAggregateBytes} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(limit)))
			a, err := NewAggregator(limit)
			if err != nil {
				t.Fatal(err)
			}
			var in, out []UserRecord
			var aggs []Aggregate
			flush := func() {
				size := a.Size()
				agg, ok := a.Flush()
				if !ok {
					t.Fatal("Flush found nothing")
				}
				if got := len(agg.Data) + len(agg.PartitionKey); got != size {
					t.Fatalf("Size said %d, the aggregate counts %d", size, got)
				}
				if size > limit {
					t.Fatalf("aggregate of %d bytes, limit %d", size, limit)
				}
				aggs = append(aggs, agg)
			}
			for len(aggs) < 20 {
				r := UserRecord{
					PartitionKey: fmt.Sprintf("cust_%d", rng.IntN(50)),
					Data:         bytes.Repeat([]byte{byte(rng.IntN(256))}, rng.IntN(min(limit/3, 4000))),
				}
				if rng.IntN(4) == 0 {
					r.ExplicitHashKey = fmt.Sprint(rng.Uint64())
				}
				if !a.Fits(r) {
					if a.Len() == 0 {
						t.Fatalf("an empty aggregator refused %d bytes with limit %d", len(r.Data), limit)
					}
					flush()
				}
				if err := a.Add(r); err != nil {
					t.Fatal(err)
				}
				in = append(in, r)
			}
			flush()
			for _, agg := range aggs {
				rs, err := Deaggregate(agg.Data)
				if err != nil {
					t.Fatal(err)
				}
				if rs[0].PartitionKey != agg.PartitionKey || rs[0].ExplicitHashKey != agg.ExplicitHashKey {
					t.Errorf("aggregate keys %q %q, its first record's %q %q", agg.PartitionKey, agg.ExplicitHashKey, rs[0].PartitionKey, rs[0].ExplicitHashKey)
				}
				for i := range rs {
					rs[i].SubSequence = 0
				}
				out = append(out, rs...)
			}
			equalRecords(t, out, in)
		})
	}
}

func TestAggregatorRefuses(t *testing.T) {
	for _, limit := range []int{-1, 0, MinAggregateBytes - 1, MaxAggregateBytes + 1, 1 << 20} {
		if _, err := NewAggregator(limit); err == nil || !strings.Contains(err.Error(), "must be between") {
			t.Errorf("NewAggregator(%d) = %v, want a range error", limit, err)
		}
	}
	a, err := NewAggregator(1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(UserRecord{Data: []byte("x")}); err == nil || !strings.Contains(err.Error(), "without a partition key") {
		t.Errorf("no partition key: %v", err)
	}
	if err := a.Add(UserRecord{PartitionKey: strings.Repeat("k", MaxPartitionKeyBytes+1), Data: []byte("x")}); err == nil || !strings.Contains(err.Error(), "partition key of 1025 bytes") {
		t.Errorf("long partition key: %v", err)
	}
	if err := a.Add(UserRecord{PartitionKey: "k", Data: make([]byte, 1000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record over the limit: %v, want ErrTooLarge", err)
	}
	if err := a.Add(UserRecord{PartitionKey: "k", Data: make([]byte, 900)}); err != nil {
		t.Fatal(err)
	}
	err = a.Add(UserRecord{PartitionKey: "k", Data: make([]byte, 100)})
	if err == nil || errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "flush first") {
		t.Errorf("record not fitting the open aggregate: %v", err)
	}
	if a.Len() != 1 {
		t.Errorf("Len = %d after refusals, want 1", a.Len())
	}
}

// Add copies the data: changing the caller's slice later does not change
// the aggregate.
func TestAggregatorCopiesData(t *testing.T) {
	a, _ := NewAggregator(1000)
	d := []byte("abc")
	if err := a.Add(UserRecord{PartitionKey: "k", Data: d}); err != nil {
		t.Fatal(err)
	}
	d[0] = 'X'
	agg, _ := a.Flush()
	rs, err := Deaggregate(agg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if string(rs[0].Data) != "abc" {
		t.Errorf("data = %q, want abc", rs[0].Data)
	}
}
