package kpl

import (
	"bytes"
	"errors"
	"testing"
)

// De-aggregating arbitrary bytes never panics, and either fails with one of
// the package's errors or returns records whose data lies inside the input.
func FuzzDeaggregate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(`{"event_id":"e1"}`))
	f.Add(hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, -1, "d"))...)))
	f.Add(hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, 0, "d", [2]string{"t", "v"}))...)))
	f.Add(hwrap([]byte{0x0A, 0x80}))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Half the inputs get a valid MD5 so the fuzzer reaches the parser.
		for _, in := range [][]byte{data, hwrap(data)} {
			rs, err := Deaggregate(in)
			if err != nil {
				for _, s := range []error{ErrNotAggregated, ErrTruncated, ErrChecksum, ErrMalformed, ErrKeyIndex, ErrEmpty} {
					if errors.Is(err, s) {
						return
					}
				}
				t.Fatalf("error %v wraps none of the package's errors", err)
			}
			for i, r := range rs {
				if r.SubSequence != uint64(i) || !bytes.Contains(in, r.Data) || !bytes.Contains(in, []byte(r.PartitionKey)) {
					t.Fatalf("record %d = %+v is not from the input", i, r)
				}
			}
		}
	})
}

// Aggregate → de-aggregate gives back the records, in order.
func FuzzRoundTrip(f *testing.F) {
	f.Add("k", "", []byte("data"), "j", "123", []byte(""), uint8(3))
	f.Add("a", "b", []byte{0, 1, 2}, "a", "b", []byte{0xF3, 0x89, 0x9A, 0xC2}, uint8(200))
	f.Fuzz(func(t *testing.T, pk1, ehk1 string, d1 []byte, pk2, ehk2 string, d2 []byte, n uint8) {
		a, err := NewAggregator(MaxAggregateBytes)
		if err != nil {
			t.Fatal(err)
		}
		var in []UserRecord
		for i := range int(n) + 1 {
			r := UserRecord{PartitionKey: pk1, ExplicitHashKey: ehk1, Data: d1}
			if i%2 == 1 {
				r = UserRecord{PartitionKey: pk2, ExplicitHashKey: ehk2, Data: d2}
			}
			if !a.Fits(r) {
				break
			}
			if err := a.Add(r); err != nil {
				if r.PartitionKey == "" || len(r.PartitionKey) > MaxPartitionKeyBytes {
					return
				}
				t.Fatal(err)
			}
			r.SubSequence = uint64(i)
			if r.Data == nil {
				r.Data = []byte{}
			}
			in = append(in, r)
		}
		agg, ok := a.Flush()
		if !ok {
			return
		}
		out, err := Deaggregate(agg.Data)
		if err != nil {
			t.Fatal(err)
		}
		equalRecords(t, out, in)
	})
}
