package sqlview

import (
	"math"
	"math/big"
	"testing"
	"time"
)

func TestFormatDecimal(t *testing.T) {
	for _, tc := range []struct {
		unscaled int64
		scale    int
		want     string
	}{
		{150, 2, "1.50"},
		{-5, 2, "-0.05"},
		{0, 2, "0.00"},
		{123456789, 2, "1234567.89"},
		{7, 0, "7"},
		{7, -2, "700"},
		{-100, 3, "-0.100"},
	} {
		if got := formatDecimal(big.NewInt(tc.unscaled), tc.scale); got != tc.want {
			t.Errorf("formatDecimal(%d, %d) = %q, want %q", tc.unscaled, tc.scale, got, tc.want)
		}
	}
	huge, _ := new(big.Int).SetString("-12345678901234567890123456789012345678", 10)
	if got, want := formatDecimal(huge, 2), "-123456789012345678901234567890123456.78"; got != want {
		t.Errorf("38 digits: %q, want %q", got, want)
	}
}

func TestRenderTimes(t *testing.T) {
	ts := time.Date(2024, 5, 1, 12, 30, 0, 123000, time.FixedZone("x", 3600))
	for _, tc := range []struct{ typ, want string }{
		{"TIMESTAMPTZ", "2024-05-01T11:30:00.000123Z"},
		{"TIMESTAMP WITH TIME ZONE", "2024-05-01T11:30:00.000123Z"},
		{"DATE", "2024-05-01"},
	} {
		if got := render(ts, tc.typ); got.Text != tc.want || got.Kind != KindText {
			t.Errorf("%s: %+v, want %q", tc.typ, got, tc.want)
		}
	}
	if c := render(nil, "VARCHAR"); c.Kind != KindNull {
		t.Errorf("nil: %+v", c)
	}
	if c := render(math.NaN(), "DOUBLE"); c.Kind != KindText {
		t.Errorf("NaN must print as text: %+v", c)
	}
}
