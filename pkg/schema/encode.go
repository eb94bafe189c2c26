package schema

import "unicode/utf8"

// AppendJSON appends the event as one JSON object (no newline) in the wire
// format Decode reads: amount_usd as a JSON number with two decimals,
// event_ts as RFC 3339 UTC with up to microseconds.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = appendString(b, e.EventID)
	b = append(b, `,"event_type":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"customer_id":`...)
	b = appendString(b, e.CustomerID)
	b = append(b, `,"amount_usd":`...)
	b = e.AmountUSD.AppendText(b)
	b = append(b, `,"currency":`...)
	b = appendString(b, e.Currency)
	b = append(b, `,"subscription_tier":`...)
	b = appendString(b, e.SubscriptionTier)
	b = append(b, `,"status":`...)
	b = appendString(b, e.Status)
	b = append(b, `,"country_code":`...)
	b = appendString(b, e.CountryCode)
	b = append(b, `,"payment_processor":`...)
	b = appendString(b, e.PaymentProcessor)
	b = append(b, `,"event_ts":"`...)
	b = e.EventTS.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999Z07:00")
	b = append(b, `"}`...)
	return b
}

// MarshalJSON implements json.Marshaler with AppendJSON's format.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. s is valid UTF-8 for events that
// passed Decode; invalid bytes are replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
