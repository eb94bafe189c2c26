//go:build linux

package chaos

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
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
		{CatalogSQLite, []FaultKind{FaultGlue, FaultS3}, []FaultKind{FaultReadOnly, FaultDiskFull, FaultLease, FaultTwin, FaultExpire}},
		{CatalogGlue, []FaultKind{FaultReadOnly, FaultDiskFull}, []FaultKind{FaultGlue, FaultS3, FaultLease, FaultTwin, FaultExpire}},
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
