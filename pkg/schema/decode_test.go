package schema

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const valid = `{"event_id":"evt_1","event_type":"payment.succeeded","customer_id":"cus_1","amount_usd":15.49,"currency":"USD","subscription_tier":"standard","status":"succeeded","country_code":"US","payment_processor":"stripe","event_ts":"2026-11-25T11:59:00Z"}`

// with returns the valid event with one field replaced (raw JSON value) or
// removed (value "-").
func with(field, value string) string {
	s := valid
	i := strings.Index(s, `"`+field+`":`)
	if i < 0 {
		panic(field)
	}
	j := i + len(field) + 3
	depth, inStr := 0, false
	k := j
	for ; k < len(s); k++ {
		c := s[k]
		if inStr {
			switch c {
			case '\\':
				k++
			case '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
		} else if c == '{' || c == '[' {
			depth++
		} else if (c == ',' || c == '}') && depth == 0 {
			break
		} else if c == '}' || c == ']' {
			depth--
		}
	}
	if value == "-" {
		if s[i-1] == ',' {
			return s[:i-1] + s[k:]
		}
		return s[:i] + s[k+1:]
	}
	return s[:j] + value + s[k:]
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		check func(Event) bool
	}{
		{"sample", valid, func(e Event) bool {
			return e.EventID == "evt_1" && e.AmountUSD == 1549 && e.EventTS.Equal(time.Date(2026, 11, 25, 11, 59, 0, 0, time.UTC))
		}},
		{"amount as string", with("amount_usd", `"15.49"`), func(e Event) bool { return e.AmountUSD == 1549 }},
		{"amount one decimal", with("amount_usd", `15.5`), func(e Event) bool { return e.AmountUSD == 1550 }},
		{"amount integer", with("amount_usd", `15`), func(e Event) bool { return e.AmountUSD == 1500 }},
		{"currency defaults to USD", with("currency", "-"), func(e Event) bool { return e.Currency == "USD" }},
		{"currency null defaults", with("currency", "null"), func(e Event) bool { return e.Currency == "USD" }},
		{"epoch millis", with("event_ts", `1764071940123`), func(e Event) bool { return e.EventTS.Equal(time.UnixMilli(1764071940123).UTC()) }},
		{"offset converted to UTC", with("event_ts", `"2026-11-25T12:59:00+01:00"`), func(e Event) bool {
			return e.EventTS.Location() == time.UTC && e.EventTS.Hour() == 11
		}},
		{"unknown fields ignored", strings.Replace(valid, "{", `{"note":{"x":[1,2]},"v":2,`, 1), func(e Event) bool { return e.EventID == "evt_1" }},
		{"refund negative", with("event_type", `"payment.refunded"`)[:0] + strings.NewReplacer(`"payment.succeeded"`, `"payment.refunded"`, `"status":"succeeded"`, `"status":"refunded"`, `15.49`, `-15.49`).Replace(valid), func(e Event) bool { return e.AmountUSD == -1549 }},
		{"unicode id", with("event_id", `"évt_ü"`), func(e Event) bool { return e.EventID == "évt_ü" }},
		{"escaped id", with("event_id", `"evt_\"q\""`), func(e Event) bool { return e.EventID == `evt_"q"` }},
		{"id at limit", with("event_id", `"`+strings.Repeat("a", 128)+`"`), func(e Event) bool { return len(e.EventID) == 128 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(tt.raw), now)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, tt.raw)
			}
			if !tt.check(e) {
				t.Fatalf("unexpected event %+v", e)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	refund := strings.NewReplacer(`"payment.succeeded"`, `"payment.refunded"`, `"status":"succeeded"`, `"status":"refunded"`).Replace(valid)
	tests := []struct {
		name  string
		raw   string
		field string
		want  string // substring of the reason
	}{
		{"missing event_id", with("event_id", "-"), "event_id", "missing"},
		{"null event_id", with("event_id", "null"), "event_id", "missing"},
		{"empty event_id", with("event_id", `""`), "event_id", "empty"},
		{"long event_id", with("event_id", `"`+strings.Repeat("a", 129)+`"`), "event_id", "limit is 128"},
		{"control char event_id", with("event_id", `"evt\u0001"`), "event_id", "control"},
		{"number event_id", with("event_id", `42`), "event_id", "JSON string"},
		{"missing customer", with("customer_id", "-"), "customer_id", "missing"},
		{"unknown event_type", with("event_type", `"payment.pending"`), "event_type", "not known"},
		{"status mismatch", with("status", `"refunded"`), "status", "requires status"},
		{"missing status", with("status", "-"), "status", "missing"},
		{"three decimals", with("amount_usd", `15.499`), "amount_usd", "more than two decimal"},
		{"amount not number", with("amount_usd", `"abc"`), "amount_usd", "plain decimal"},
		{"amount exponent", with("amount_usd", `1.5e1`), "amount_usd", "plain decimal"},
		{"amount bool", with("amount_usd", `true`), "amount_usd", "plain decimal"},
		{"amount missing", with("amount_usd", "-"), "amount_usd", "missing"},
		{"amount too large", with("amount_usd", `1000000.01`), "amount_usd", "out of range"},
		{"amount huge", with("amount_usd", `99999999999999999999999`), "amount_usd", "out of range"},
		{"charge negative", with("amount_usd", `-15.49`), "amount_usd", "must be positive"},
		{"charge zero", with("amount_usd", `0`), "amount_usd", "must be positive"},
		{"refund positive", refund, "amount_usd", "must be negative"},
		{"unknown tier", with("subscription_tier", `"platinum"`), "subscription_tier", "not known"},
		{"lower-case country", with("country_code", `"us"`), "country_code", "malformed"},
		{"long country", with("country_code", `"USA"`), "country_code", "malformed"},
		{"bad currency", with("currency", `"US"`), "currency", "malformed"},
		{"empty processor", with("payment_processor", `""`), "payment_processor", "empty"},
		{"long processor", with("payment_processor", `"`+strings.Repeat("p", 65)+`"`), "payment_processor", "limit is 64"},
		{"ts without offset", with("event_ts", `"2026-11-25T11:59:00"`), "event_ts", "RFC 3339"},
		{"ts garbage", with("event_ts", `"yesterday"`), "event_ts", "RFC 3339"},
		{"ts fractional millis", with("event_ts", `1764071940.5`), "event_ts", "epoch milliseconds"},
		{"ts before 2000", with("event_ts", `"1999-12-31T23:59:59Z"`), "event_ts", "before 2000"},
		{"ts seconds not millis", with("event_ts", `1764071940`), "event_ts", "before 2000"},
		{"ts far future", with("event_ts", `"2026-11-26T12:00:01Z"`), "event_ts", "future"},
		{"ts missing", with("event_ts", "-"), "event_ts", "missing"},
		{"not json", `{"event_id": "x"`, "record", "not valid JSON"},
		{"array", `["evt_1"]`, "record", "not a JSON object"},
		{"string", `"evt_1"`, "record", "not a JSON object"},
		{"null", `null`, "record", "not a JSON object"},
		{"empty", ``, "record", "not a JSON object"},
		{"invalid utf8", strings.Replace(valid, "evt_1", "evt_\xff", 1), "record", "UTF-8"},
		{"too large", `{"event_id":"` + strings.Repeat("a", MaxRecordBytes) + `"}`, "record", "1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.raw), now)
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want *InvalidError, got %v", err)
			}
			for _, p := range ie.Problems {
				if p.Field == tt.field && strings.Contains(p.Reason, tt.want) {
					return
				}
			}
			t.Fatalf("no problem %s ~ %q in %v", tt.field, tt.want, ie.Problems)
		})
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	raw := `{"event_id":"","event_type":"payment.bogus","amount_usd":1.234,"subscription_tier":"gold","status":"ok","country_code":"u","payment_processor":"stripe","event_ts":"never","customer_id":"c"}`
	_, err := Decode([]byte(raw), now)
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("want InvalidError, got %v", err)
	}
	fields := map[string]bool{}
	for _, p := range ie.Problems {
		fields[p.Field] = true
	}
	for _, f := range []string{"event_id", "event_type", "amount_usd", "subscription_tier", "status", "country_code", "event_ts"} {
		if !fields[f] {
			t.Errorf("problem for %s not reported; got %v", f, ie.Problems)
		}
	}
	if !strings.Contains(err.Error(), "event_id: is empty") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestParseAmount(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		ok   bool
	}{
		{"0", 0, true}, {"0.01", 1, true}, {"15.49", 1549, true}, {"-3", -300, true}, {"1000000.00", MaxAmount, true},
		{"", 0, false}, {"-", 0, false}, {".5", 0, false}, {"5.", 0, false}, {"1.2.3", 0, false}, {"+1", 0, false},
		{"1.001", 0, false}, {"NaN", 0, false}, {"1e2", 0, false}, {"1000000.01", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseAmount(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseAmount(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, a := range []Amount{0, 1, -1, 1549, -1549, 10, MaxAmount} {
		back, err := ParseAmount(a.String())
		if err != nil || back != a {
			t.Errorf("round trip %d → %q → %d, %v", a, a.String(), back, err)
		}
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	g := NewGenerator(7, now)
	for i := 0; i < 2000; i++ {
		e := g.Next(now)
		if i%7 == 0 {
			e.CustomerID = "cus_\"quoted\"\\ é"
		}
		back, err := Decode(e.AppendJSON(nil), now)
		if err != nil {
			t.Fatalf("generated event %d does not decode: %v\n%s", i, err, e.AppendJSON(nil))
		}
		if back != e {
			t.Fatalf("round trip differs:\n%+v\n%+v", e, back)
		}
	}
}

// TestSeedCorpusDecodes keeps testdata/events.ndjson meaningful: its valid
// lines decode and its invalid lines are rejected, as their comment says.
func TestSeedCorpus(t *testing.T) {
	for _, name := range []string{"valid.ndjson", "invalid.ndjson"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) < 5 {
			t.Fatalf("%s has only %d lines", name, len(lines))
		}
		for i, l := range lines {
			_, err := Decode([]byte(l), now)
			if (err == nil) != (name == "valid.ndjson") {
				t.Errorf("%s:%d: Decode error = %v", name, i+1, err)
			}
		}
	}
}

// TestSkipPlainMatchesByteLoop compares the word-at-a-time scan with the
// byte loop it replaces, from every start, on random texts rich in the
// bytes it must stop at (quote, backslash, control characters, and the
// ones next to them: space, DEL, bytes above 0x7f).
func TestSkipPlainMatchesByteLoop(t *testing.T) {
	alphabet := []byte{'"', '\\', 0, 0x1f, 0x20, 0x21, 'a', 0x7f, 0x80, 0xff, 0x5b, 0x5d, 0x23, 0x5c ^ 0x80, '"' ^ 0x80}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		d := make([]byte, r.IntN(40))
		for i := range d {
			if r.IntN(4) == 0 {
				d[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				d[i] = byte(0x20 + r.IntN(0x5f))
				if d[i] == '"' || d[i] == '\\' {
					d[i] = 'x'
				}
			}
		}
		for i := 0; i <= len(d); i++ {
			want := i
			for want < len(d) && d[want] < 0x80 && plain[d[want]] {
				want++
			}
			if got := skipPlain(d, i); got != want {
				t.Fatalf("case %d: skipPlain(%q, %d) = %d, want %d", n, d, i, got, want)
			}
		}
	}
}

// TestHasControlMatchesIsControl checks hasControl's word-at-a-time pass
// against strings.IndexFunc(s, unicode.IsControl) on texts of printable
// ASCII with control characters (C0, DEL, C1 as UTF-8), other UTF-8 and
// invalid bytes mixed in at every position of a word.
func TestHasControlMatchesIsControl(t *testing.T) {
	special := []string{"\x00", "\x1f", "\x7f", "\u0080", "\u009f", "\u00a0", "é", "\u2028", "\xff", "\xc2", " ", "~"}
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 20000 {
		var b []byte
		for range r.IntN(30) {
			if r.IntN(6) == 0 {
				b = append(b, special[r.IntN(len(special))]...)
			} else {
				b = append(b, byte(0x20+r.IntN(0x5f)))
			}
		}
		want := strings.IndexFunc(string(b), unicode.IsControl) >= 0
		if got := hasControl(b); got != want {
			t.Fatalf("case %d: hasControl(%q) = %v, want %v", n, b, got, want)
		}
	}
}
