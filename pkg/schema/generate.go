package schema

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"time"
)

// Generator makes realistic payment events for load tests: 85% succeeded,
// 10% failed, 5% refunded; tiers at list price; a Zipf-skewed customer pool
// (a few customers pay often); weighted countries with their currencies and
// several processors. Event ids are evt_<epoch ms of the generator's
// start>_<n>, unique per generator. For a given seed the sequence of
// customers, types, tiers, countries and processors is always the same;
// ids and timestamps follow the clock. Not safe for concurrent use.
type Generator struct {
	rng       *rand.Rand
	zipf      *rand.Zipf
	startMS   int64
	n         uint64
	customers uint64
}

// GeneratorCustomers is the size of the customer pool.
const GeneratorCustomers = 50_000

type weighted struct {
	value  string
	extra  string
	weight int
}

var (
	tierWeights = []weighted{
		{"standard", "", 40}, {"standard_with_ads", "", 30}, {"premium", "", 20}, {"basic", "", 10},
	}
	countryWeights = []weighted{
		{"US", "USD", 38}, {"BR", "BRL", 10}, {"GB", "GBP", 9}, {"DE", "EUR", 8}, {"FR", "EUR", 7},
		{"IN", "INR", 7}, {"CA", "CAD", 7}, {"MX", "MXN", 5}, {"JP", "JPY", 5}, {"AU", "AUD", 4},
	}
	processorWeights = []weighted{
		{"stripe", "", 45}, {"adyen", "", 25}, {"braintree", "", 15}, {"paypal", "", 10}, {"checkout_com", "", 5},
	}
)

func pick(rng *rand.Rand, ws []weighted) weighted {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	n := rng.IntN(total)
	for _, w := range ws {
		if n < w.weight {
			return w
		}
		n -= w.weight
	}
	return ws[len(ws)-1]
}

// NewGenerator returns a generator seeded with seed; start sets the
// epoch-millisecond part of the event ids.
func NewGenerator(seed uint64, start time.Time) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &Generator{
		rng:       rng,
		zipf:      rand.NewZipf(rng, 1.1, 1, GeneratorCustomers-1),
		startMS:   start.UnixMilli(),
		customers: GeneratorCustomers,
	}
}

// Next returns the next event with event_ts = now.
func (g *Generator) Next(now time.Time) Event {
	g.n++
	e := Event{
		EventID:    "evt_" + strconv.FormatInt(g.startMS, 10) + "_" + strconv.FormatUint(g.n, 10),
		CustomerID: "cus_" + pad6(g.zipf.Uint64()),
		EventTS:    now.UTC().Truncate(time.Millisecond),
	}
	p := g.rng.IntN(100)
	switch {
	case p < 85:
		e.EventType, e.Status = TypeSucceeded, StatusSucceeded
	case p < 95:
		e.EventType, e.Status = TypeFailed, StatusFailed
	default:
		e.EventType, e.Status = TypeRefunded, StatusRefunded
	}
	e.SubscriptionTier = pick(g.rng, tierWeights).value
	c := pick(g.rng, countryWeights)
	e.CountryCode, e.Currency = c.value, c.extra
	e.PaymentProcessor = pick(g.rng, processorWeights).value
	e.AmountUSD = Tiers[e.SubscriptionTier]
	if e.Status == StatusRefunded {
		e.AmountUSD = -e.AmountUSD
	}
	return e
}

func pad6(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// InvalidKinds lists the defects NextInvalid produces, by name.
var InvalidKinds = []string{"not_json", "not_object", "missing_event_id", "bad_amount", "unknown_tier", "bad_event_ts", "status_mismatch", "invalid_utf8"}

// NextInvalid returns a deliberately malformed record (for dead-letter
// tests) and the kind of defect it carries. Every record it returns is
// rejected by Decode.
func (g *Generator) NextInvalid(now time.Time) (raw []byte, kind string) {
	e := g.Next(now)
	kind = InvalidKinds[g.rng.IntN(len(InvalidKinds))]
	switch kind {
	case "not_json":
		return []byte(`{"event_id": "` + e.EventID + `", "amount_usd": 15.49`), kind
	case "not_object":
		return []byte(`["` + e.EventID + `"]`), kind
	case "missing_event_id":
		e.EventID = ""
	case "bad_amount":
		b := e.AppendJSON(nil)
		return replaceAmount(b, e.AmountUSD, "15.499"), kind
	case "unknown_tier":
		e.SubscriptionTier = "platinum"
	case "bad_event_ts":
		e.EventTS = time.Unix(now.Unix()/1000, 0) // seconds mistaken for milliseconds
	case "status_mismatch":
		if e.Status == StatusSucceeded {
			e.Status = StatusRefunded
		} else {
			e.Status = StatusSucceeded
		}
	case "invalid_utf8":
		b := e.AppendJSON(nil)
		return append(b[:len(b)-1], []byte(`,"note":"`+"\xff\xfe"+`"}`)...), kind
	}
	return e.AppendJSON(nil), kind
}

func replaceAmount(b []byte, a Amount, with string) []byte {
	return bytes.Replace(b, []byte(`"amount_usd":`+a.String()), []byte(`"amount_usd":`+with), 1)
}
