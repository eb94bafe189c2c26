//go:build linux

package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// TableHeader is the header of the per-trial results table.
const TableHeader = "seed\tshards\tconsumers\tfaults\tproduced\tvalid ids\trows\tmissing\tduplicated\tdead-lettered\torder pairs\tdrain\tresult"

// TableRow is r as one row of the results table.
func (r *Report) TableRow() string {
	res := r.Result
	if res == nil {
		res = &Result{}
	}
	verdict := "ok"
	switch {
	case r.Err != nil:
		verdict = "ERROR: " + trunc(r.Err.Error(), 60)
	case !r.Drained:
		verdict = "FAIL (not drained)"
	case !res.OK():
		verdict = "FAIL"
	}
	faults := FaultSummary(r.FaultKinds)
	if faults == "" {
		faults = "-"
	}
	return fmt.Sprintf("%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%d\t%s\t%s",
		r.Config.Seed, r.Config.Shards, r.Config.Consumers, faults, res.Produced, res.Valid, res.Rows,
		res.Missing, res.Duplicated, res.DeadLettered, res.InvalidSent, res.OrderPairs,
		r.DrainTime.Round(100*time.Millisecond), verdict)
}

// WriteTable prints reports as an aligned table.
func WriteTable(w io.Writer, reports []*Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, TableHeader)
	for _, r := range reports {
		fmt.Fprintln(tw, r.TableRow())
	}
	_ = tw.Flush()
}

// Details describes one trial for a person: faults, what the consumers
// complained about, and the findings.
func (r *Report) Details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "trial %s\n", r.Config)
	fmt.Fprintf(&b, "  folder: %s\n", r.Dir)
	fmt.Fprintf(&b, "  producer: %d sent (%d unique, %d duplicates, %d invalid) at %.0f/s; failed %d, unknown outcomes %d\n",
		r.Producer.Sent, r.Producer.UniqueEventIDs, r.Producer.DuplicatesSent, r.Producer.InvalidSent,
		r.Producer.AchievedRate, r.Producer.FailedAfterRetries, r.Producer.UnknownOutcomeEntries)
	if r.Config.Aggregate {
		fmt.Fprintf(&b, "  producer shard map: %d refreshes, %d Kinesis records landed off their predicted shard, %d events pinned\n",
			r.Producer.ShardMapRefreshes, r.Producer.MisroutedRecords, r.Producer.PinnedEvents)
	}
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "  fault: %s\n", f)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "  skipped: %s\n", s)
	}
	fmt.Fprintf(&b, "  proxy: %+v\n", r.Proxy)
	fmt.Fprintf(&b, "  crashes %d, longest SIGTERM exit %s, slow exits %d, reshards %d, drain %s, elapsed %s, load %s → %s\n",
		r.Crashes, r.MaxShutdown.Round(time.Millisecond), r.SlowExits, r.Reshards,
		r.DrainTime.Round(time.Millisecond), r.Elapsed.Round(time.Second), r.LoadStart, r.LoadEnd)
	for _, l := range r.TopLogs(8) {
		fmt.Fprintf(&b, "  log: %s\n", l)
	}
	if r.Err != nil {
		fmt.Fprintf(&b, "  harness error: %v\n", r.Err)
	}
	if r.Result != nil && len(r.Aged) > 0 {
		fmt.Fprintf(&b, "  aged out: %v; %d valid events sent only there not stored (expected)\n", r.Aged, r.Result.Aged)
	}
	if r.Result != nil {
		for _, p := range r.Result.Problems {
			fmt.Fprintf(&b, "  problem: %s\n", p)
		}
	}
	return b.String()
}

// Summary totals a run of trials: faults applied by kind, what the
// consumers logged about them, and the checker's verdicts.
func Summary(reports []*Report) string {
	var (
		b                                     strings.Builder
		kinds                                 []string
		logs                                  = map[string]int{}
		failed, crashes, slow, produced, rows int
		missing, dups, dead, invalid, pairs   int
		maxDrain, maxExit                     time.Duration
		proxy                                 ProxyStats
		aggregated                            bool
		refreshes, misrouted, pinned          int64
	)
	for _, r := range reports {
		kinds = append(kinds, r.FaultKinds...)
		for k, v := range r.LogCounts {
			logs[k] += v
		}
		if r.Failed() {
			failed++
		}
		crashes += r.Crashes
		slow += r.SlowExits
		maxDrain = max(maxDrain, r.DrainTime)
		maxExit = max(maxExit, r.MaxShutdown)
		proxy.add(r.Proxy)
		aggregated = aggregated || r.Config.Aggregate
		refreshes += r.Producer.ShardMapRefreshes
		misrouted += r.Producer.MisroutedRecords
		pinned += r.Producer.PinnedEvents
		if res := r.Result; res != nil {
			produced += res.Produced
			rows += res.Rows
			missing += res.Missing
			dups += res.Duplicated
			dead += res.DeadLettered
			invalid += res.InvalidSent
			pairs += res.OrderPairs
		}
	}
	fmt.Fprintf(&b, "%d trials, %d failed; %d faults applied: %s\n", len(reports), failed, len(kinds), FaultSummary(kinds))
	fmt.Fprintf(&b, "records produced %d, rows %d, missing %d, duplicated %d, dead-lettered %d of %d invalid, parent/child order pairs checked %d\n",
		produced, rows, missing, dups, dead, invalid, pairs)
	if aggregated {
		fmt.Fprintf(&b, "producer shard map: %d refreshes, %d Kinesis records landed off their predicted shard, %d events pinned\n",
			refreshes, misrouted, pinned)
	}
	fmt.Fprintf(&b, "consumer crashes %d, SIGTERM exits over the shutdown timeout %d (longest %s), longest drain %s\n",
		crashes, slow, maxExit.Round(time.Millisecond), maxDrain.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "proxy: %d requests delayed, %d failed before and %d after reaching the emulator, %d throttled, %d connections reset\n",
		proxy.Delayed, proxy.Errors, proxy.ErrorsAfterApply, proxy.Throttled, proxy.Resets)
	fmt.Fprintf(&b, "injected: %s\n", injectedSummary(proxy.Injected))
	all := &Report{LogCounts: logs}
	for _, l := range all.TopLogs(12) {
		fmt.Fprintf(&b, "consumer log: %s\n", l)
	}
	return b.String()
}

// injectedSummary lists injected failures by service, operation and kind,
// e.g. "s3 PUT throttle×12, glue UpdateTable error×3".
func injectedSummary(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
