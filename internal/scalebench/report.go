package scalebench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Measure is what one measurement (one worker count) counted. Counts
// marked "in the window" are increases while the producer ran.
type Measure struct {
	Workers   int
	Window    time.Duration // how long the producer ran
	Snapshots int64         // table snapshots made in the window
	Attempts  float64       // catalog CommitTable calls in the window
	Conflicts float64       // commit attempts refused as conflicts in the window
	Committed float64       // rows committed in the window
	// FreshnessP50 and FreshnessP99 are seconds from Kinesis arrival to
	// commit over every event of the run (NaN when none was observed).
	FreshnessP50, FreshnessP99 float64
	// SteadyP50 and SteadyP99 are the same over the events committed
	// after the producer's first Config.Skip (NaN when Skip is 0).
	SteadyP50, SteadyP99 float64
	Dropped              float64       // batches dropped or shards given up over the run (position moved, stall)
	Drain                time.Duration // from the producer's end until every event was committed
	Tally
}

// Tally compares the table's event ids with those produced.
type Tally struct {
	Produced int64 // distinct event ids the stream acknowledged
	Rows     int64 // rows in the table
	Distinct int64 // distinct event ids in the table
	Missing  int64 // produced ids not in the table
	Extra    int64 // ids in the table never produced
}

// Exact reports whether the table holds every produced id exactly once
// and nothing else.
func (t Tally) Exact() bool {
	return t.Missing == 0 && t.Extra == 0 && t.Rows == t.Distinct && t.Distinct == t.Produced
}

// CountIDs tallies the table's ids against the produced ones.
func CountIDs(produced map[string]bool, table []string) Tally {
	t := Tally{Produced: int64(len(produced)), Rows: int64(len(table))}
	seen := make(map[string]bool, len(table))
	for _, id := range table {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !produced[id] {
			t.Extra++
		}
	}
	t.Distinct = int64(len(seen))
	for id := range produced {
		if !seen[id] {
			t.Missing++
		}
	}
	return t
}

// Result is a Measure with its rates.
type Result struct {
	Measure
	CommitsPerSec   float64 // table snapshots per second
	AttemptsPerSec  float64
	ConflictsPerSec float64
	ConflictShare   float64 // conflicts per attempt, NaN without attempts
	EventsPerSec    float64 // rows committed per second
	RowsPerCommit   float64 // NaN without commits
}

// Summarize turns counts into rates over the measure's window.
func Summarize(m Measure) Result {
	r := Result{Measure: m, ConflictShare: math.NaN(), RowsPerCommit: math.NaN()}
	if s := m.Window.Seconds(); s > 0 {
		r.CommitsPerSec = float64(m.Snapshots) / s
		r.AttemptsPerSec = m.Attempts / s
		r.ConflictsPerSec = m.Conflicts / s
		r.EventsPerSec = m.Committed / s
	}
	if m.Attempts > 0 {
		r.ConflictShare = m.Conflicts / m.Attempts
	}
	if m.Snapshots > 0 {
		r.RowsPerCommit = m.Committed / float64(m.Snapshots)
	}
	return r
}

var columns = []string{"workers", "commits/s", "attempts/s", "conflicts/s", "conflicts", "events/s", "rows/commit", "fresh p50", "fresh p99", "steady p50", "steady p99", "drain", "dropped", "rows=distinct=produced"}

func (r Result) cells() []string {
	exact := fmt.Sprintf("yes (%d)", r.Produced)
	if !r.Exact() {
		exact = fmt.Sprintf("NO: %d rows, %d distinct, %d produced, %d missing, %d extra", r.Rows, r.Distinct, r.Produced, r.Missing, r.Extra)
	}
	return []string{
		fmt.Sprint(r.Workers), fmt.Sprintf("%.2f", r.CommitsPerSec), fmt.Sprintf("%.2f", r.AttemptsPerSec),
		fmt.Sprintf("%.2f", r.ConflictsPerSec), percent(r.ConflictShare), fmt.Sprintf("%.0f", r.EventsPerSec),
		fmt.Sprintf("%.0f", r.RowsPerCommit), seconds(r.FreshnessP50), seconds(r.FreshnessP99), seconds(r.SteadyP50), seconds(r.SteadyP99),
		r.Drain.Round(100 * time.Millisecond).String(), fmt.Sprintf("%.0f", r.Dropped), exact,
	}
}

func percent(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func seconds(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.2fs", v)
}

// WriteText prints the results as an aligned table.
func WriteText(w io.Writer, rs []Result) {
	rows := [][]string{columns}
	for _, r := range rs {
		rows = append(rows, r.cells())
	}
	width := make([]int, len(columns))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			fmt.Fprintf(&b, "%-*s  ", width[i], c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// WriteMarkdown writes the run's settings and the results as a Markdown table.
func WriteMarkdown(w io.Writer, cfg Config, rs []Result) {
	fmt.Fprintf(w, "mode %s, %d shards, %.0f events/s, %s per worker count, commit delay %s, steady state after the first %s\n\n",
		cfg.Mode, cfg.Shards, cfg.Rate, cfg.Duration, cfg.CommitDelay, cfg.Skip)
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(columns, " | "), strings.Repeat("---|", len(columns)))
	for _, r := range rs {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r.cells(), " | "))
	}
}

// WriteJSON writes the run's settings and the results as JSON; NaN values
// are null.
func WriteJSON(w io.Writer, cfg Config, rs []Result) error {
	out := map[string]any{
		"mode": cfg.Mode, "shards": cfg.Shards, "rate": cfg.Rate,
		"seconds": cfg.Duration.Seconds(), "commit_delay_seconds": cfg.CommitDelay.Seconds(),
		"skip_seconds": cfg.Skip.Seconds(),
	}
	var list []map[string]any
	for _, r := range rs {
		list = append(list, map[string]any{
			"workers": r.Workers, "window_seconds": r.Window.Seconds(), "snapshots": r.Snapshots,
			"attempts": r.Attempts, "conflicts": r.Conflicts, "committed": r.Committed,
			"commits_per_second": r.CommitsPerSec, "attempts_per_second": r.AttemptsPerSec,
			"conflicts_per_second": r.ConflictsPerSec, "conflict_share": num(r.ConflictShare),
			"events_per_second": r.EventsPerSec, "rows_per_commit": num(r.RowsPerCommit),
			"freshness_p50_seconds": num(r.FreshnessP50), "freshness_p99_seconds": num(r.FreshnessP99),
			"steady_p50_seconds": num(r.SteadyP50), "steady_p99_seconds": num(r.SteadyP99),
			"dropped": r.Dropped, "drain_seconds": r.Drain.Seconds(),
			"produced": r.Produced, "rows": r.Rows, "distinct": r.Distinct,
			"missing": r.Missing, "extra": r.Extra, "exact": r.Exact(),
		})
	}
	out["results"] = list
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func num(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}
