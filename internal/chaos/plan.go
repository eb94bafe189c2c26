//go:build linux

package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
	// Drawn on both catalogs.
	FaultLease FaultKind = "leasewrite" // Net: DynamoDB errors on one consumer's checkpoint, SHARD_END, release or lease delete writes for For
	FaultTwin  FaultKind = "twin"       // a second consumer with the same worker id as one running, for For, then SIGTERM
	// FaultExpire makes a closed shard look aged out of the stream to
	// every consumer for the rest of the trial (skipped when none is closed).
	FaultExpire FaultKind = "expire"
	// FaultClock restarts a consumer (SIGTERM, same worker id) whose
	// commits stamp snapshots Offset off the real time, for For, then
	// restarts it again with a true clock (PAYSTREAM_FAULT_CLOCK_OFFSET).
	FaultClock FaultKind = "clock"
	// Drawn on the glue catalog only; s3 also replaces readonly and
	// diskfull there (no local warehouse to break).
	FaultGlue FaultKind = "glue" // Net: errors on one consumer's Glue GetTable/UpdateTable, before or after the emulator applied them, for For
	FaultS3   FaultKind = "s3"   // Net: errors (before or after apply) or SlowDown on one consumer's S3 PUT/GET for For
	// Drawn only with the single committer (TrialConfig.CommitMode
	// CommitSingle): the target is whichever consumer holds the committer
	// role when the fault fires.
	FaultKillCommitter  FaultKind = "killcommitter"  // SIGKILL the committer, restart it after For
	FaultPauseCommitter FaultKind = "pausecommitter" // SIGSTOP the committer past the failover time (a zombie committer), then SIGCONT
	FaultStage          FaultKind = "stage"          // Net: DynamoDB errors on one consumer's TransactWriteItems (staging a batch), before or after apply, for For
)

// Commit modes of a trial's consumers (--commit-mode). "" passes no flag:
// the consumer's default.
const (
	CommitPerWorker = "worker"
	CommitSingle    = "single"
)

// ParseCommitMode checks a CHAOS_COMMIT_MODE value ("" is the consumer's
// default).
func ParseCommitMode(s string) (string, error) {
	switch s {
	case "", CommitPerWorker, CommitSingle:
		return s, nil
	}
	return "", fmt.Errorf("CHAOS_COMMIT_MODE=%q: want %s or %s", s, CommitPerWorker, CommitSingle)
}

// Read modes of a trial's consumers (--read-mode). "" passes no flag: the
// consumer's default, polling.
const (
	ReadPolling = "polling"
	// ReadEFO reads with enhanced fan-out (SubscribeToShard): the trial's
	// Kinesis is then a kinesistest emulator process (StartKinesis,
	// Env.UseKinesis), since moto does not serve SubscribeToShard.
	ReadEFO = "efo"
)

// ParseReadMode checks a CHAOS_READ_MODE value ("" is the consumer's
// default).
func ParseReadMode(s string) (string, error) {
	switch s {
	case "", ReadPolling, ReadEFO:
		return s, nil
	}
	return "", fmt.Errorf("CHAOS_READ_MODE=%q: want %s or %s", s, ReadPolling, ReadEFO)
}

// WithReadMode returns c run in read mode mode. In mode efo the emulator
// ends every subscription after 6–15 s (past its 5 s resubscribe window) (AWS: 5 min, longer than any
// trial), drawn from a stream of its own so the rest of the seed's
// schedule stays, so that readers resubscribe from their continuation
// many times per trial, faults or not.
func WithReadMode(c TrialConfig, mode string) TrialConfig {
	c.ReadMode = mode
	if mode != ReadEFO {
		return c
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0xef0))
	c.SubscriptionLifetime = between(rng, 6*time.Second, 15*time.Second).Round(100 * time.Millisecond)
	return c
}

// Fault is one scheduled fault.
type Fault struct {
	At    time.Duration // after the producer starts
	Kind  FaultKind
	Slot  int           // consumer slot (kill, term, pause, net); the next eligible one is used if it is busy
	For   time.Duration // pause length, net or read-only window, or restart delay (kill, term)
	NewID bool          // kill, term: restart under a new worker id (else the same)
	Pick  int           // split, merge: which open shard (modulo their count)
	Net   NetFault
	// Offset is a clock fault's skew: how far ahead (behind when
	// negative) of the real time the consumer stamps its snapshots.
	Offset time.Duration `json:",omitempty"`
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
	case FaultKillCommitter:
		return fmt.Sprintf("kill the committer, restart after %s", f.For.Round(time.Millisecond))
	case FaultPauseCommitter:
		return fmt.Sprintf("pause the committer for %s", f.For.Round(time.Millisecond))
	case FaultNet, FaultLease, FaultGlue, FaultS3, FaultStage:
		return fmt.Sprintf("%s c%d %s for %s", f.Kind, f.Slot, f.Net, f.For.Round(time.Millisecond))
	case FaultTwin:
		return fmt.Sprintf("twin of c%d (same worker id) for %s", f.Slot, f.For.Round(time.Millisecond))
	case FaultExpire:
		return "expire a closed shard"
	case FaultClock:
		return fmt.Sprintf("clock of c%d %s for %s", f.Slot, fmtOffset(f.Offset), f.For.Round(time.Millisecond))
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
	Catalog         string // CatalogSQLite or CatalogGlue
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
	// CommitMode is the consumers' --commit-mode ("" passes none).
	CommitMode string
	// Aggregate runs the producer with --aggregate (KPL aggregates), and
	// FlushRows, when above 0, is the consumers' --flush-rows: small, so
	// that batches end inside aggregates.
	Aggregate bool
	FlushRows int
	// ReadMode is the consumers' --read-mode ("" passes none), and
	// SubscriptionLifetime, in mode efo, how long the emulator keeps a
	// SubscribeToShard stream open.
	ReadMode             string        `json:",omitempty"`
	SubscriptionLifetime time.Duration `json:",omitempty"`
}

// WithAggregate returns c with the producer packing its records into KPL
// aggregates and the consumers committing every 5–100 user records
// (--flush-rows, drawn from its own stream so the rest of the seed's
// schedule stays), so that kills, fencing and lease moves land between
// two batches that split one aggregate.
func WithAggregate(c TrialConfig) TrialConfig {
	rng := rand.New(rand.NewPCG(c.Seed, 0xa66))
	c.Aggregate = true
	c.FlushRows = 5 + rng.IntN(96)
	return c
}

// WithCommitMode returns c run in commit mode mode. With the single
// committer it adds 2–4 faults aimed at it (a kill or a pause of whichever
// consumer holds the role when it fires, DynamoDB errors on staging),
// drawn from their own stream so the rest of the seed's schedule stays.
func WithCommitMode(c TrialConfig, mode string) TrialConfig {
	c.CommitMode = mode
	if mode != CommitSingle {
		return c
	}
	rng := rand.New(rand.NewPCG(c.Seed, 0xc0ff))
	kinds := []FaultKind{FaultKillCommitter, FaultPauseCommitter, FaultStage}
	n := 2 + rng.IntN(3)
	faults := slices.Clone(c.Faults)
	for range n {
		f := Fault{
			At:   2*time.Second + time.Duration(rng.Int64N(int64(c.Duration-3*time.Second))),
			Kind: kinds[rng.IntN(len(kinds))],
			Slot: rng.IntN(c.Consumers),
		}
		switch f.Kind {
		case FaultKillCommitter:
			f.For = between(rng, 0, 3*time.Second)
			f.NewID = rng.IntN(2) == 0
		case FaultPauseCommitter:
			f.For = c.FailoverTime + between(rng, 500*time.Millisecond, 4*time.Second)
		case FaultStage:
			f.For = between(rng, 2*time.Second, 6*time.Second)
			f.Net = NetFault{Service: "dynamodb", Ops: []string{"TransactWriteItems"}, ErrorRate: 0.3 + 0.6*rng.Float64(), After: rng.IntN(2) == 0}
		}
		faults = append(faults, f)
	}
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].At < faults[j].At })
	c.Faults = faults
	return c
}

// Plan derives a random trial on catalog (CatalogSQLite or CatalogGlue)
// from seed. quick keeps it short (CI). A sqlite seed keeps the schedule
// it had before the leasewrite and twin faults were added, plus those
// (and since, plus its clock faults).
func Plan(seed uint64, quick bool, catalog string) TrialConfig {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	// Variants drawn from their own stream, so adding one does not change
	// the rest of an existing seed's schedule.
	alt := rand.New(rand.NewPCG(seed, 0xd15c))
	c := TrialConfig{
		Seed:            seed,
		Catalog:         catalog,
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
	c.Faults = append(c.Faults, planExtra(seed, quick, c)...)
	c.Faults = append(c.Faults, planClock(seed, quick, c)...)
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
		if c.Catalog == CatalogGlue {
			f.Kind, f.Net = FaultS3, planS3(alt)
		}
	case FaultNet:
		f.For = between(rng, 2*time.Second, 6*time.Second)
		planNet(rng, &f, c.FailoverTime, c.Catalog)
	}
	return f
}

// planExtra draws the faults added after the first schedules (from their
// own stream, so older seeds keep theirs): 1–3 of leasewrite, twin and
// expire, and on glue of glue and s3 too. An expire comes in the second
// half of the run, after most reshards.
func planExtra(seed uint64, quick bool, c TrialConfig) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0xe7a))
	kinds := []FaultKind{FaultLease, FaultTwin, FaultExpire}
	if c.Catalog == CatalogGlue {
		kinds = append(kinds, FaultGlue, FaultS3, FaultGlue, FaultS3)
	}
	n := 1 + rng.IntN(3)
	if quick {
		n = 1 + rng.IntN(2)
	}
	out := make([]Fault, 0, n)
	for range n {
		f := Fault{
			At:   2*time.Second + time.Duration(rng.Int64N(int64(c.Duration-3*time.Second))),
			Kind: kinds[rng.IntN(len(kinds))],
			Slot: rng.IntN(c.Consumers),
			For:  between(rng, 2*time.Second, 6*time.Second),
		}
		switch f.Kind {
		case FaultLease:
			f.Net = planLeaseWrite(rng)
		case FaultGlue:
			f.Net = NetFault{Service: "glue", Ops: []string{"GetTable", "UpdateTable"}, ErrorRate: 0.3 + 0.4*rng.Float64(), After: rng.IntN(2) == 0}
		case FaultS3:
			f.Net = planS3(rng)
		case FaultExpire:
			f.At = c.Duration/2 + time.Duration(rng.Int64N(int64(c.Duration/2-time.Second)))
			f.Pick = rng.IntN(1 << 16)
		}
		out = append(out, f)
	}
	return out
}

// planClock draws the clock faults (from their own stream, so older
// seeds keep the rest of their schedule): none to one in a quick trial,
// none to two in a long one, each a consumer restarted with its clock
// 70–100 s ahead or behind (sign drawn) for 4–8 s. A consumer ahead by d
// makes every other commit fail until the real time passes its last
// snapshot's stamp minus a minute, up to d−1m after the fault ends; the
// drain timeout must cover that (TestPlanClock holds it to it).
func planClock(seed uint64, quick bool, c TrialConfig) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0xc10c))
	n := rng.IntN(3)
	if quick {
		n = rng.IntN(2)
	}
	out := make([]Fault, 0, n)
	for range n {
		f := Fault{
			At:     2*time.Second + time.Duration(rng.Int64N(int64(c.Duration-3*time.Second))),
			Kind:   FaultClock,
			Slot:   rng.IntN(c.Consumers),
			For:    between(rng, 4*time.Second, 8*time.Second),
			Offset: between(rng, 70*time.Second, 100*time.Second).Round(time.Second),
		}
		if rng.IntN(2) == 0 {
			f.Offset = -f.Offset
		}
		out = append(out, f)
	}
	return out
}

// fmtOffset writes a clock offset with its sign: +1m30s, -1m15s.
func fmtOffset(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// planLeaseWrite draws DynamoDB errors (before or after the write applied)
// on one kind of lease write, matched on the request body: checkpoints,
// the SHARD_END checkpoint, releases (REMOVE the owner) or lease deletes.
func planLeaseWrite(rng *rand.Rand) NetFault {
	f := NetFault{Service: "dynamodb", Ops: []string{"UpdateItem"}, ErrorRate: 0.5 + 0.5*rng.Float64(), After: rng.IntN(2) == 0}
	switch rng.IntN(4) {
	case 0:
		f.Body = `"#cp"` // every checkpoint write
	case 1:
		f.Body = `"SHARD_END"`
	case 2:
		f.Body = "REMOVE #owner" // release
	case 3:
		f.Ops = []string{"DeleteItem"}
	}
	return f
}

// planS3 draws an S3 fault on data, manifest, metadata and dead-letter
// objects: errors before or after the emulator applied the PUT or GET, or
// SlowDown throttling.
func planS3(rng *rand.Rand) NetFault {
	f := NetFault{Service: "s3", Ops: []string{"PUT", "GET"}, ErrorRate: 0.2 + 0.4*rng.Float64()}
	switch rng.IntN(3) {
	case 0:
		f.After = true
	case 1:
		f.Throttle = true
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
// down, on one service or all (on glue, Glue and S3 too). A down endpoint gets its own window, up to
// past failover.
func planNet(rng *rand.Rand, f *Fault, failover time.Duration, catalog string) {
	services := []string{"", "kinesis", "dynamodb"}
	if catalog == CatalogGlue {
		services = append(services, "glue", "s3")
	}
	svc := services[rng.IntN(len(services))]
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
	s := fmt.Sprintf("seed %d on %s: %d shards, %d consumers, %.0f rec/s for %s, dup %.2f (delay %s), invalid %.2f, failover %s",
		c.Seed, c.catalog(), c.Shards, c.Consumers, c.Rate, c.Duration, c.DuplicateRate, c.DuplicateDelay, c.InvalidRate, c.FailoverTime)
	if c.ReadMode == ReadEFO {
		s += fmt.Sprintf(", read mode efo (subscriptions end after %s)", c.SubscriptionLifetime)
	}
	return s
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

// catalog is c's catalog kind; "" (a scenario's config) is sqlite.
func (c TrialConfig) catalog() string {
	if c.Catalog == "" {
		return CatalogSQLite
	}
	return c.Catalog
}
