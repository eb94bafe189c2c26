package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The test encoder below writes the aggregation format by hand from its
// description (magic F3 89 9A C2, the proto2 messages in doc.go, MD5
// trailer), with its own varint and raw tag bytes, so that Deaggregate is
// checked against bytes the package's Aggregator did not make.

// hvarint is a base-128 varint, least significant group first.
func hvarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// hfield is a length-delimited field: tag byte (field<<3 | 2), length, bytes.
func hfield(tag byte, v []byte) []byte {
	return append(append([]byte{tag}, hvarint(uint64(len(v)))...), v...)
}

// hrecord is a Record message. ehk < 0 leaves explicit_hash_key_index out.
func hrecord(pk uint64, ehk int, data string, tags ...[2]string) []byte {
	b := append([]byte{0x08}, hvarint(pk)...) // field 1, varint
	if ehk >= 0 {
		b = append(b, 0x10) // field 2, varint
		b = append(b, hvarint(uint64(ehk))...)
	}
	b = append(b, hfield(0x1A, []byte(data))...) // field 3, bytes
	for _, t := range tags {
		tb := hfield(0x0A, []byte(t[0]))
		if t[1] != "" {
			tb = append(tb, hfield(0x12, []byte(t[1]))...)
		}
		b = append(b, hfield(0x22, tb)...) // field 4, Tag
	}
	return b
}

// hwrap adds the magic number and the MD5 trailer around a message.
func hwrap(msg []byte) []byte {
	sum := md5.Sum(msg)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, msg...)
	return append(out, sum[:]...)
}

func TestDeaggregateIndependentEncoder(t *testing.T) {
	big := strings.Repeat("x", 300) // a data length needing a two-byte varint
	tests := []struct {
		name string
		msg  []byte
		want []UserRecord
	}{
		{
			name: "one record",
			msg:  append(hfield(0x0A, []byte("cust_1")), hfield(0x1A, hrecord(0, -1, `{"a":1}`))...),
			want: []UserRecord{{PartitionKey: "cust_1", Data: []byte(`{"a":1}`)}},
		},
		{
			name: "shared keys, explicit hash keys, tags, long data",
			msg: bytes.Join([][]byte{
				hfield(0x0A, []byte("p0")), hfield(0x0A, []byte("p1")),
				hfield(0x12, []byte("12345")), hfield(0x12, []byte("340282366920938463463374607431768211455")),
				hfield(0x1A, hrecord(1, 1, "first", [2]string{"k", "v"}, [2]string{"only-key", ""})),
				hfield(0x1A, hrecord(0, -1, big)),
				hfield(0x1A, hrecord(1, 0, "")),
				hfield(0x1A, hrecord(0, 1, "last")),
			}, nil),
			want: []UserRecord{
				{PartitionKey: "p1", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("first"), SubSequence: 0},
				{PartitionKey: "p0", Data: []byte(big), SubSequence: 1},
				{PartitionKey: "p1", ExplicitHashKey: "12345", Data: []byte{}, SubSequence: 2},
				{PartitionKey: "p0", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("last"), SubSequence: 3},
			},
		},
		{
			name: "tables after the records, unknown fields skipped",
			msg: bytes.Join([][]byte{
				hfield(0x1A, append(hrecord(0, -1, "d"), 0x28, 0x07)), // Record field 5, varint 7
				{0x38, 0x96, 0x01}, // AggregatedRecord field 7, varint 150
				hfield(0x0A, []byte("late")),
				{0x45, 1, 2, 3, 4}, // field 8, fixed32
			}, nil),
			want: []UserRecord{{PartitionKey: "late", Data: []byte("d")}},
		},
		{
			name: "200 records (sub-sequence numbers past one varint byte)",
			msg: func() []byte {
				b := hfield(0x0A, []byte("k"))
				for i := range 200 {
					b = append(b, hfield(0x1A, hrecord(0, -1, fmt.Sprint(i)))...)
				}
				return b
			}(),
			want: func() []UserRecord {
				var rs []UserRecord
				for i := range 200 {
					rs = append(rs, UserRecord{PartitionKey: "k", Data: []byte(fmt.Sprint(i)), SubSequence: uint64(i)})
				}
				return rs
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := hwrap(tt.msg)
			if !IsAggregated(data) {
				t.Fatal("IsAggregated = false")
			}
			got, err := Deaggregate(data)
			if err != nil {
				t.Fatal(err)
			}
			equalRecords(t, got, tt.want)
		})
	}
}

// An aggregate made by another implementation of the format (the Elixir
// port of the KPL aggregator, from its documentation): partition key
// "partition_key", one user record "data".
func TestDeaggregateThirdPartyVector(t *testing.T) {
	data := []byte{243, 137, 154, 194, 10, 13, 112, 97, 114, 116, 105, 116, 105, 111, 110, 95, 107, 101, 121,
		26, 8, 8, 0, 26, 4, 100, 97, 116, 97, 208, 54, 153, 218, 90, 34, 47, 163, 33, 8, 173, 27, 217, 85, 161, 78}
	got, err := Deaggregate(data)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []UserRecord{{PartitionKey: "partition_key", Data: []byte("data")}})
}

func TestIsAggregated(t *testing.T) {
	for _, tt := range []struct {
		data []byte
		want bool
	}{
		{nil, false},
		{[]byte{0xF3, 0x89, 0x9A}, false},
		{[]byte{0xF3, 0x89, 0x9A, 0xC2}, true},
		{[]byte(`{"event_id":"e1"}`), false},
		{[]byte{0xF3, 0x89, 0x9A, 0xC3, 0, 0}, false},
	} {
		if got := IsAggregated(tt.data); got != tt.want {
			t.Errorf("IsAggregated(%x) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

func TestDeaggregateBadInput(t *testing.T) {
	good := append(hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, -1, "d"))...)
	badSum := hwrap(good)
	badSum[len(badSum)-1] ^= 1
	tests := []struct {
		name    string
		data    []byte
		want    error
		message string // a substring of the error
	}{
		{"plain JSON", []byte(`{"event_id":"e1"}`), ErrNotAggregated, "magic"},
		{"empty", nil, ErrNotAggregated, "magic"},
		{"magic only", []byte{0xF3, 0x89, 0x9A, 0xC2}, ErrTruncated, "4 bytes, need at least 20"},
		{"shorter than the MD5", append([]byte{0xF3, 0x89, 0x9A, 0xC2}, make([]byte, 15)...), ErrTruncated, "19 bytes"},
		{"MD5 mismatch", badSum, ErrChecksum, "MD5 of the"},
		{"no records", hwrap(hfield(0x0A, []byte("k"))), ErrEmpty, "no user records"},
		{"empty message", hwrap(nil), ErrEmpty, "no user records"},
		{"truncated varint", hwrap([]byte{0x0A, 0x80}), ErrMalformed, "AggregatedRecord field 1 at byte 1"},
		{"length past the end", hwrap([]byte{0x0A, 0x05, 'a'}), ErrMalformed, "AggregatedRecord"},
		{"field number 0", hwrap([]byte{0x02, 0x00}), ErrMalformed, "field tag at byte 0"},
		{"key table as varint", hwrap([]byte{0x08, 0x01}), ErrMalformed, "partition_key_table has wire type 0"},
		{"records as varint", hwrap(append(hfield(0x0A, []byte("k")), 0x18, 0x01)), ErrMalformed, "AggregatedRecord.records has wire type 0"},
		{"record without partition_key_index", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, hfield(0x1A, []byte("d")))...)),
			ErrMalformed, "record 0: malformed KPL aggregate protobuf: required Record.partition_key_index missing"},
		{"record without data", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, []byte{0x08, 0x00})...)),
			ErrMalformed, "required Record.data missing"},
		{"data as varint", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, []byte{0x08, 0x00, 0x18, 0x01})...)),
			ErrMalformed, "Record.data has wire type 0"},
		{"tag without key", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, append(hrecord(0, -1, "d"), hfield(0x22, hfield(0x12, []byte("v")))...))...)),
			ErrMalformed, "required Tag.key missing"},
		{"malformed record", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, []byte{0x08})...)), ErrMalformed, "Record field 1 at byte 1"},
		{"partition key index out of the table", hwrap(bytes.Join([][]byte{hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, -1, "ok")), hfield(0x1A, hrecord(1, -1, "d"))}, nil)),
			ErrKeyIndex, "record 1: KPL user record key index out of the key table: partition_key_index 1, the partition key table has 1 entries"},
		{"no partition key table", hwrap(hfield(0x1A, hrecord(0, -1, "d"))), ErrKeyIndex, "table has 0 entries"},
		{"explicit hash key index out of the table", hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, 0, "d"))...)),
			ErrKeyIndex, "explicit_hash_key_index 0, the explicit hash key table has 0 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []UserRecord{{PartitionKey: "before"}}
			got, err := AppendDeaggregate(dst, tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("err = %q, want it to contain %q", err, tt.message)
			}
			if len(got) != 1 || got[0].PartitionKey != "before" {
				t.Errorf("dst changed on error: %+v", got)
			}
		})
	}
}

func TestAppendDeaggregateKeepsDst(t *testing.T) {
	data := hwrap(append(hfield(0x0A, []byte("k")), hfield(0x1A, hrecord(0, -1, "d"))...))
	got, err := AppendDeaggregate([]UserRecord{{PartitionKey: "before"}}, data)
	if err != nil {
		t.Fatal(err)
	}
	equalRecords(t, got, []UserRecord{{PartitionKey: "before"}, {PartitionKey: "k", Data: []byte("d")}})
}

func equalRecords(t *testing.T, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || g.SubSequence != w.SubSequence ||
			!bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
			t.Errorf("record %d = %+v, want %+v", i, g, w)
		}
	}
}
