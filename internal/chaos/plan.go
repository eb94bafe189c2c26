//go:build linux

package chaos

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// FaultKind names a fault.
type FaultKind string

// The faults a trial can inject.
const (
	FaultKill     FaultKind = "kill"     // SIGKILL a consumer, restart it after For
	FaultTerm     FaultKind = "term"     // SIGTERM a consumer, restart it after it exited and For passed
	FaultPause    FaultKind = "pause"    // SIGSTOP a consumer for For (longer than the failover time: a zombie), then SIGCONT
	FaultSplit    FaultKind = "split"    // split an open shard
	FaultMerge    FaultKind = "merge"    // merge two adjacent open shards
	FaultNet      FaultKind = "net"      // Net on one consumer's proxy to the emulator for For
	FaultReadOnly FaultKind = "readonly" // make every warehouse folder read-only for For
	FaultDiskFull FaultKind = "diskfull" // one consumer cannot grow any file (RLIMIT_FSIZE 0: catalog and warehouse) for For
)

// Fault is one scheduled fault.
type Fault struct {
	At    time.Duration // after the producer starts
	Kind  FaultKind
	Slot  int           // consumer slot (kill, term, pause, net); the next eligible one is used if it is busy
	For   time.Duration // pause length, net or read-only window, or restart delay (kill, term)
	NewID bool          // kill, term: restart under a new worker id (else the same)
	Pick  int           // split, merge: which open shard (modulo their count)
	Net   NetFault
}

func (f Fault) String() string {
	switch f.Kind {
	case FaultKill, FaultTerm:
		id := "same id"
		if f.NewID {
			id = "new id"
		}
		return fmt.Sprintf("%s c%d, restart after %s (%s)", f.Kind, f.Slot, f.For.Round(time.Millisecond), id)
	case FaultPause:
		return fmt.Sprintf("pause c%d for %s", f.Slot, f.For.Round(time.Millisecond))
	case FaultNet:
		return fmt.Sprintf("net c%d %s for %s", f.Slot, f.Net, f.For.Round(time.Millisecond))
	case FaultReadOnly:
		return fmt.Sprintf("read-only warehouse for %s", f.For.Round(time.Millisecond))
	case FaultDiskFull:
		return fmt.Sprintf("disk full for c%d for %s", f.Slot, f.For.Round(time.Millisecond))
	default:
		return string(f.Kind)
	}
}

// TrialConfig is everything that defines a trial. Plan derives one from a
// seed; scenario tests build their own.
type TrialConfig struct {
	Seed            uint64
	Shards          int
	Consumers       int
	Rate            float64 // producer records/s (duplicates and invalid records included)
	Duration        time.Duration
	DuplicateRate   float64
	InvalidRate     float64
	DuplicateDelay  time.Duration
	FailoverTime    time.Duration
	FlushInterval   time.Duration
	ShutdownTimeout time.Duration
	DrainTimeout    time.Duration
	Faults          []Fault
	// SlotArgs are extra consumer flags per slot (they win over the defaults).
	SlotArgs map[int][]string
	// StartDelay holds back a slot's first start (after the producer starts).
	StartDelay map[int]time.Duration
	// NoReadOnly leaves the read-only fault out (the harness cannot bind
	// the consumers' user).
	NoReadOnly bool
}

// Plan derives a random trial from seed. quick keeps it short (CI).
func Plan(seed uint64, quick bool) TrialConfig {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// Variants drawn from their own stream, so adding one does not change
	// the rest of an existing seed's schedule.
	alt := rand.New(rand.NewPCG(seed, 0xd15c))
	c := TrialConfig{
		Seed:            seed,
		Shards:          2 + rng.IntN(5),
		Consumers:       1 + rng.IntN(3),
		Rate:            float64(150 + 50*rng.IntN(5)),
		DuplicateRate:   0.05 + 0.05*float64(rng.IntN(3)),
		InvalidRate:     0.01 + 0.01*float64(rng.IntN(3)),
		DuplicateDelay:  time.Duration(1+rng.IntN(6)) * time.Second,
		FailoverTime:    3 * time.Second,
		FlushInterval:   500 * time.Millisecond,
		ShutdownTimeout: 8 * time.Second,
		DrainTimeout:    120 * time.Second,
	}
	nFaults := 5 + rng.IntN(5)
	c.Duration = time.Duration(30+5*rng.IntN(4)) * time.Second
	if quick {
		c.Duration = 20 * time.Second
		nFaults = 3 + rng.IntN(3)
	}
	for range nFaults {
		c.Faults = append(c.Faults, planFault(rng, alt, c))
	}
	sort.SliceStable(c.Faults, func(i, j int) bool { return c.Faults[i].At < c.Faults[j].At })
	return c
}

// faultWeights are the odds Plan draws each fault kind with (diskfull
// replaces half of the readonly ones).
var faultWeights = []struct {
	k FaultKind
	w int
}{
	{FaultKill, 20}, {FaultTerm, 12}, {FaultPause, 12}, {FaultSplit, 10}, {FaultMerge, 7},
	{FaultNet, 25}, {FaultReadOnly, 10},
}

// planFault draws one fault for trial c from rng (and variants from alt):
// its kind, a time between 2 s in and 1 s before the end of the
// producer's run, a slot, a pick and what its kind needs.
func planFault(rng, alt *rand.Rand, c TrialConfig) Fault {
	kind := pickFaultKind(rng)
	span := c.Duration - 3*time.Second
	f := Fault{
		At:   2*time.Second + time.Duration(rng.Int64N(int64(span))),
		Kind: kind,
		Slot: rng.IntN(c.Consumers),
		Pick: rng.IntN(1 << 16),
	}
	switch kind {
	case FaultKill, FaultTerm:
		f.For = between(rng, 0, 3*time.Second)
		f.NewID = rng.IntN(2) == 0
	case FaultPause:
		f.For = c.FailoverTime + between(rng, 500*time.Millisecond, 4*time.Second)
	case FaultReadOnly:
		f.For = between(rng, 2*time.Second, 6*time.Second)
		if alt.IntN(2) == 0 {
			f.Kind = FaultDiskFull
		}
	case FaultNet:
		f.For = between(rng, 2*time.Second, 6*time.Second)
		planNet(rng, &f, c.FailoverTime)
	}
	return f
}

// pickFaultKind draws a fault kind from rng with the odds of faultWeights.
func pickFaultKind(rng *rand.Rand) FaultKind {
	total := 0
	for _, k := range faultWeights {
		total += k.w
	}
	n := rng.IntN(total)
	for _, k := range faultWeights {
		if n < k.w {
			return k.k
		}
		n -= k.w
	}
	return ""
}

// planNet draws the network fault of f from rng: errors (before or after
// the emulator applied the call), throttling, latency or the endpoint
// down, on one service or all. A down endpoint gets its own window, up to
// past failover.
func planNet(rng *rand.Rand, f *Fault, failover time.Duration) {
	svc := []string{"", "kinesis", "dynamodb"}[rng.IntN(3)]
	switch rng.IntN(5) {
	case 0:
		f.Net = NetFault{Service: svc, ErrorRate: 0.2 + 0.3*rng.Float64()}
	case 1:
		f.Net = NetFault{Service: svc, ErrorRate: 0.2 + 0.3*rng.Float64(), After: true}
	case 2:
		f.Net = NetFault{Service: svc, ErrorRate: 0.5 + 0.5*rng.Float64(), Throttle: true}
	case 3:
		f.Net = NetFault{Service: svc, Latency: between(rng, 100*time.Millisecond, 1500*time.Millisecond)}
	case 4:
		// The endpoint is gone for a while (emulator restart,
		// partition): up to past the failover time.
		f.Net = NetFault{Service: svc, Down: true}
		f.For = between(rng, time.Second, failover+3*time.Second)
	}
}

// between draws a duration in [lo, hi) from rng.
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

func (c TrialConfig) String() string {
	return fmt.Sprintf("seed %d: %d shards, %d consumers, %.0f rec/s for %s, dup %.2f (delay %s), invalid %.2f, failover %s",
		c.Seed, c.Shards, c.Consumers, c.Rate, c.Duration, c.DuplicateRate, c.DuplicateDelay, c.InvalidRate, c.FailoverTime)
}

// FaultSummary counts faults by kind, e.g. "kill×2 net×1".
func FaultSummary(fs []string) string {
	counts := map[string]int{}
	var order []string
	for _, f := range fs {
		if counts[f] == 0 {
			order = append(order, f)
		}
		counts[f]++
	}
	sort.Strings(order)
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	return strings.Join(parts, " ")
}
