package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// ErrInvalid is matched (errors.Is) by every *InvalidError.
var ErrInvalid = errors.New("invalid payment event")

// Problem is one thing wrong with a record.
type Problem struct {
	Field  string `json:"field"` // JSON field name, or "record" for the whole record
	Reason string `json:"reason"`
}

func (p Problem) String() string { return p.Field + ": " + p.Reason }

// InvalidError lists every problem found in one record.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid payment event: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Reasons returns the problems as "field: reason" strings.
func (e *InvalidError) Reasons() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.String()
	}
	return out
}

type checker struct {
	problems []Problem
	// plain: no string value of the record holds an escape, so str
	// need not look for one.
	plain bool
	arena *IDArena // nil: joinIDs allocates
}

func (c *checker) add(field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Decode parses and validates one raw record. now is the reader's clock,
// used to reject event_ts values more than a day in the future.
//
// It reads the record with the scanner in scan.go and allocates once for a
// valid event (event_id and customer_id share one string; the other fields
// are constants or interned), or not at all with DecodeWith. Its results are decodeReference's on every
// input, rejection reasons included; records that are not valid JSON go to
// decodeReference itself, for encoding/json's error message.
func Decode(raw []byte, now time.Time) (Event, error) {
	var c checker
	return c.result(raw, now)
}

// IDArena gives the event_id and customer_id strings of many events one
// allocation: DecodeWith copies them into a shared block instead of
// allocating for each event. A string keeps its whole block alive, so an
// arena suits events that are dropped together, as a batch's are. One
// goroutine uses an arena at a time; the zero value is ready.
type IDArena struct {
	block []byte // the current block's unused tail
}

// arenaBlock is the size of an IDArena's blocks: about 600 events.
const arenaBlock = 32 << 10

// join is joinIDs with the arena's memory.
func (a *IDArena) join(id, customer []byte) (string, string) {
	n := len(id) + len(customer) // at most 2 × MaxIDBytes: ids are checked first
	if len(a.block) < n {
		a.block = make([]byte, arenaBlock)
	}
	b := a.block[:n:n]
	copy(b, id)
	copy(b[len(id):], customer)
	a.block = a.block[n:]
	s := unsafe.String(&b[0], n) // b is never written again
	return s[:len(id)], s[len(id):]
}

// DecodeWith is Decode with event_id and customer_id in arena's memory
// (a nil arena allocates as Decode does).
func DecodeWith(raw []byte, now time.Time, arena *IDArena) (Event, error) {
	c := checker{arena: arena}
	return c.result(raw, now)
}

func (c *checker) result(raw []byte, now time.Time) (Event, error) {
	e, ok := c.decode(raw, now)
	if !ok {
		return decodeReference(raw, now)
	}
	if len(c.problems) > 0 {
		return Event{}, &InvalidError{c.problems}
	}
	return e, nil
}

// decode is Decode's fast path. It reports false, having recorded nothing,
// when raw is not valid JSON.
func (c *checker) decode(raw []byte, now time.Time) (Event, bool) {
	e, id, customer, ok := c.fields(raw, now)
	if !ok || len(c.problems) > 0 {
		return Event{}, ok
	}
	if c.arena != nil && len(id)+len(customer) > 0 {
		e.EventID, e.CustomerID = c.arena.join(id, customer)
	} else {
		e.EventID, e.CustomerID = joinIDs(id, customer)
	}
	return e, true
}

// fields is decode without event_id and customer_id in the event: they
// come back as bytes, which alias raw unless they held an escape. The
// event is valid when ok is true and c recorded no problem.
func (c *checker) fields(raw []byte, now time.Time) (e Event, id, customer []byte, ok bool) {
	if len(raw) > MaxRecordBytes {
		c.add("record", "is %d bytes; the limit is %d bytes (1 MiB)", len(raw), MaxRecordBytes)
		return Event{}, nil, nil, true
	}
	// UTF-8 comes first: a record that is not UTF-8 is refused as such
	// whatever else is wrong with it. The scanner tells when the object
	// it read was all ASCII, which needs no check.
	trimmed := bytes.TrimSpace(raw) // what it trims is valid UTF-8 (spaces)
	var (
		f             rawFields
		escaped, text bool
	)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		escaped, text, ok = scanObject(trimmed, &f)
	}
	if (!ok || !text) && !utf8.Valid(raw) {
		c.add("record", "is not valid UTF-8; send JSON text encoded as UTF-8")
		return Event{}, nil, nil, true
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		c.add("record", "is not a JSON object; each record must be one object like {\"event_id\": ...}")
		return Event{}, nil, nil, true
	}
	if !ok {
		return Event{}, nil, nil, false
	}
	c.plain = !escaped
	id = c.id(ColEventID, f[fEventID])
	customer = c.id(ColCustomerID, f[fCustomerID])
	e.EventType = c.eventType(f[fEventType])
	e.Status = statusText(c.str(ColStatus, f[fStatus]))
	if e.Status != "" && e.EventType != "" && requiredStatus(e.EventType) != e.Status {
		c.add(ColStatus, "is %q but event_type %s requires status %q", e.Status, e.EventType, statusOf[e.EventType])
	} else if e.Status != "" && e.EventType == "" && !isStatus(e.Status) {
		c.add(ColStatus, "is %q; use one of succeeded, failed, refunded", e.Status)
	}
	e.SubscriptionTier = c.tier(f[fSubscriptionTier])
	e.CountryCode = c.code(ColCountryCode, f[fCountryCode], 2, "an ISO 3166-1 alpha-2 code such as US")
	e.Currency = DefaultCurrency
	if present(f[fCurrency]) {
		e.Currency = c.code(ColCurrency, f[fCurrency], 3, "an ISO 4217 code such as USD")
	}
	e.PaymentProcessor = c.text(ColPaymentProcessor, f[fPaymentProcessor], MaxTextBytes)
	e.AmountUSD = c.amount(f[fAmountUSD], e.EventType)
	e.EventTS = c.timestamp(f[fEventTS], now)
	if len(c.problems) > 0 {
		return Event{}, nil, nil, true
	}
	return e, id, customer, true
}

// requiredStatus is statusOf[eventType] for the event types, without a
// map lookup.
func requiredStatus(eventType string) string {
	switch eventType {
	case TypeSucceeded:
		return StatusSucceeded
	case TypeFailed:
		return StatusFailed
	case TypeRefunded:
		return StatusRefunded
	}
	return statusOf[eventType]
}

func isStatus(s string) bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusRefunded
}

// present reports whether a field holds a value other than null.
func present(raw []byte) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// str returns the text of a JSON string value, or nil after recording a
// problem. The text aliases raw unless it held an escape.
func (c *checker) str(field string, raw []byte) []byte {
	if !present(raw) {
		c.add(field, "is missing")
		return nil
	}
	if raw[0] != '"' {
		c.add(field, "must be a JSON string, got %s", abbreviateString(string(raw)))
		return nil
	}
	s := raw[1 : len(raw)-1]
	if c.plain || bytes.IndexByte(s, '\\') < 0 {
		return s
	}
	return appendUnquoted(nil, s)
}

// isEmptyString reports whether raw is a JSON string, which str found empty.
func isEmptyString(raw []byte) bool { return present(raw) && raw[0] == '"' }

func (c *checker) id(field string, raw []byte) []byte {
	s := c.str(field, raw)
	if len(s) == 0 {
		if isEmptyString(raw) {
			c.add(field, "is empty")
		}
		return nil
	}
	if len(s) > MaxIDBytes {
		c.add(field, "is %d bytes; the limit is %d", len(s), MaxIDBytes)
		return nil
	}
	if hasControl(s) {
		c.add(field, "contains control characters")
		return nil
	}
	return s
}

// joinIDs copies the two ids into one string, one allocation for both.
func joinIDs(id, customer []byte) (string, string) {
	var b strings.Builder
	b.Grow(len(id) + len(customer))
	b.Write(id)
	b.Write(customer)
	s := b.String()
	return s[:len(id)], s[len(id):]
}

func (c *checker) text(field string, raw []byte, limit int) string {
	s := c.str(field, raw)
	switch {
	case len(s) == 0:
		if isEmptyString(raw) {
			c.add(field, "is empty")
		}
	case len(s) > limit:
		c.add(field, "is %d bytes; the limit is %d", len(s), limit)
		return ""
	case hasControl(s):
		c.add(field, "contains control characters")
		return ""
	}
	return interned.get(s)
}

// statusText returns s as a string, without allocating for the statuses.
func statusText(s []byte) string {
	switch string(s) {
	case StatusSucceeded:
		return StatusSucceeded
	case StatusFailed:
		return StatusFailed
	case StatusRefunded:
		return StatusRefunded
	}
	return string(s)
}

func (c *checker) eventType(raw []byte) string {
	s := c.str(ColEventType, raw)
	switch string(s) {
	case TypeSucceeded:
		return TypeSucceeded
	case TypeFailed:
		return TypeFailed
	case TypeRefunded:
		return TypeRefunded
	}
	c.unknown(ColEventType, raw, s, sortedKeys(statusOf))
	return ""
}

func (c *checker) tier(raw []byte) string {
	s := c.str(ColSubscriptionTier, raw)
	switch string(s) { // the tiers of Tiers, without a map lookup
	case "basic":
		return "basic"
	case "standard_with_ads":
		return "standard_with_ads"
	case "standard":
		return "standard"
	case "premium":
		return "premium"
	}
	if _, ok := Tiers[string(s)]; ok && len(s) > 0 {
		return string(s)
	}
	c.unknown(ColSubscriptionTier, raw, s, sortedKeys(Tiers))
	return ""
}

// unknown records why s, the text of raw (nil if str found no string),
// is not one of names.
func (c *checker) unknown(field string, raw, s []byte, names []string) {
	if len(s) == 0 {
		if isEmptyString(raw) {
			c.add(field, "is empty")
		}
		return
	}
	c.add(field, "%q is not known; use one of %s", abbreviateString(string(s)), strings.Join(names, ", "))
}

func (c *checker) code(field string, raw []byte, n int, what string) string {
	s := c.str(field, raw)
	if len(s) == 0 {
		if isEmptyString(raw) {
			c.add(field, "is empty; use %s", what)
		}
		return ""
	}
	if len(s) != n || !upperASCII(s) {
		c.add(field, "%q is malformed; use %s (%d upper-case letters)", abbreviateString(string(s)), what, n)
		return ""
	}
	return interned.get(s)
}

func upperASCII(s []byte) bool {
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (c *checker) amount(raw []byte, eventType string) Amount {
	if !present(raw) {
		c.add(ColAmountUSD, "is missing")
		return 0
	}
	text := raw
	if raw[0] == '"' {
		text = c.str(ColAmountUSD, raw)
	}
	a, err := parseAmount(text)
	if err != nil {
		c.add(ColAmountUSD, "%s %v", abbreviateString(string(text)), err)
		return 0
	}
	switch eventType {
	case TypeSucceeded, TypeFailed:
		if a <= 0 {
			c.add(ColAmountUSD, "is %s but a %s amount must be positive", a, eventType)
		}
	case TypeRefunded:
		if a >= 0 {
			c.add(ColAmountUSD, "is %s but a refund amount must be negative (money returned)", a)
		}
	}
	return a
}

func (c *checker) timestamp(raw []byte, now time.Time) time.Time {
	if !present(raw) {
		c.add(ColEventTS, "is missing")
		return time.Time{}
	}
	// The instant as Unix seconds and nanoseconds: comparing and
	// truncating those costs less than time.Time's methods.
	var sec, nsec int64
	if raw[0] == '"' {
		s := c.str(ColEventTS, raw)
		if len(s) == 0 {
			return time.Time{}
		}
		var ok bool
		if sec, nsec, ok = parseRFC3339Parts(s); !ok {
			t, err := time.Parse(time.RFC3339Nano, string(s))
			if err != nil {
				c.add(ColEventTS, "%q is not an RFC 3339 time with offset (2024-05-01T12:00:00Z) or epoch milliseconds", abbreviateString(string(s)))
				return time.Time{}
			}
			sec, nsec = t.Unix(), int64(t.Nanosecond())
		}
	} else {
		ms, ok := parseMillis(raw)
		if !ok {
			c.add(ColEventTS, "%s is not an RFC 3339 time string or whole epoch milliseconds", abbreviateString(string(raw)))
			return time.Time{}
		}
		t := time.UnixMilli(ms)
		sec, nsec = t.Unix(), int64(t.Nanosecond())
	}
	// Truncated to the microsecond (what the table keeps): a microsecond
	// divides a second, so only the nanoseconds below it go.
	nsec -= nsec % 1000
	limit := now.Add(MaxFutureSkew)
	switch ls, lns := limit.Unix(), int64(limit.Nanosecond()); {
	case sec < MinEventTime.Unix(): // a whole second
		c.add(ColEventTS, "%s is before 2000-01-01; check the unit (epoch milliseconds, not seconds)", time.Unix(sec, nsec).UTC().Format(time.RFC3339))
	case sec > ls || sec == ls && nsec > lns:
		c.add(ColEventTS, "%s is more than a day in the future; check the producer's clock and unit", time.Unix(sec, nsec).UTC().Format(time.RFC3339))
	default:
		return time.Unix(sec, nsec).UTC()
	}
	return time.Time{}
}

// parseMillis is strconv.ParseInt(string(raw), 10, 64) for a JSON value
// that is not a string: digits with an optional minus sign, in range.
func parseMillis(raw []byte) (int64, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		// 18 digits cannot overflow; leave longer ones to strconv.
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		return ms, err == nil
	}
	var v int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if len(digits) < len(raw) {
		v = -v
	}
	return v, true
}

// parseRFC3339Parts is the fast path time.Parse(time.RFC3339Nano, s)
// takes before its general parser, for bytes, returning the instant as
// Unix seconds and nanoseconds (0 ≤ nsec < 10⁹) without making a
// time.Time: when it reports true, time.Parse returns the same instant;
// when false, call time.Parse.
func parseRFC3339Parts(s []byte) (sec, nsec int64, ok bool) {
	if len(s) < len("2006-01-02T15:04:05") {
		return 0, 0, false
	}
	// The fourteen digits of "2006-01-02T15:04:05", each as its value:
	// a byte that is not a digit comes out above 9 (the subtraction
	// wraps below '0').
	_ = s[18]
	d := [14]byte{s[0] - '0', s[1] - '0', s[2] - '0', s[3] - '0', s[5] - '0', s[6] - '0', s[8] - '0', s[9] - '0',
		s[11] - '0', s[12] - '0', s[14] - '0', s[15] - '0', s[17] - '0', s[18] - '0'}
	for _, v := range d {
		if v > 9 {
			return 0, 0, false
		}
	}
	year := int(d[0])*1000 + int(d[1])*100 + int(d[2])*10 + int(d[3])
	month, day := int(d[4])*10+int(d[5]), int(d[6])*10+int(d[7])
	hour, minute, second := int(d[8])*10+int(d[9]), int(d[10])*10+int(d[11]), int(d[12])*10+int(d[13])
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59 || day > daysIn(time.Month(month), year) ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, 0, false
	}
	s = s[19:]
	frac := 0 // nanoseconds
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		n := 2
		for n < len(s) && '0' <= s[n] && s[n] <= '9' {
			n++
		}
		digits := min(n, 10) // time keeps nine digits and drops the rest
		for _, c := range s[1:digits] {
			frac = frac*10 + int(c-'0')
		}
		for range 10 - digits {
			frac *= 10
		}
		s = s[n:]
	}
	unix := unixDays(year, month, day)*86400 + int64(hour*3600+minute*60+second)
	if len(s) == 1 && s[0] == 'Z' {
		return unix, int64(frac), true
	}
	if len(s) != len("-07:00") {
		return 0, 0, false
	}
	hr, ok1 := digitsIn(s[1:3], 0, 23)
	mm, ok2 := digitsIn(s[4:6], 0, 59)
	if !ok1 || !ok2 || (s[0] != '-' && s[0] != '+') || s[3] != ':' {
		return 0, 0, false
	}
	offset := int64(hr*3600 + mm*60)
	if s[0] == '-' {
		offset = -offset
	}
	return unix - offset, int64(frac), true
}

// unixDays returns the number of days from 1970-01-01 to the date
// year-month-day of the proleptic Gregorian calendar (the days_from_civil
// algorithm of H. Hinnant): time.Date's answer for a valid date without
// its normalisation, which took a fifth of the decoder's time on timestamps.
func unixDays(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400                     // [0, 399]
	mp := (int64(month) + 9) % 12          // March = 0
	doy := (153*mp+2)/5 + int64(day) - 1   // [0, 365]
	doe := yoe*365 + yoe/4 - yoe/100 + doy // [0, 146096]
	return era*146097 + doe - 719468
}

// digitsIn parses s, all decimal digits, and checks that it lies in
// [lo, hi].
func digitsIn(s []byte, lo, hi int) (int, bool) {
	x := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + int(c-'0')
	}
	return x, lo <= x && x <= hi
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// hasControl is strings.IndexFunc(string(s), unicode.IsControl) >= 0.
// It passes over eight bytes at a time while they are printable ASCII
// (no byte below 0x20, none 0x7f, none at or above 0x80).
func hasControl(s []byte) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		// High bit of a byte set by: the byte itself (≥ 0x80), the byte
		// below 0x20 (borrow), or the byte plus one reaching 0x80 (0x7f).
		// Borrows and carries only ever set bits after such a byte, so
		// no word of printable ASCII is flagged.
		if (w|(w-ones*0x20)|(w+ones))&highs != 0 {
			break
		}
	}
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if unicode.IsControl(r) {
			return true
		}
		i += n
	}
	return false
}

func abbreviateString(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// internTable keeps one copy of short values that repeat from event to
// event (country, currency, payment processor), so that decoding them
// allocates nothing once they have been seen. A slot holds a pointer to an
// immutable string and is replaced whole, so the table is safe for
// concurrent use; two values that share a slot only cost allocations.
type internTable [1024]atomic.Pointer[string]

var interned internTable

func (t *internTable) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &t[h%uint32(len(t))]
	if p := slot.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	slot.Store(&s)
	return s
}
