//go:build linux

package chaos

import (
	"encoding/json"
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
