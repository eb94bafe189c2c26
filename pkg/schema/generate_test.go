package schema

import (
	"math"
	"testing"
	"time"
)

func TestGeneratorDistribution(t *testing.T) {
	const n = 100_000
	g := NewGenerator(42, now)
	status := map[string]int{}
	tiers := map[string]int{}
	countries := map[string]int{}
	customers := map[string]int{}
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		e := g.Next(now)
		if _, err := Decode(e.AppendJSON(nil), now); err != nil {
			t.Fatalf("generated event is invalid: %v", err)
		}
		if ids[e.EventID] {
			t.Fatalf("event_id %s repeated", e.EventID)
		}
		ids[e.EventID] = true
		status[e.Status]++
		tiers[e.SubscriptionTier]++
		countries[e.CountryCode]++
		customers[e.CustomerID]++
		if e.SubscriptionTier == "standard" && e.Status == StatusSucceeded && e.AmountUSD != 1549 {
			t.Fatalf("standard charge is %s, want 15.49", e.AmountUSD)
		}
	}
	near := func(what string, got int, want float64) {
		t.Helper()
		if frac := float64(got) / n; math.Abs(frac-want) > 0.01 {
			t.Errorf("%s: %.3f of events, want %.2f ± 0.01", what, frac, want)
		}
	}
	near("succeeded", status[StatusSucceeded], 0.85)
	near("failed", status[StatusFailed], 0.10)
	near("refunded", status[StatusRefunded], 0.05)
	near("standard tier", tiers["standard"], 0.40)
	near("US", countries["US"], 0.38)
	if len(countries) < 5 {
		t.Errorf("only %d countries", len(countries))
	}
	// Skew: the busiest 1% of customers account for far more than 1% of events.
	top := 0
	counts := make([]int, 0, len(customers))
	for _, c := range customers {
		counts = append(counts, c)
	}
	sortDesc(counts)
	for _, c := range counts[:len(counts)/100] {
		top += c
	}
	if frac := float64(top) / n; frac < 0.2 {
		t.Errorf("top 1%% of customers have %.2f of events; the pool is not skewed", frac)
	}
}

func sortDesc(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] > a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	a, b := NewGenerator(9, now), NewGenerator(9, now)
	c := NewGenerator(10, now)
	same := true
	for i := 0; i < 1000; i++ {
		ea, eb, ec := a.Next(now), b.Next(now), c.Next(now)
		if ea != eb {
			t.Fatalf("same seed differs at %d: %+v vs %+v", i, ea, eb)
		}
		if ea.CustomerID != ec.CustomerID || ea.SubscriptionTier != ec.SubscriptionTier {
			same = false
		}
	}
	if same {
		t.Fatal("different seeds produced the same events")
	}
}

func TestGeneratorIDs(t *testing.T) {
	start := time.UnixMilli(1764072000123)
	g := NewGenerator(1, start)
	if id := g.Next(now).EventID; id != "evt_1764072000123_1" {
		t.Fatalf("first id %q", id)
	}
}

func TestNextInvalidIsRejected(t *testing.T) {
	g := NewGenerator(3, now)
	kinds := map[string]int{}
	for i := 0; i < 2000; i++ {
		raw, kind := g.NextInvalid(now)
		kinds[kind]++
		if _, err := Decode(raw, now); err == nil {
			t.Fatalf("invalid record of kind %s decoded: %s", kind, raw)
		}
	}
	if len(kinds) != len(InvalidKinds) {
		t.Fatalf("kinds produced %v, want all of %v", kinds, InvalidKinds)
	}
}
