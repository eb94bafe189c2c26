package schema

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestParseRFC3339MatchesTimeParse compares the fast path with
// time.Parse on every tenth day of years 0 to 9999 (leap days and the
// first and last of each month among them), at times with and without
// fractions and offsets.
func TestParseRFC3339MatchesTimeParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	layouts := []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05.000Z07:00"}
	zones := []*time.Location{time.UTC, time.FixedZone("", -7*3600-30*60), time.FixedZone("", 14*3600)}
	check := func(s string) {
		t.Helper()
		sec, nsec, ok := parseRFC3339Parts([]byte(s))
		got := time.Unix(sec, nsec).UTC()
		want, err := time.Parse(time.RFC3339Nano, s)
		if !ok {
			if err == nil {
				t.Errorf("parseRFC3339Parts(%q) refused; time.Parse gives %v", s, want)
			}
			return
		}
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseRFC3339Parts(%q) = %v (%v); time.Parse: %v, %v", s, got, got.Location(), want, err)
		}
	}
	start := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	n := 0
	for d := start; !d.After(end); d = d.AddDate(0, 0, 10) {
		for _, day := range []time.Time{d, time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC), time.Date(d.Year(), d.Month()+1, 0, 23, 59, 59, 0, time.UTC)} {
			at := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
			at = at.In(zones[n%len(zones)])
			if at.Year() < 0 || at.Year() > 9999 {
				continue
			}
			check(at.Format(layouts[n%len(layouts)]))
			n++
		}
	}
	for _, s := range []string{"2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2000-02-29T12:00:00Z", "1900-02-29T12:00:00Z",
		"0000-01-01T00:00:00Z", "0000-02-29T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.5-00:30",
		// each digit position with a byte just below '0' and just above '9',
		// and each field out of its range
		"/024-01-01T00:00:00Z", ":024-01-01T00:00:00Z", "202/-01-01T00:00:00Z", "2024-/1-01T00:00:00Z", "2024-0:-01T00:00:00Z",
		"2024-01-/1T00:00:00Z", "2024-01-0:T00:00:00Z", "2024-01-01T/0:00:00Z", "2024-01-01T0::00:00Z", "2024-01-01T00:/0:00Z",
		"2024-01-01T00:0::00Z", "2024-01-01T00:00:/0Z", "2024-01-01T00:00:0:Z", "2024-1a-01T00:00:00Z",
		"2024-00-10T00:00:00Z", "2024-13-10T00:00:00Z", "2024-01-00T00:00:00Z", "2024-01-32T00:00:00Z", "2024-04-31T00:00:00Z",
		"2024-01-01T24:00:00Z", "2024-01-01T23:60:00Z", "2024-01-01T23:59:60Z", "2024-01-01 00:00:00Z", "2024/01/01T00:00:00Z",
		"2024-01-01T00-00-00Z"} {
		check(s)
	}
	if n < 300_000 {
		t.Fatalf("checked %d times, want every tenth day of 10,000 years", n)
	}
}
