package schema

import (
	"errors"
	"strconv"
	"time"
)

// Event types and statuses.
const (
	TypeSucceeded = "payment.succeeded"
	TypeFailed    = "payment.failed"
	TypeRefunded  = "payment.refunded"

	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusRefunded  = "refunded"
)

// statusOf maps each event type to the only status consistent with it.
var statusOf = map[string]string{
	TypeSucceeded: StatusSucceeded,
	TypeFailed:    StatusFailed,
	TypeRefunded:  StatusRefunded,
}

// Tiers lists the subscription tiers and their monthly list price in USD.
var Tiers = map[string]Amount{
	"basic":             999,
	"standard_with_ads": 699,
	"standard":          1549,
	"premium":           1999,
}

// Limits enforced by validation.
const (
	MaxRecordBytes = 1 << 20 // a Kinesis record is at most 1 MiB
	MaxIDBytes     = 128     // event_id, customer_id
	MaxTextBytes   = 64      // payment_processor
	// MaxAmount is the largest absolute amount accepted, in cents (1,000,000.00 USD).
	MaxAmount Amount = 100_000_000
	// DefaultCurrency is used when an event carries no currency.
	DefaultCurrency = "USD"
)

// MinEventTime is the earliest event_ts accepted.
var MinEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxFutureSkew is how far past the consumer's clock an event_ts may lie.
const MaxFutureSkew = 24 * time.Hour

// Event is one payment event. Values returned by Decode are valid.
type Event struct {
	EventID          string
	EventType        string
	CustomerID       string
	AmountUSD        Amount
	Currency         string
	SubscriptionTier string
	Status           string
	CountryCode      string
	PaymentProcessor string
	EventTS          time.Time // UTC
}

// Amount is money in hundredths (cents): 1549 is 15.49. Never a float.
type Amount int64

// String formats the amount with two decimals: "15.49", "-0.05".
func (a Amount) String() string { return string(a.AppendText(nil)) }

// AppendText appends the amount with two decimals.
func (a Amount) AppendText(b []byte) []byte {
	v := int64(a)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/100, 10)
	b = append(b, '.', byte('0'+v%100/10), byte('0'+v%10))
	return b
}

var (
	errAmountSyntax   = errors.New("must be a plain decimal number such as 15.49")
	errAmountDecimals = errors.New("has more than two decimal places")
	errAmountRange    = errors.New("is out of range (absolute value at most 1000000.00)")
)

// ParseAmount parses a plain decimal with at most two decimal places
// ("15.49", "-3", "0.5"). Exponents, more decimals and out-of-range values
// are errors.
func ParseAmount(s string) (Amount, error) { return parseAmount(s) }

func parseAmount[T string | []byte](s T) (Amount, error) {
	if len(s) == 0 {
		return 0, errAmountSyntax
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	intPart, frac, hasDot := s, s[:0], false
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac, hasDot = s[:i], s[i+1:], true
			break
		}
	}
	if len(intPart) == 0 || (hasDot && len(frac) == 0) {
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
