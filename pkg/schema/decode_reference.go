package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// wire is the JSON shape; every field is kept raw so that one bad field
// does not hide the others.
type wire struct {
	EventID          json.RawMessage `json:"event_id"`
	EventType        json.RawMessage `json:"event_type"`
	CustomerID       json.RawMessage `json:"customer_id"`
	AmountUSD        json.RawMessage `json:"amount_usd"`
	Currency         json.RawMessage `json:"currency"`
	SubscriptionTier json.RawMessage `json:"subscription_tier"`
	Status           json.RawMessage `json:"status"`
	CountryCode      json.RawMessage `json:"country_code"`
	PaymentProcessor json.RawMessage `json:"payment_processor"`
	EventTS          json.RawMessage `json:"event_ts"`
}

type refChecker struct {
	problems []Problem
}

func (c *refChecker) add(field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// decodeReference is Decode as it was before the hand-written scanner:
// encoding/json into raw fields, then the checks. It is the specification
// Decode is held to: FuzzDecodeMatchesReference compares the two on
// arbitrary bytes, and Decode hands it every record its scanner finds is
// not valid JSON, so the syntax error messages stay encoding/json's own.
// Do not make it faster; change it only together with Decode.
func decodeReference(raw []byte, now time.Time) (Event, error) {
	var c refChecker
	if len(raw) > MaxRecordBytes {
		c.add("record", "is %d bytes; the limit is %d bytes (1 MiB)", len(raw), MaxRecordBytes)
		return Event{}, &InvalidError{c.problems}
	}
	if !utf8.Valid(raw) {
		c.add("record", "is not valid UTF-8; send JSON text encoded as UTF-8")
		return Event{}, &InvalidError{c.problems}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		c.add("record", "is not a JSON object; each record must be one object like {\"event_id\": ...}")
		return Event{}, &InvalidError{c.problems}
	}
	var w wire
	if err := json.Unmarshal(trimmed, &w); err != nil {
		c.add("record", "is not valid JSON: %v", jsonReason(err))
		return Event{}, &InvalidError{c.problems}
	}
	var e Event
	e.EventID = c.id(ColEventID, w.EventID)
	e.CustomerID = c.id(ColCustomerID, w.CustomerID)
	e.EventType = c.oneOf(ColEventType, w.EventType, statusOf)
	e.Status = c.str(ColStatus, w.Status, true)
	if e.Status != "" && e.EventType != "" && statusOf[e.EventType] != e.Status {
		c.add(ColStatus, "is %q but event_type %s requires status %q", e.Status, e.EventType, statusOf[e.EventType])
	} else if e.Status != "" && e.EventType == "" && !isStatus(e.Status) {
		c.add(ColStatus, "is %q; use one of succeeded, failed, refunded", e.Status)
	}
	e.SubscriptionTier = c.oneOf(ColSubscriptionTier, w.SubscriptionTier, Tiers)
	e.CountryCode = c.code(ColCountryCode, w.CountryCode, 2, "an ISO 3166-1 alpha-2 code such as US")
	e.Currency = DefaultCurrency
	if present(w.Currency) {
		e.Currency = c.code(ColCurrency, w.Currency, 3, "an ISO 4217 code such as USD")
	}
	e.PaymentProcessor = c.text(ColPaymentProcessor, w.PaymentProcessor, MaxTextBytes)
	e.AmountUSD = c.amount(w.AmountUSD, e.EventType)
	e.EventTS = c.timestamp(w.EventTS, now)
	if len(c.problems) > 0 {
		return Event{}, &InvalidError{c.problems}
	}
	return e, nil
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	return err.Error()
}

// str returns the string value of raw, or "" after recording a problem.
func (c *refChecker) str(field string, raw json.RawMessage, required bool) string {
	if !present(raw) {
		if required {
			c.add(field, "is missing")
		}
		return ""
	}
	if raw[0] != '"' {
		c.add(field, "must be a JSON string, got %s", abbreviate(raw))
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		c.add(field, "is not a valid JSON string: %v", err)
		return ""
	}
	return s
}

func (c *refChecker) id(field string, raw json.RawMessage) string {
	s := c.str(field, raw, true)
	if s == "" {
		if present(raw) && raw[0] == '"' {
			c.add(field, "is empty")
		}
		return ""
	}
	if len(s) > MaxIDBytes {
		c.add(field, "is %d bytes; the limit is %d", len(s), MaxIDBytes)
		return ""
	}
	if refHasControl(s) {
		c.add(field, "contains control characters")
		return ""
	}
	return s
}

func (c *refChecker) text(field string, raw json.RawMessage, limit int) string {
	s := c.str(field, raw, true)
	switch {
	case s == "":
		if present(raw) && raw[0] == '"' {
			c.add(field, "is empty")
		}
	case len(s) > limit:
		c.add(field, "is %d bytes; the limit is %d", len(s), limit)
		return ""
	case refHasControl(s):
		c.add(field, "contains control characters")
		return ""
	}
	return s
}

func (c *refChecker) oneOf(field string, raw json.RawMessage, allowed any) string {
	s := c.str(field, raw, true)
	if s == "" {
		if present(raw) && raw[0] == '"' {
			c.add(field, "is empty")
		}
		return ""
	}
	var names []string
	switch m := allowed.(type) {
	case map[string]string:
		if _, ok := m[s]; ok {
			return s
		}
		names = sortedKeys(m)
	case map[string]Amount:
		if _, ok := m[s]; ok {
			return s
		}
		names = sortedKeys(m)
	}
	c.add(field, "%q is not known; use one of %s", abbreviateString(s), strings.Join(names, ", "))
	return ""
}

func (c *refChecker) code(field string, raw json.RawMessage, n int, what string) string {
	s := c.str(field, raw, true)
	if s == "" {
		if present(raw) && raw[0] == '"' {
			c.add(field, "is empty; use %s", what)
		}
		return ""
	}
	if len(s) != n || strings.IndexFunc(s, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		c.add(field, "%q is malformed; use %s (%d upper-case letters)", abbreviateString(s), what, n)
		return ""
	}
	return s
}

func (c *refChecker) amount(raw json.RawMessage, eventType string) Amount {
	if !present(raw) {
		c.add(ColAmountUSD, "is missing")
		return 0
	}
	text := string(raw)
	if raw[0] == '"' {
		text = c.str(ColAmountUSD, raw, true)
	}
	a, err := parseAmountReference(text)
	if err != nil {
		c.add(ColAmountUSD, "%s %v", abbreviateString(text), err)
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

func (c *refChecker) timestamp(raw json.RawMessage, now time.Time) time.Time {
	if !present(raw) {
		c.add(ColEventTS, "is missing")
		return time.Time{}
	}
	var ts time.Time
	if raw[0] == '"' {
		s := c.str(ColEventTS, raw, true)
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			c.add(ColEventTS, "%q is not an RFC 3339 time with offset (2024-05-01T12:00:00Z) or epoch milliseconds", abbreviateString(s))
			return time.Time{}
		}
		ts = t
	} else {
		ms, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			c.add(ColEventTS, "%s is not an RFC 3339 time string or whole epoch milliseconds", abbreviate(raw))
			return time.Time{}
		}
		ts = time.UnixMilli(ms)
	}
	ts = ts.UTC().Truncate(time.Microsecond)
	switch {
	case ts.Before(MinEventTime):
		c.add(ColEventTS, "%s is before 2000-01-01; check the unit (epoch milliseconds, not seconds)", ts.Format(time.RFC3339))
	case ts.After(now.Add(MaxFutureSkew)):
		c.add(ColEventTS, "%s is more than a day in the future; check the producer's clock and unit", ts.Format(time.RFC3339))
	default:
		return ts
	}
	return time.Time{}
}

func refHasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func abbreviate(raw json.RawMessage) string { return abbreviateString(string(raw)) }

// parseAmountReference is ParseAmount as it was before Decode got its own
// scanner, kept for decodeReference.
func parseAmountReference(s string) (Amount, error) {
	if s == "" {
		return 0, errAmountSyntax
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") {
		return 0, errAmountSyntax
	}
	var v int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return 0, errAmountSyntax
		}
		if v > int64(MaxAmount) {
			return 0, errAmountRange
		}
		v = v*10 + int64(c-'0')
	}
	for i := 0; i < len(frac); i++ {
		if c := frac[i]; c < '0' || c > '9' {
			return 0, errAmountSyntax
		}
	}
	if len(frac) > 2 {
		return 0, errAmountDecimals
	}
	cents := v * 100
	if len(frac) >= 1 {
		cents += int64(frac[0]-'0') * 10
	}
	if len(frac) == 2 {
		cents += int64(frac[1] - '0')
	}
	if cents > int64(MaxAmount) {
		return 0, errAmountRange
	}
	if neg {
		cents = -cents
	}
	return Amount(cents), nil
}
