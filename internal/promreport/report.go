package promreport

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/paystream/paystream/internal/quantile"
	"github.com/paystream/paystream/internal/units"
)

// Metric names the report reads. They are the consumer's (pkg/ingest,
// pkg/iceberg, pkg/dedup and the process collector).
const (
	MetricRead        = "paystream_ingest_records_read_total"
	MetricCommitted   = "paystream_ingest_records_committed_total"
	MetricRejected    = "paystream_ingest_records_rejected_total"
	MetricDuplicate   = "paystream_ingest_records_duplicate_total"
	MetricDedupDups   = "paystream_dedup_duplicates_total" // fallback while the pipeline does not count duplicates itself
	MetricFreshness   = "paystream_ingest_freshness_seconds"
	MetricBehind      = "paystream_ingest_behind_latest_seconds"
	MetricLastCommit  = "paystream_ingest_last_commit_timestamp_seconds"
	MetricCommits     = "paystream_sink_commits_total"
	MetricConflicts   = "paystream_sink_commit_conflicts_total"
	MetricDeadLetters = "paystream_deadletter_records_total"
	MetricStartTime   = "process_start_time_seconds"
)

// Report is what the demo prints. Counts are totals since the consumers
// started (one snapshot) or increases between two snapshots (Window > 0).
// Float fields are NaN when they cannot be computed.
type Report struct {
	Workers int
	// Window is the time between the two snapshots; 0 means one snapshot:
	// totals since start, and EventsPerSecond averaged from the earliest
	// process start to the latest commit.
	Window          time.Duration
	Read            float64
	Committed       float64
	Rejected        float64
	Duplicates      float64
	DeadLetters     float64
	Commits         float64
	Conflicts       float64
	EventsPerSecond float64
	RejectedRatio   float64
	FreshnessCount  float64
	FreshnessP50    float64
	FreshnessP99    float64
	MaxBehindLatest float64
}

// Build computes the report from after, minus before when before has any
// sources (then window is the time between them and rates are over it).
func Build(before, after Snapshot, window time.Duration) Report {
	r := Report{Workers: after.Sources(), Window: window}
	delta := func(name string) float64 {
		d := after.Sum(name) - before.Sum(name)
		if d < 0 { // a consumer restarted between the scrapes
			d = after.Sum(name)
		}
		return d
	}
	r.Read = delta(MetricRead)
	r.Committed = delta(MetricCommitted)
	r.Rejected = delta(MetricRejected)
	if after.Has(MetricDuplicate) {
		r.Duplicates = delta(MetricDuplicate)
	} else {
		r.Duplicates = delta(MetricDedupDups)
	}
	r.DeadLetters = delta(MetricDeadLetters)
	r.Commits = delta(MetricCommits)
	r.Conflicts = delta(MetricConflicts)
	r.RejectedRatio = math.NaN()
	if r.Read > 0 {
		r.RejectedRatio = r.Rejected / r.Read
	}
	r.EventsPerSecond = math.NaN()
	if before.Sources() > 0 && window > 0 {
		r.EventsPerSecond = r.Committed / window.Seconds()
	} else if start, ok := after.Min(MetricStartTime); ok {
		if last, ok := after.Max(MetricLastCommit); ok && last > start {
			r.EventsPerSecond = r.Committed / (last - start)
		}
	}
	fresh := quantile.SubBuckets(after.Histogram(MetricFreshness), before.Histogram(MetricFreshness))
	r.FreshnessP50, r.FreshnessP99 = math.NaN(), math.NaN()
	if len(fresh) > 0 {
		r.FreshnessCount = fresh[len(fresh)-1].Count
		r.FreshnessP50, _ = quantile.Buckets(0.5, fresh)
		r.FreshnessP99, _ = quantile.Buckets(0.99, fresh)
	}
	r.MaxBehindLatest = math.NaN()
	if v, ok := after.Max(MetricBehind); ok {
		r.MaxBehindLatest = v
	}
	return r
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	workers := "1 consumer"
	if r.Workers != 1 {
		workers = fmt.Sprintf("%d consumers", r.Workers)
	}
	if r.Window > 0 {
		fmt.Fprintf(&b, "paystream consumer metrics (%s, over %s)\n", workers, r.Window.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "paystream consumer metrics (%s, since start)\n", workers)
	}
	rate := "n/a"
	if !math.IsNaN(r.EventsPerSecond) {
		rate = strconv.FormatFloat(r.EventsPerSecond, 'f', 1, 64)
		if r.Window == 0 {
			rate += " (average from start to the last commit)"
		}
	}
	fmt.Fprintf(&b, "  events/s committed   %s\n", rate)
	fmt.Fprintf(&b, "  records read         %s\n", count(r.Read))
	fmt.Fprintf(&b, "  rows committed       %s\n", count(r.Committed))
	fmt.Fprintf(&b, "  rejected             %s (%s of read; %s in the dead-letter store)\n", count(r.Rejected), pct(r.RejectedRatio), count(r.DeadLetters))
	fmt.Fprintf(&b, "  duplicates dropped   %s\n", count(r.Duplicates))
	fmt.Fprintf(&b, "  freshness            p50 %s  p99 %s  (%s events; Kinesis arrival to commit)\n", secs(r.FreshnessP50), secs(r.FreshnessP99), count(r.FreshnessCount))
	fmt.Fprintf(&b, "  commits              %s (%s conflicts)\n", count(r.Commits), count(r.Conflicts))
	fmt.Fprintf(&b, "  behind latest now    %s (worst shard)\n", secs(r.MaxBehindLatest))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the report as one JSON object; values that cannot be
// computed are null.
func (r Report) WriteJSON(w io.Writer) error {
	num := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"workers":                   r.Workers,
		"window_seconds":            r.Window.Seconds(),
		"records_read":              r.Read,
		"records_committed":         r.Committed,
		"records_rejected":          r.Rejected,
		"records_duplicate":         r.Duplicates,
		"dead_letter_records":       r.DeadLetters,
		"commits":                   r.Commits,
		"commit_conflicts":          r.Conflicts,
		"events_per_second":         num(r.EventsPerSecond),
		"rejected_ratio":            num(r.RejectedRatio),
		"freshness_observations":    r.FreshnessCount,
		"freshness_p50_seconds":     num(r.FreshnessP50),
		"freshness_p99_seconds":     num(r.FreshnessP99),
		"max_behind_latest_seconds": num(r.MaxBehindLatest),
	})
}

func count(v float64) string {
	return units.Count(int64(math.Round(v)))
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " s"
}
