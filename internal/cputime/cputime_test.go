package cputime_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/paystream/paystream/internal/cputime"
)

func TestProcessAdvancesWithWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("not measured on this system")
	}
	before := cputime.Process()
	if before <= 0 {
		t.Fatalf("CPU time %v at the start of a test, want > 0", before)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	if after := cputime.Process(); after <= before {
		t.Fatalf("CPU time went from %v to %v over 50 ms of work (%d loops), want it to grow", before, after, x)
	}
}
