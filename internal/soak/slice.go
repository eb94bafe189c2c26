package soak

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Slice is what the run measured when it passed one tenth of its commits.
type Slice struct {
	Pct           int           // 10, 20, … 100
	Commits       float64       // table commits so far (both workers)
	Elapsed       time.Duration // since the producer started
	P50, P99      float64       // commit duration in seconds, over this slice only
	CommitsPerSec float64       // over this slice only
	MetadataBytes int64         // newest metadata.json
	MetadataFiles int64         // metadata.json files in the warehouse
	LiveFiles     int64         // data files of the current snapshot
	FileBound     int64         // most live files allowed (see Limits)
	QueryTime     time.Duration // the analyst query through the query binary
	RSS           []int64       // bytes, one per worker
}

// Limits are the targets a soak run must meet. Ratios compare the last
// slice with the first.
type Limits struct {
	P50Ratio    float64 // commit p50, last/first
	QueryRatio  float64 // query time, last/first
	RSSRatio    float64 // each worker's RSS, last/first
	MetadataMax int64   // newest metadata.json, at every sample
	// MetadataFilesMax bounds the metadata.json files in the warehouse at
	// every slice: the table's metadata log (8) and current file, the
	// refused commit attempts' files since the last maintenance run, and
	// the dead-letter table's few.
	MetadataFilesMax int64
}

// DefaultLimits are the targets make soak checks.
var DefaultLimits = Limits{P50Ratio: 1.2, QueryRatio: 1.5, RSSRatio: 1.5, MetadataMax: 1 << 20, MetadataFilesMax: 200}

// FileBound is the most live data files a table may hold without
// compaction falling behind: two per partition plus every file the last
// recentBatches batches that landed could have added (one per partition
// each). A batch is a commit with per-worker commits; the single
// committer lands several workers' batches in one commit.
func FileBound(partitions, recentBatches int64) int64 {
	return 2*partitions + recentBatches*partitions
}

// Verdict is one target's outcome.
type Verdict struct {
	Target string
	Pass   bool
	Detail string
}

// Evaluate checks slices (in order, at least one) against lim. maxMetadata
// is the largest metadata.json seen at any sample of the run.
func Evaluate(sl []Slice, maxMetadata int64, lim Limits) []Verdict {
	if len(sl) == 0 {
		return []Verdict{{Target: "slices", Detail: "no slice was measured"}}
	}
	first, last := sl[0], sl[len(sl)-1]
	out := []Verdict{
		ratio("commit p50 last/first", last.P50, first.P50, lim.P50Ratio),
		{
			Target: "metadata.json ≤ " + fmtBytes(lim.MetadataMax),
			Pass:   maxMetadata <= lim.MetadataMax,
			Detail: "largest seen " + fmtBytes(maxMetadata),
		},
		metadataFilesVerdict(sl, lim.MetadataFilesMax),
		fileVerdict(sl),
		ratio("query time last/first", last.QueryTime.Seconds(), first.QueryTime.Seconds(), lim.QueryRatio),
	}
	for i := range min(len(first.RSS), len(last.RSS)) {
		out = append(out, ratio(fmt.Sprintf("RSS worker %d last/first", i+1), float64(last.RSS[i]), float64(first.RSS[i]), lim.RSSRatio))
	}
	return out
}

func ratio(target string, last, first, limit float64) Verdict {
	r := last / first
	v := Verdict{Target: fmt.Sprintf("%s ≤ %.2g", target, limit), Detail: fmt.Sprintf("%.3g / %.3g = %.2f", last, first, r)}
	v.Pass = first > 0 && !math.IsNaN(r) && r <= limit
	return v
}

func metadataFilesVerdict(sl []Slice, limit int64) Verdict {
	v := Verdict{Target: fmt.Sprintf("metadata.json files ≤ %d at every slice", limit), Pass: true}
	most := sl[0]
	for _, s := range sl {
		if s.MetadataFiles > most.MetadataFiles {
			most = s
		}
	}
	v.Pass = most.MetadataFiles <= limit
	v.Detail = fmt.Sprintf("most %d, at %d%%", most.MetadataFiles, most.Pct)
	return v
}

func fileVerdict(sl []Slice) Verdict {
	v := Verdict{Target: "live data files ≤ 2×partitions + partitions×(batches landed in the last 2 min)", Pass: true}
	for _, s := range sl {
		if s.LiveFiles > s.FileBound {
			v.Pass = false
			v.Detail = fmt.Sprintf("%d%%: %d files > bound %d", s.Pct, s.LiveFiles, s.FileBound)
			return v
		}
	}
	last := sl[len(sl)-1]
	v.Detail = fmt.Sprintf("last %d ≤ bound %d", last.LiveFiles, last.FileBound)
	return v
}

// Failed reports whether any verdict failed.
func Failed(vs []Verdict) bool {
	return slices.ContainsFunc(vs, func(v Verdict) bool { return !v.Pass })
}

// Header is the column line WriteSlice's lines follow.
const Header = "slice commits elapsed  p50_ms  p99_ms commits/s  meta_KiB meta_files live_files  bound query_ms  rss_MiB"

// WriteSlice prints s as one line under Header.
func WriteSlice(w io.Writer, s Slice) {
	rss := make([]string, len(s.RSS))
	for i, b := range s.RSS {
		rss[i] = fmt.Sprintf("%.0f", float64(b)/(1<<20))
	}
	fmt.Fprintf(w, "%4d%% %7.0f %7s %7.1f %7.1f %9.2f %9.1f %10d %10d %6d %8d  %s\n",
		s.Pct, s.Commits, s.Elapsed.Round(time.Second), s.P50*1000, s.P99*1000, s.CommitsPerSec,
		float64(s.MetadataBytes)/1024, s.MetadataFiles, s.LiveFiles, s.FileBound, s.QueryTime.Milliseconds(), strings.Join(rss, "/"))
}

// WriteVerdicts prints one PASS/FAIL line per verdict.
func WriteVerdicts(w io.Writer, vs []Verdict) {
	for _, v := range vs {
		word := "PASS"
		if !v.Pass {
			word = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s: %s\n", word, v.Target, v.Detail)
	}
}

func fmtBytes(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}
