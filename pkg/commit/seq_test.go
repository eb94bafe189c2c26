package commit

import (
	"errors"
	"strings"
	"testing"
)

func TestCompareSeq(t *testing.T) {
	const (
		k1 = "49590338271490256608559692538361571095921575989136588898" // 56 digits
		k2 = "49590338271490256608559692540925702759324208523137515618"
	)
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"9", "10", -1}, // not bytewise
		{"10", "9", 1},
		{"100", "100", 0},
		{"007", "7", 0},
		{"0", "", 1},
		{"", "", 0},
		{"", "1", -1},
		{k1, k2, -1},
		{k2, k1, 1},
		{k1, k1, 0},
		{k1, "9" + k1[1:len(k1)-1], 1}, // 56 digits > 55 digits
		{"99999999999999999999999999999999999999999999999999999999", "100000000000000000000000000000000000000000000000000000000", -1},
		{"12", "abc", -1}, // non-numbers sort after numbers
		{"abc", "abd", -1},
	} {
		if got := CompareSeq(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareSeq(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareSeq(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareSeq(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestComparePositions(t *testing.T) {
	const k = "49590338271490256608559692538361571095921575989136588898"
	// Each position sorts strictly before the next.
	ordered := []string{
		"",
		"7:0",
		"7:1",
		"7:2",
		"7:10", // not bytewise
		"7",
		"8:0",
		"8",
		"10:3",
		"10",
		k + ":0",
		k + ":123456",
		k,
		"7:",  // malformed: after every position
		"abc", // malformed
	}
	for i := range ordered {
		for j := range ordered {
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := CompareSeq(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareSeq(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for _, tc := range []struct{ a, b string }{{"007:3", "7:3"}, {"7:03", "7:3"}} {
		if got := CompareSeq(tc.a, tc.b); got != 0 {
			t.Errorf("CompareSeq(%q, %q) = %d, want 0", tc.a, tc.b, got)
		}
	}
}

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		pos     string
		seq     string
		sub     int64
		whole   bool
		wantErr string // substring of the error; "" for none
	}{
		{pos: "123", seq: "123", sub: -1, whole: true},
		{pos: "123:0", seq: "123", sub: 0},
		{pos: "123:45", seq: "123", sub: 45},
		{pos: "", wantErr: "empty position"},
		{pos: ":1", wantErr: `sequence number "" is not a decimal number`},
		{pos: "12a", wantErr: `sequence number "12a" is not a decimal number`},
		{pos: "12:", wantErr: `sub-sequence number "" is not a decimal number`},
		{pos: "12:-1", wantErr: `sub-sequence number "-1" is not a decimal number`},
		{pos: "12:1:2", wantErr: `sub-sequence number "1:2" is not a decimal number`},
		{pos: "12: 1", wantErr: `sub-sequence number " 1" is not a decimal number`},
		{pos: "12:99999999999999999999", wantErr: "out of range"},
	} {
		t.Run(tc.pos, func(t *testing.T) {
			seq, sub, whole, err := ParsePosition(tc.pos)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePosition(%q) error = %v, want one containing %q", tc.pos, err, tc.wantErr)
				}
				if IsPosition(tc.pos) {
					t.Errorf("IsPosition(%q) = true for a malformed position", tc.pos)
				}
				return
			}
			if err != nil || seq != tc.seq || sub != tc.sub || whole != tc.whole {
				t.Fatalf("ParsePosition(%q) = %q, %d, %v, %v; want %q, %d, %v, nil", tc.pos, seq, sub, whole, err, tc.seq, tc.sub, tc.whole)
			}
			if got := FormatPosition(seq, sub); got != tc.pos {
				t.Errorf("FormatPosition(%q, %d) = %q, want %q", seq, sub, got, tc.pos)
			}
			if !IsPosition(tc.pos) {
				t.Errorf("IsPosition(%q) = false", tc.pos)
			}
		})
	}
}

func TestValidateRangesPositions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       ShardRange
		wantErr string
	}{
		{name: "whole after whole", r: ShardRange{Shard: "s", After: "5", Last: "9"}},
		{name: "inside aggregate", r: ShardRange{Shard: "s", After: "5:3", Last: "5:7"}},
		{name: "rest of aggregate", r: ShardRange{Shard: "s", After: "5:3", Last: "5"}},
		{name: "into next aggregate", r: ShardRange{Shard: "s", After: "5", Last: "6:0"}},
		{name: "first", r: ShardRange{Shard: "s", Last: "6:0"}},
		{name: "back inside", r: ShardRange{Shard: "s", After: "5", Last: "5:9"}, wantErr: "last 5:9 is not after 5"},
		{name: "same", r: ShardRange{Shard: "s", After: "5:2", Last: "5:2"}, wantErr: "is not after"},
		{name: "bad last", r: ShardRange{Shard: "s", After: "5", Last: "6:x"}, wantErr: `shard s: last: position "6:x": sub-sequence number "x" is not a decimal number`},
		{name: "bad after", r: ShardRange{Shard: "s", After: "5::1", Last: "6"}, wantErr: `shard s: after: position "5::1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRanges([]ShardRange{tc.r})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ValidateRanges: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ValidateRanges error = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "" && !errors.Is(err, ErrInvalidBatch):
				t.Fatalf("ValidateRanges error = %v, not ErrInvalidBatch", err)
			}
		})
	}
}
