package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// checkMatchesReference fails t unless Decode and decodeReference agree on
// raw: the same event (compared with ==, so time.Time representations
// too), the same problems in the same order, the same error text; and
// unless Decode's scanner handled raw itself exactly when it is valid JSON
// (it hands only invalid JSON to decodeReference, for the message).
func checkMatchesReference(t *testing.T, raw []byte) {
	t.Helper()
	got, gotErr := Decode(raw, now)
	want, wantErr := decodeReference(raw, now)
	if got != want {
		t.Fatalf("event differs for %q:\n got  %+v\n want %+v", raw, got, want)
	}
	var arena IDArena
	if withArena, err := DecodeWith(raw, now, &arena); withArena != got || (err == nil) != (gotErr == nil) || (err != nil && err.Error() != gotErr.Error()) {
		t.Fatalf("DecodeWith differs from Decode for %q:\n got  %+v, %v\n want %+v, %v", raw, withArena, err, got, gotErr)
	}
	checkEventColumns(t, raw, got, gotErr)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("accepted differs for %q:\n got  %v\n want %v", raw, gotErr, wantErr)
	}
	if gotErr != nil {
		var g, w *InvalidError
		if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) {
			t.Fatalf("errors are not *InvalidError for %q: %v / %v", raw, gotErr, wantErr)
		}
		if !slices.Equal(g.Problems, w.Problems) || gotErr.Error() != wantErr.Error() {
			t.Fatalf("reasons differ for %q:\n got  %q\n want %q", raw, g.Reasons(), w.Reasons())
		}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(raw) > MaxRecordBytes || !utf8.Valid(raw) || len(trimmed) == 0 || trimmed[0] != '{' {
		return
	}
	var c checker
	if _, handled := c.decode(raw, now); handled != json.Valid(trimmed) {
		t.Fatalf("scanner handled=%v but json.Valid=%v for %q", handled, !handled, raw)
	}
}

// checkEventColumns fails t unless EventColumns.Decode gives Decode's
// result on raw: the same error, or a row of the same values.
func checkEventColumns(t *testing.T, raw []byte, want Event, wantErr error) {
	t.Helper()
	cols := NewEventColumns(memory.DefaultAllocator)
	defer cols.Release()
	cols.Begin(testShard, 1)
	err := cols.Decode(raw, now, 7)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("EventColumns.Decode differs from Decode for %q:\n got  %v\n want %v", raw, err, wantErr)
	}
	got := cols.NewRecordBatch(now)
	defer got.Release()
	if err != nil {
		if got.NumRows() != 0 {
			t.Fatalf("EventColumns kept %d rows of the invalid %q", got.NumRows(), raw)
		}
		return
	}
	rb := NewRecordBuilder(memory.DefaultAllocator)
	defer rb.Release()
	rb.Append(&Row{Event: want, ShardID: testShard, SequenceNumber: "7", SubSequence: -1, IngestedAt: now})
	dense := rb.NewRecordBatch()
	defer dense.Release()
	if got.NumRows() != 1 {
		t.Fatalf("EventColumns holds %d rows of %q, want 1", got.NumRows(), raw)
	}
	checkSameColumnValues(t, dense, got)
}

// referenceCases are records on the edges of JSON and of the checks, for
// TestDecodeMatchesReference and as seeds of FuzzDecodeMatchesReference.
func referenceCases() map[string]string {
	nest := func(n int, opener, closer, inner string) string {
		return strings.Repeat(opener, n) + inner + strings.Repeat(closer, n)
	}
	unknown := func(v string) string { return strings.Replace(valid, "{", `{"x":`+v+",", 1) }
	pad := func(n int) string { // valid, padded with spaces to n bytes
		return valid + strings.Repeat(" ", n-len(valid))
	}
	return map[string]string{
		"valid":                   valid,
		"empty object":            `{}`,
		"only unknown fields":     `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`,
		"spaces everywhere":       strings.NewReplacer(`:`, " :\t", `,`, "\r\n, ").Replace(valid),
		"leading and trailing":    " \t\n" + valid + "\r\n ",
		"unicode space around":    "\u00a0\u2028" + valid + "\v\f\u0085",
		"trailing garbage":        valid + " x",
		"two objects":             valid + "{}",
		"trailing comma":          strings.TrimSuffix(valid, "}") + ",}",
		"missing colon":           `{"event_id" "a"}`,
		"missing value":           `{"event_id":}`,
		"unquoted key":            `{event_id:"a"}`,
		"single quotes":           `{'event_id':'a'}`,
		"unterminated string":     `{"event_id":"a`,
		"raw tab in string":       with("event_id", "\"a\tb\""),
		"raw newline in key":      "{\"event\n_id\":\"a\"}",
		"duplicate key last wins": strings.Replace(valid, "{", `{"event_id":"first",`, 1),
		"duplicate key then null": strings.Replace(valid, `"currency":"USD"`, `"currency":"EUR","currency":null`, 1),
		"duplicate id then null":  strings.TrimSuffix(valid, "}") + `,"event_id":null}`,
		"upper-case key":          strings.Replace(valid, `"event_id"`, `"EVENT_ID"`, 1),
		"mixed-case keys twice":   strings.Replace(valid, "{", `{"Event_Id":"x",`, 1),
		"long s key":              strings.Replace(valid, `"status"`, `"ſtatus"`, 1),
		"escaped long s key":      strings.Replace(valid, `"status"`, `"\u017ftatus"`, 1),
		"kelvin key":              strings.Replace(valid, "{", `{"\u212a":1,"K":2,`, 1),
		"escaped key":             strings.Replace(valid, `"event_id"`, `"event_\u0069d"`, 1),
		"escaped upper key":       strings.Replace(valid, `"event_id"`, `"EVENT\u005fID"`, 1),
		"key with escaped quote":  strings.Replace(valid, "{", `{"a\"b":1,`, 1),
		"near-miss key":           strings.Replace(valid, `"event_id"`, `"event_ie"`, 1),
		"id escapes":              with("event_id", `"\"\\\/\b\f\n\r\t"`),
		"id unicode escape":       with("event_id", `"\u00e9v\u0074"`),
		"id surrogate pair":       with("event_id", `"\ud83d\ude00"`),
		"id lone high surrogate":  with("event_id", `"a\ud800b"`),
		"id lone low surrogate":   with("event_id", `"a\udc00b"`),
		"id two high surrogates":  with("event_id", `"\ud800\ud800\udc00"`),
		"id high then escape":     with("event_id", `"\ud800\n"`),
		"id high at end":          with("event_id", `"\ud800"`),
		"id upper-case hex":       with("event_id", `"\u00E9\uD83D\uDE00"`),
		"id bad escape":           with("event_id", `"\x41"`),
		"id short unicode escape": with("event_id", `"\u12"`),
		"id bad hex":              with("event_id", `"\u12G4"`),
		"id escaped control":      with("event_id", `"a\u0000"`),
		"id DEL":                  with("event_id", "\"a\x7f\""),
		"id C1 control":           with("event_id", `"a`+"\u0085"+`"`),
		"id 128 bytes":            with("event_id", `"`+strings.Repeat("é", 64)+`"`),
		"id 129 bytes":            with("event_id", `"a`+strings.Repeat("é", 64)+`"`),
		"id escaped to 128":       with("event_id", `"`+strings.Repeat(`\u00e9`, 64)+`"`),
		"id number":               with("event_id", `12`),
		"id object":               with("event_id", `{"a": [1, 2]}`),
		"id long array":           with("event_id", `[`+strings.Repeat(`"aaaa",`, 20)+`1]`),
		"id empty":                with("event_id", `""`),
		"customer empty":          with("customer_id", `""`),
		"type escaped":            with("event_type", `"payment.succ\u0065eded"`),
		"type upper-case":         with("event_type", `"PAYMENT.SUCCEEDED"`),
		"type number":             with("event_type", `1`),
		"type empty":              with("event_type", `""`),
		"type null":               with("event_type", `null`),
		"status empty":            with("status", `""`),
		"status unknown":          with("status", `"pending"`),
		"status unknown no type":  with("event_type", "-")[:0] + strings.Replace(with("event_type", "-"), `"succeeded"`, `"pending"`, 1),
		"status number":           with("status", `7`),
		"tier escaped":            with("subscription_tier", `"st\u0061ndard"`),
		"tier long unknown":       with("subscription_tier", `"`+strings.Repeat("ü", 30)+`"`),
		"tier empty":              with("subscription_tier", `""`),
		"country escaped":         with("country_code", `"U\u0053"`),
		"country lower":           with("country_code", `"us"`),
		"country non-ASCII":       with("country_code", `"ÜS"`),
		"country empty":           with("country_code", `""`),
		"currency null":           with("currency", `null`),
		"currency empty":          with("currency", `""`),
		"currency absent":         with("currency", "-"),
		"currency rare":           with("currency", `"XAU"`),
		"processor 64 bytes":      with("payment_processor", `"`+strings.Repeat("p", 64)+`"`),
		"processor 65 bytes":      with("payment_processor", `"`+strings.Repeat("p", 65)+`"`),
		"processor control":       with("payment_processor", `"a\u001fb"`),
		"processor empty":         with("payment_processor", `""`),
		"processor unicode":       with("payment_processor", `"Zahlung ✓"`),
		"amount string":           with("amount_usd", `"15.49"`),
		"amount string spaces":    with("amount_usd", `" 15.49"`),
		"amount string escaped":   with("amount_usd", `"1\u0035.49"`),
		"amount string empty":     with("amount_usd", `""`),
		"amount string exponent":  with("amount_usd", `"1e2"`),
		"amount exponent":         with("amount_usd", `1E+2`),
		"amount negative zero":    with("amount_usd", `-0`),
		"amount zero cents":       with("amount_usd", `0.00`),
		"amount max":              with("amount_usd", `1000000.00`),
		"amount max plus":         with("amount_usd", `1000000.001`),
		"amount many digits":      with("amount_usd", `15.4900`),
		"amount leading zero":     with("amount_usd", `015`),
		"amount bare minus":       with("amount_usd", `-`),
		"amount bare dot":         with("amount_usd", `1.`),
		"amount dot first":        with("amount_usd", `.5`),
		"amount plus":             with("amount_usd", `+1`),
		"amount true":             with("amount_usd", `true`),
		"amount tru":              with("amount_usd", `tru`),
		"amount nul":              with("amount_usd", `nul`),
		"amount falsey":           with("amount_usd", `falsey`),
		"amount object":           with("amount_usd", `{"v": 15.49}`),
		"amount array":            with("amount_usd", `[15.49]`),
		"amount null":             with("amount_usd", `null`),
		"amount huge":             with("amount_usd", strings.Repeat("9", 400)),
		"ts millis":               with("event_ts", `1764071940123`),
		"ts millis negative":      with("event_ts", `-1`),
		"ts millis exponent":      with("event_ts", `1.76407194e12`),
		"ts millis overflow":      with("event_ts", `99999999999999999999`),
		"ts millis 19 digits":     with("event_ts", `9223372036854775807`),
		"ts millis min":           with("event_ts", `-9223372036854775808`),
		"ts millis string":        with("event_ts", `"1764071940123"`),
		"ts offset":               with("event_ts", `"2026-11-25T12:59:00+01:00"`),
		"ts negative offset":      with("event_ts", `"2026-11-25T00:01:00-11:59"`),
		"ts offset 24":            with("event_ts", `"2026-11-25T12:59:00+24:00"`),
		"ts offset no colon":      with("event_ts", `"2026-11-25T12:59:00+0100"`),
		"ts lower t":              with("event_ts", `"2026-11-25t11:59:00Z"`),
		"ts lower z":              with("event_ts", `"2026-11-25T11:59:00z"`),
		"ts space":                with("event_ts", `"2026-11-25 11:59:00Z"`),
		"ts comma fraction":       with("event_ts", `"2026-11-25T11:59:00,5Z"`),
		"ts nanoseconds":          with("event_ts", `"2026-11-25T11:59:00.123456789Z"`),
		"ts twelve digits":        with("event_ts", `"2026-11-25T11:59:00.123456789999Z"`),
		"ts dot no digits":        with("event_ts", `"2026-11-25T11:59:00.Z"`),
		"ts leap day":             with("event_ts", `"2024-02-29T00:00:00Z"`),
		"ts not a leap day":       with("event_ts", `"2023-02-29T00:00:00Z"`),
		"ts century leap":         with("event_ts", `"2000-02-29T00:00:00Z"`),
		"ts april 31":             with("event_ts", `"2025-04-31T00:00:00Z"`),
		"ts second 60":            with("event_ts", `"2026-11-25T11:59:60Z"`),
		"ts hour 24":              with("event_ts", `"2026-11-25T24:00:00Z"`),
		"ts year 0":               with("event_ts", `"0000-01-01T00:00:00Z"`),
		"ts before 2000":          with("event_ts", `"1999-12-31T23:59:59.999999Z"`),
		"ts a day ahead":          with("event_ts", `"2026-11-26T12:00:00Z"`),
		"ts past a day ahead":     with("event_ts", `"2026-11-26T12:00:00.000001Z"`),
		"ts empty":                with("event_ts", `""`),
		"ts escaped":              with("event_ts", `"2026-11-25T11:59:00\u005a"`),
		"ts long garbage":         with("event_ts", `"`+strings.Repeat("x", 50)+`"`),
		"ts object":               with("event_ts", `{}`),
		"every field wrong":       `{"event_id":"","event_type":"payment.bogus","amount_usd":1.234,"subscription_tier":"gold","status":"ok","country_code":"u","payment_processor":"","event_ts":"never","customer_id":3,"currency":"usd"}`,
		"nested 9999 arrays":      unknown(nest(9998, "[", "]", "")),
		"nested 10000 arrays":     unknown(nest(9999, "[", "]", "")),
		"nested 10001 arrays":     unknown(nest(10000, "[", "]", "")),
		"nested 10000 objects":    unknown(nest(9999, `{"a":`, "}", "1")),
		"nested 10001 objects":    unknown(nest(10000, `{"a":`, "}", "1")),
		"nested mixed":            unknown(`[{"a":[{"b":{}},[],[[]],{"c":[1,"x",null]}]}]`),
		"nested unbalanced":       unknown(`[{"a":[1}]`),
		"nested value unbalanced": with("event_id", `[[[]]`),
		"array trailing comma":    unknown(`[1,]`),
		"object trailing comma":   unknown(`{"a":1,}`),
		"object number key":       unknown(`{1:2}`),
		"invalid UTF-8":           strings.Replace(valid, "evt_1", "evt_\xff", 1),
		"overlong UTF-8":          strings.Replace(valid, "evt_1", "evt_\xc0\xaf", 1),
		"UTF-8 surrogate":         strings.Replace(valid, "evt_1", "evt_\xed\xa0\x80", 1),
		"invalid UTF-8 unknown":   strings.Replace(valid, "{", "{\"n\":\"\xfe\",", 1),
		// The scanner skips the UTF-8 check only for objects it read as
		// all ASCII: invalid bytes everywhere it does not look into.
		"invalid UTF-8 nested unknown":   unknown("{\"y\":[\"\xff\"]}"),
		"invalid UTF-8 nested known":     strings.Replace(valid, `"customer_id":"cus_1"`, "\"customer_id\":{\"a\":\"\xff\"}", 1),
		"invalid UTF-8 in an array":      strings.Replace(valid, `"customer_id":"cus_1"`, "\"customer_id\":[\"\xc3\"]", 1),
		"invalid UTF-8 nested key":       unknown("{\"\xff\":1}"),
		"invalid UTF-8 key":              strings.Replace(valid, "{", "{\"\xff\":1,", 1),
		"invalid UTF-8 after":            valid + " \xff",
		"invalid UTF-8 before":           "\xff " + valid,
		"invalid UTF-8 not an object":    "[\"\xff\"]",
		"invalid UTF-8 in a number":      strings.Replace(valid, `"amount_usd":15.49`, "\"amount_usd\":15\xff", 1),
		"valid UTF-8 nested unknown":     unknown(`{"y":["\u00e9 é ✓"]}`),
		"valid UTF-8 in a value and key": strings.Replace(valid, "{", "{\"é\":\"✓\",", 1),
		"not an object":                  `[1,2]`,
		"string":                         `"x"`,
		"blank":                          " \n\t",
		"empty":                          "",
		"at the size limit":              pad(MaxRecordBytes),
		"past the size limit":            pad(MaxRecordBytes + 1),
		"unknown string with \\u":        unknown(`"\ud800\u0041"`),
		"unknown number forms":           unknown(`[-0, 0.5e-3, 1E9, -12.5E+2]`),
		"unknown bad number":             unknown(`-a`),
		"unknown bad exponent":           unknown(`1e`),
		"unknown bad literal":            unknown(`nulL`),
		"value cut after comma":          `{"a":1,`,
		"value cut after key":            `{"a"`,
		"value cut in nested":            `{"a":[1,`,
		"object cut":                     `{`,
		"key after comma missing":        `{"a":1,}`,
		"close bracket for object":       `{"a":1]`,
		"empty key":                      `{"":1}`,
		"whitespace in nested":           unknown("[ 1 ,\t{ \"a\" : \r\n 2 } ]"),
		"space inside escape-free":       with("event_id", `"evt 1"`),
		"status matches other type":      strings.NewReplacer(`"payment.succeeded"`, `"payment.refunded"`, `15.49`, `-15.49`).Replace(valid),

		// Keys that start with the name of the field expected next.
		"key longer than the field":   strings.Replace(valid, `"event_id"`, `"event_idx"`, 1),
		"key with the field's escape": strings.Replace(valid, `"status"`, `"statu\u0073"`, 1),
		"key shorter than the field":  strings.Replace(valid, `"event_type"`, `"event_typ"`, 1),
		"key at the end of the text":  `{"event_id":"a","event_type`,
		"keys out of order":           `{"event_ts":"2026-11-25T11:59:00Z","status":"succeeded","event_id":"e","amount_usd":1}`,
	}
}

// TestDecodeMatchesReference holds Decode to decodeReference on the edge
// cases; FuzzDecodeMatchesReference does the same on arbitrary bytes.
func TestDecodeMatchesReference(t *testing.T) {
	for name, raw := range referenceCases() {
		t.Run(name, func(t *testing.T) { checkMatchesReference(t, []byte(raw)) })
	}
	g := NewGenerator(3, now)
	for range 2000 {
		e := g.Next(now)
		checkMatchesReference(t, e.AppendJSON(nil))
		raw, _ := g.NextInvalid(now)
		checkMatchesReference(t, raw)
	}
}
