package commit

import "testing"

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
