package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/lease"
)

// Shard states, as Report prints them.
const (
	// StateReading: owned by a worker whose lease is renewing, and the
	// table is not stuck behind the stream.
	StateReading = "reading"
	// StateFinished: read to its end and committed (lease checkpoint
	// SHARD_END, or a closed parent whose lease was deleted once its
	// children had theirs); nothing more to do.
	StateFinished = "finished"
	// StateWaiting: a child of a split or merge whose parents are not
	// finished yet; it is read after them, in order.
	StateWaiting = "waiting-for-parents"
	// StateUnowned: no worker holds it (no lease yet, or released): nobody
	// reads it until a worker takes it.
	StateUnowned = "unowned"
	// StateStalled: owned, but the owner did not renew the lease during the
	// sample (dead or stuck), or the table's position did not move while
	// the stream holds records older than Config.StallAfter after it.
	StateStalled = "stalled"
)

// Config configures Check.
type Config struct {
	// Sample is how long apart the lease table (and the table) are read to
	// tell a live owner, whose lease counter moves, from a dead one. It must
	// be longer than the workers' renew interval (a third of their
	// --failover-time), or live owners look dead.
	Sample time.Duration
	// StallAfter: an owned shard whose table position did not move during
	// the sample while its oldest unread record arrived longer ago than this
	// is stalled.
	StallAfter time.Duration
	// Concurrency bounds the shards probed at once (default 8).
	Concurrency int
	// Now is the clock (default time.Now); Sleep waits (default a timer
	// that honours ctx). Tests replace them.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Validate rejects a configuration Check cannot use, naming the flag.
func (c Config) Validate() error {
	var errs []error
	if c.Sample <= 0 {
		errs = append(errs, fmt.Errorf("--sample %s: must be positive (longer than the workers' lease renew interval, a third of --failover-time)", c.Sample))
	}
	if c.StallAfter <= 0 {
		errs = append(errs, fmt.Errorf("--stall-after %s: must be positive", c.StallAfter))
	}
	return errors.Join(errs...)
}

// LeaseLister reads every lease of the lease table (lease.Store.List).
type LeaseLister interface {
	List(ctx context.Context) ([]lease.Lease, error)
}

// TableState is what Check needs of the Iceberg table.
type TableState struct {
	// Positions maps shard id → last committed sequence number.
	Positions map[string]string
	// LastCommit is the current snapshot's time; zero when the table has
	// no snapshot yet.
	LastCommit time.Time
	// ShardLastCommit maps shard id → time of the newest kept snapshot
	// that moved its position (iceberg.ShardLastCommits).
	ShardLastCommit map[string]time.Time
}

// TableReader loads the table's state. IcebergTable implements it.
type TableReader interface {
	State(ctx context.Context) (TableState, error)
}

// RecordsAPI is the Kinesis reads Check makes to look past the table's
// position (*kinesis.Client or a fake).
type RecordsAPI interface {
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Deps are the sources Check reads.
type Deps struct {
	Stream  string
	Shards  lease.ShardLister // ingest.KinesisShards
	Leases  LeaseLister       // *lease.DynamoStore
	Table   TableReader       // IcebergTable
	Records RecordsAPI        // *kinesis.Client
}

// Check reads every source, waits Config.Sample, reads the lease table and
// the table again, probes each open shard and returns the Report. An error
// means a source could not be read (the message names which); problems
// found are in the Report, not errors.
func Check(ctx context.Context, cfg Config, d Deps) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	shards, err := d.Shards.ListShards(ctx)
	if err != nil {
		return Report{}, err
	}
	before, err := d.Leases.List(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read lease table: %w", err)
	}
	tBefore, err := d.Table.State(ctx)
	if err != nil {
		return Report{}, err
	}
	if err := cfg.Sleep(ctx, cfg.Sample); err != nil {
		return Report{}, err
	}
	after, err := d.Leases.List(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read lease table: %w", err)
	}
	tAfter, err := d.Table.State(ctx)
	if err != nil {
		return Report{}, err
	}
	now := cfg.Now()
	r := build(cfg, shards, before, after, tAfter, now)
	if err := probeAll(ctx, cfg, d, &r, now); err != nil {
		return Report{}, err
	}
	r.judge(cfg, tBefore.Positions)
	return r, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// shardIDs returns every shard id with a lease or in the stream, sorted.
func shardIDs(all map[string]lease.Lease, inStream map[string]lease.Shard) []string {
	ids := make([]string, 0, len(all)+len(inStream))
	for id := range all {
		ids = append(ids, id)
	}
	for id := range inStream {
		if _, ok := all[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// parentsWithChildLeases returns the shards a leased shard names as
// parent. Such a parent was finished: Sync deletes its lease once its
// children's exist.
func parentsWithChildLeases(shards []lease.Shard, all map[string]lease.Lease) map[string]bool {
	out := map[string]bool{}
	for _, s := range shards {
		if _, ok := all[s.ID]; ok {
			for _, p := range s.Parents {
				out[p] = true
			}
		}
	}
	for _, l := range all {
		for _, p := range l.ParentShardIDs {
			out[p] = true
		}
	}
	return out
}

// shardState judges one shard from its lease l (if sh.HasLease) as sampled.
func shardState(sh Shard, l lease.Lease, all map[string]lease.Lease, childLeased bool) string {
	switch {
	case !sh.HasLease && sh.Closed && childLeased:
		return StateFinished // its lease was deleted after its children's were created
	case !sh.HasLease:
		return StateUnowned
	case l.Finished():
		return StateFinished
	case !lease.ParentsFinished(l, all):
		return StateWaiting
	case l.Owner == "":
		return StateUnowned
	case !sh.Renewing:
		return StateStalled
	default:
		return StateReading
	}
}

// build assembles the report from the two reads, before probing.
func build(cfg Config, shards []lease.Shard, before, after []lease.Lease, tAfter TableState, now time.Time) Report {
	r := Report{At: now, Sample: cfg.Sample, Healthy: true, Problems: []Problem{}, Shards: []Shard{}, Workers: []Worker{}}
	if !tAfter.LastCommit.IsZero() {
		lc := tAfter.LastCommit
		r.LastCommit = &lc
	}
	prev := map[string]lease.Lease{}
	for _, l := range before {
		prev[l.Key] = l
	}
	all := map[string]lease.Lease{}
	for _, l := range after {
		if lease.IsRoleKey(l.Key) {
			if l.Key == lease.RoleKey(lease.RoleMaintainer) && l.Owner != "" {
				r.Maintainer = &Role{Owner: l.Owner, Counter: l.Counter, Renewing: moved(prev, l)}
			}
			continue
		}
		all[l.Key] = l
	}
	inStream := map[string]lease.Shard{}
	for _, s := range shards {
		inStream[s.ID] = s
	}
	ids := shardIDs(all, inStream)
	hasChildLease := parentsWithChildLeases(shards, all)
	workers := map[string]*Worker{}
	for _, id := range ids {
		l, hasLease := all[id]
		s, open := inStream[id]
		sh := Shard{
			ID:         id,
			Position:   tAfter.Positions[id],
			LastCommit: lastCommit(tAfter.ShardLastCommit, id),
			Closed:     !open || s.Closed,
			Parents:    s.Parents,
			HasLease:   hasLease,
		}
		if hasLease {
			sh.Owner, sh.Counter, sh.Checkpoint, sh.CheckpointSub = l.Owner, l.Counter, l.Checkpoint, l.CheckpointSubSequence
			sh.Renewing = moved(prev, l)
			sh.CounterDelta = l.Counter - prev[id].Counter
			if len(l.ParentShardIDs) > 0 {
				sh.Parents = l.ParentShardIDs
			}
		}
		sh.State = shardState(sh, l, all, hasChildLease[id])
		if sh.Owner != "" && sh.State != StateFinished {
			w := workers[sh.Owner]
			if w == nil {
				w = &Worker{ID: sh.Owner}
				workers[sh.Owner] = w
			}
			w.Shards = append(w.Shards, id)
			w.Alive = w.Alive || sh.Renewing
		}
		r.Shards = append(r.Shards, sh)
	}
	for _, w := range workers {
		r.Workers = append(r.Workers, *w)
	}
	sort.Slice(r.Workers, func(i, j int) bool { return r.Workers[i].ID < r.Workers[j].ID })
	return r
}

// lastCommit is shard's last commit time, nil when the table keeps none.
func lastCommit(m map[string]time.Time, shard string) *time.Time {
	t, ok := m[shard]
	if !ok {
		return nil
	}
	return &t
}

// moved reports whether l changed since the first read: its counter moved
// (a renewal, checkpoint or take) or it is new.
func moved(prev map[string]lease.Lease, l lease.Lease) bool {
	p, ok := prev[l.Key]
	return !ok || p.Counter != l.Counter || p.Owner != l.Owner
}

// probeAll looks past the table's position of every shard not finished.
func probeAll(ctx context.Context, cfg Config, d Deps, r *Report, now time.Time) error {
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	errs := make([]error, len(r.Shards))
	for i := range r.Shards {
		sh := &r.Shards[i]
		if sh.State == StateFinished {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			errs[i] = probe(ctx, d, sh, now)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// probeReads bounds the GetRecords calls per shard: Kinesis may answer
// empty pages before reaching the records of a long-idle shard.
const probeReads = 3

// probe reads at most one record after the shard's table position (or
// where a never-committed shard starts) and records whether one is there
// and how long ago it arrived.
func probe(ctx context.Context, d Deps, sh *Shard, now time.Time) error {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(d.Stream), ShardId: aws.String(sh.ID)}
	switch {
	case sh.Position != "":
		// After "SEQ:SUB" the rest of aggregate SEQ is unread: probe at SEQ.
		seq, _, whole, err := commit.ParsePosition(sh.Position)
		if err != nil {
			return fmt.Errorf("shard %s: table position: %w", sh.ID, err)
		}
		in.ShardIteratorType, in.StartingSequenceNumber = ktypes.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
		if !whole {
			in.ShardIteratorType = ktypes.ShardIteratorTypeAtSequenceNumber
		}
	case sh.Checkpoint == lease.CheckpointLatest:
		return nil // starts at the tip: nothing is behind it
	case commit.IsPosition(sh.Checkpoint):
		// A KCL checkpoint (SEQ, SUB) covers the aggregate SEQ only up to
		// SUB, and the lease does not say how many user records it has:
		// probe at SEQ unless SUB is 0.
		in.ShardIteratorType, in.StartingSequenceNumber = ktypes.ShardIteratorTypeAfterSequenceNumber, aws.String(sh.Checkpoint)
		if sh.CheckpointSub > 0 {
			in.ShardIteratorType = ktypes.ShardIteratorTypeAtSequenceNumber
		}
	default:
		in.ShardIteratorType = ktypes.ShardIteratorTypeTrimHorizon
	}
	it, err := d.Records.GetShardIterator(ctx, in)
	if err != nil {
		var nf *ktypes.ResourceNotFoundException
		if errors.As(err, &nf) && sh.Closed {
			return nil // past retention: nothing left to read
		}
		return fmt.Errorf("shard %s: get iterator: %w", sh.ID, err)
	}
	iter := it.ShardIterator
	for range probeReads {
		if iter == nil {
			return nil // a closed shard read to its end
		}
		out, err := d.Records.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1)})
		if err != nil {
			return fmt.Errorf("shard %s: get records: %w", sh.ID, err)
		}
		if len(out.Records) > 0 {
			rec := out.Records[0]
			sh.Unread = true
			sh.NextSeq = aws.ToString(rec.SequenceNumber)
			if rec.ApproximateArrivalTimestamp != nil {
				at := *rec.ApproximateArrivalTimestamp
				sh.NextArrival = &at
				sh.Behind = max(now.Sub(at), 0)
			}
			return nil
		}
		if aws.ToInt64(out.MillisBehindLatest) == 0 {
			return nil
		}
		iter = out.NextShardIterator
	}
	// Only empty pages, yet behind the tip: records are there.
	sh.Unread = true
	return nil
}

// judge marks stalled positions, lists the problems (worst first) and
// orders the shards problems first.
func (r *Report) judge(cfg Config, posBefore map[string]string) {
	for i := range r.Shards {
		sh := &r.Shards[i]
		switch sh.State {
		case StateReading:
			if sh.Unread && sh.Behind > cfg.StallAfter && commit.CompareSeq(sh.Position, posBefore[sh.ID]) <= 0 {
				sh.State = StateStalled
				sh.Problem = fmt.Sprintf("table position did not move in %s while a record %s old waits after it (the owner %s renews its lease but does not commit)",
					cfg.Sample, sh.Behind.Round(time.Second), sh.Owner)
			}
		case StateStalled:
			sh.Problem = fmt.Sprintf("owner %s did not renew its lease in %s: the worker is dead or stuck; another worker takes the shard once the lease is --failover-time old",
				sh.Owner, cfg.Sample)
		case StateUnowned:
			if !sh.HasLease {
				sh.Problem = "no lease: no consumer has synced this shard into the lease table yet (is any consumer running for this --app-name?)"
			} else {
				sh.Problem = "no worker holds the lease: nobody reads this shard until a worker takes it"
			}
		}
		if sh.Problem != "" {
			r.Healthy = false
			r.Problems = append(r.Problems, Problem{Subject: sh.ID, Text: sh.State + ": " + sh.Problem, Critical: true})
		}
	}
	if len(r.Shards) == 0 {
		r.Healthy = false
		r.Problems = append(r.Problems, Problem{Subject: "stream", Text: "the stream has no shards and the lease table no shard leases", Critical: true})
	}
	if m := r.Maintainer; m != nil && !m.Renewing {
		r.Problems = append(r.Problems, Problem{Subject: "maintainer", Text: fmt.Sprintf("role holder %s did not renew the role in %s: table maintenance waits until another worker takes it", m.Owner, cfg.Sample)})
	}
	for _, w := range r.Workers {
		if !w.Alive {
			r.Problems = append(r.Problems, Problem{Subject: w.ID, Text: fmt.Sprintf("worker renewed none of its %d leases in %s", len(w.Shards), cfg.Sample)})
		}
	}
	slices.SortStableFunc(r.Shards, func(a, b Shard) int {
		switch {
		case (a.Problem != "") == (b.Problem != ""):
			return 0
		case a.Problem != "":
			return -1
		default:
			return 1
		}
	})
}
