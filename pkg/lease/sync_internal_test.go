package lease

import "testing"

func TestDescendantHasLease(t *testing.T) {
	// 5 split into 6 and 7, which merged into 8.
	children := map[string][]string{"5": {"6", "7"}, "6": {"8"}, "7": {"8"}}
	tests := []struct {
		name string
		have []string
		want bool
	}{
		{"no leases", nil, false},
		{"child has one", []string{"6"}, true},
		{"only the grandchild has one (children cleaned up)", []string{"8"}, true},
		{"unrelated shard", []string{"1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := map[string]Lease{}
			for _, k := range tt.have {
				have[k] = Lease{Key: k}
			}
			if got := descendantHasLease("5", children, have); got != tt.want {
				t.Fatalf("descendantHasLease = %v, want %v", got, tt.want)
			}
		})
	}
}
