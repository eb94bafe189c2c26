//go:build linux

package chaos

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPlanCatalog checks that each catalog draws only the faults that
// apply to it, that the glue-only and new faults are drawn at all, and
// that trial.json's config records the catalog so a seed replays it.
func TestPlanCatalog(t *testing.T) {
	for _, tc := range []struct {
		catalog string
		never   []FaultKind
		some    []FaultKind
	}{
		{CatalogSQLite, []FaultKind{FaultGlue, FaultS3}, []FaultKind{FaultReadOnly, FaultDiskFull, FaultLease, FaultTwin, FaultExpire, FaultClock}},
		{CatalogGlue, []FaultKind{FaultReadOnly, FaultDiskFull}, []FaultKind{FaultGlue, FaultS3, FaultLease, FaultTwin, FaultExpire, FaultClock}},
	} {
		t.Run(tc.catalog, func(t *testing.T) {
			seen := map[FaultKind]int{}
			for seed := range uint64(200) {
				c := Plan(seed, seed%2 == 0, tc.catalog)
				if c.Catalog != tc.catalog {
					t.Fatalf("seed %d: catalog %q, want %q", seed, c.Catalog, tc.catalog)
				}
				for _, f := range c.Faults {
					seen[f.Kind]++
					if f.Kind == FaultS3 && f.Net.Service != "s3" || f.Kind == FaultGlue && f.Net.Service != "glue" {
						t.Errorf("seed %d: %s fault on service %q", seed, f.Kind, f.Net.Service)
					}
				}
			}
			for _, k := range tc.never {
				if seen[k] > 0 {
					t.Errorf("%d %s faults drawn on %s", seen[k], k, tc.catalog)
				}
			}
			for _, k := range tc.some {
				if seen[k] == 0 {
					t.Errorf("no %s fault in 200 seeds on %s (drawn: %v)", k, tc.catalog, seen)
				}
			}
		})
	}
	b, err := json.Marshal(Plan(7, true, CatalogGlue))
	if err != nil {
		t.Fatal(err)
	}
	var back TrialConfig
	if err := json.Unmarshal(b, &back); err != nil || back.Catalog != CatalogGlue {
		t.Errorf("trial.json round trip: catalog %q, %v", back.Catalog, err)
	}
}

// With the single committer a trial adds faults aimed at the committer and
// keeps the rest of its seed's schedule; without it nothing changes.
func TestWithCommitMode(t *testing.T) {
	base := Plan(42, false, CatalogSQLite)
	if got := WithCommitMode(base, CommitPerWorker); !reflect.DeepEqual(got.Faults, base.Faults) || got.CommitMode != CommitPerWorker {
		t.Fatalf("worker mode changed the schedule: %v", got.Faults)
	}
	kinds := map[FaultKind]int{}
	for seed := range uint64(50) {
		c := Plan(seed, false, CatalogGlue)
		s := WithCommitMode(c, CommitSingle)
		if len(s.Faults) < len(c.Faults)+2 || len(s.Faults) > len(c.Faults)+4 {
			t.Fatalf("seed %d: %d faults with the committer, %d without; want 2–4 more", seed, len(s.Faults), len(c.Faults))
		}
		for i, f := range s.Faults {
			kinds[f.Kind]++
			if i > 0 && f.At < s.Faults[i-1].At {
				t.Fatalf("seed %d: faults out of order", seed)
			}
			if f.Kind == FaultStage && (f.Net.Service != "dynamodb" || f.Net.Ops[0] != "TransactWriteItems") {
				t.Fatalf("stage fault %v: want DynamoDB TransactWriteItems", f.Net)
			}
		}
	}
	for _, k := range []FaultKind{FaultKillCommitter, FaultPauseCommitter, FaultStage} {
		if kinds[k] == 0 {
			t.Errorf("50 seeds drew no %s fault", k)
		}
	}
	if _, err := ParseCommitMode("both"); err == nil || !strings.Contains(err.Error(), "CHAOS_COMMIT_MODE") {
		t.Errorf("ParseCommitMode(both) = %v, want an error naming CHAOS_COMMIT_MODE", err)
	}
}

// Clock faults are drawn on both catalogs, deterministically per seed,
// ahead and behind by 70–100 s for 4–8 s, within the producer's run, and
// the drain waits long enough for the stall a clock ahead leaves behind
// (the others' commits refused until the real time passes its last
// snapshot's stamp minus a minute). go test -run TestPlanClock -v lists
// seeds that have one.
func TestPlanClock(t *testing.T) {
	for _, catalog := range []string{CatalogSQLite, CatalogGlue} {
		for _, quick := range []bool{true, false} {
			var ahead, behind int
			var seeds []uint64
			for seed := range uint64(300) {
				c := Plan(seed, quick, catalog)
				if again := Plan(seed, quick, catalog); !reflect.DeepEqual(c, again) {
					t.Fatalf("seed %d: two plans differ", seed)
				}
				n := 0
				for _, f := range c.Faults {
					if f.Kind != FaultClock {
						if f.Offset != 0 {
							t.Errorf("seed %d: %s fault with a clock offset", seed, f.Kind)
						}
						continue
					}
					n++
					abs := max(f.Offset, -f.Offset)
					if abs < 70*time.Second || abs > 100*time.Second || f.For < 4*time.Second || f.For >= 8*time.Second {
						t.Errorf("seed %d: %s; want ±70–100s for 4–8s", seed, f)
					}
					if f.At < 2*time.Second || f.At > c.Duration-time.Second || f.Slot < 0 || f.Slot >= c.Consumers {
						t.Errorf("seed %d: %s at %s in a %s run of %d consumers", seed, f, f.At, c.Duration, c.Consumers)
					}
					// The stall ends abs−1m after the skewed consumer's
					// last commit, at the latest when the fault heals,
					// before the drain starts; leave a minute for backoff
					// and the commits that follow.
					if stall := abs - time.Minute; c.DrainTimeout < stall+time.Minute {
						t.Errorf("seed %d: drain timeout %s does not cover a %s stall", seed, c.DrainTimeout, stall)
					}
					if f.Offset > 0 {
						ahead++
					} else {
						behind++
					}
				}
				if most := map[bool]int{true: 1, false: 2}[quick]; n > most {
					t.Errorf("seed %d (quick %v): %d clock faults, want at most %d", seed, quick, n, most)
				}
				if n > 0 && len(seeds) < 8 {
					seeds = append(seeds, seed)
				}
			}
			if ahead == 0 || behind == 0 {
				t.Errorf("%s quick=%v: %d ahead, %d behind in 300 seeds; want both", catalog, quick, ahead, behind)
			}
			t.Logf("%s quick=%v: %d ahead, %d behind; seeds with a clock fault: %v", catalog, quick, ahead, behind, seeds)
		}
	}
	f := Fault{Kind: FaultClock, Slot: 1, For: 5 * time.Second, Offset: -75 * time.Second}
	if got, want := f.String(), "clock of c1 -1m15s for 5s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if !slices.Contains(strings.Fields(Fault{Kind: FaultClock, Offset: 90 * time.Second}.String()), "+1m30s") {
		t.Errorf("an offset ahead is written without its sign: %s", Fault{Kind: FaultClock, Offset: 90 * time.Second})
	}
}

// TestPlanReadMode checks read mode efo: it keeps the seed's schedule,
// draws a subscription lifetime past the emulator's 5 s resubscribe window
// and well inside a trial, the same for the same seed, and trial.json
// records both so the seed replays them.
func TestPlanReadMode(t *testing.T) {
	lifetimes := map[time.Duration]bool{}
	for seed := range uint64(100) {
		plain := Plan(seed, false, CatalogSQLite)
		c := WithReadMode(plain, ReadEFO)
		if c.ReadMode != ReadEFO || !reflect.DeepEqual(c.Faults, plain.Faults) || c.Shards != plain.Shards || c.Consumers != plain.Consumers {
			t.Fatalf("seed %d: efo changed the schedule or left the mode out: %+v", seed, c)
		}
		if c.SubscriptionLifetime < 6*time.Second || c.SubscriptionLifetime > 15*time.Second {
			t.Errorf("seed %d: subscription lifetime %s, want 6-15s", seed, c.SubscriptionLifetime)
		}
		if again := WithReadMode(plain, ReadEFO); again.SubscriptionLifetime != c.SubscriptionLifetime {
			t.Errorf("seed %d: lifetime %s then %s", seed, c.SubscriptionLifetime, again.SubscriptionLifetime)
		}
		lifetimes[c.SubscriptionLifetime] = true
		if p := WithReadMode(plain, ReadPolling); p.SubscriptionLifetime != 0 || p.ReadMode != ReadPolling {
			t.Errorf("seed %d: polling got %+v", seed, p)
		}
	}
	if len(lifetimes) < 10 {
		t.Errorf("%d distinct lifetimes in 100 seeds", len(lifetimes))
	}
	b, err := json.Marshal(WithReadMode(Plan(7, true, CatalogSQLite), ReadEFO))
	if err != nil {
		t.Fatal(err)
	}
	var back TrialConfig
	if err := json.Unmarshal(b, &back); err != nil || back.ReadMode != ReadEFO || back.SubscriptionLifetime == 0 {
		t.Errorf("trial.json round trip: %q %s, %v", back.ReadMode, back.SubscriptionLifetime, err)
	}
	for _, s := range []string{"", ReadPolling, ReadEFO} {
		if got, err := ParseReadMode(s); got != s || err != nil {
			t.Errorf("ParseReadMode(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseReadMode("push"); err == nil || !strings.Contains(err.Error(), "CHAOS_READ_MODE") {
		t.Errorf("ParseReadMode(push): %v, want an error naming CHAOS_READ_MODE", err)
	}
}
