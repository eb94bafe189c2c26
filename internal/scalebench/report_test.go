package scalebench

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		m    Measure
		want Result
	}{
		{
			name: "rates over the window",
			m:    Measure{Workers: 4, Window: 10 * time.Second, Snapshots: 16, Attempts: 51, Conflicts: 32, Committed: 9180},
			want: Result{CommitsPerSec: 1.6, AttemptsPerSec: 5.1, ConflictsPerSec: 3.2, ConflictShare: 32.0 / 51, EventsPerSec: 918, RowsPerCommit: 573.75},
		},
		{
			name: "no attempts and no commits",
			m:    Measure{Workers: 1, Window: 2 * time.Second},
			want: Result{ConflictShare: math.NaN(), RowsPerCommit: math.NaN()},
		},
		{
			name: "no window",
			m:    Measure{Workers: 1, Snapshots: 3, Attempts: 4, Committed: 30},
			want: Result{ConflictShare: 0, RowsPerCommit: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.m)
			check := func(name string, got, want float64) {
				if !(got == want || math.Abs(got-want) < 1e-9 || (math.IsNaN(got) && math.IsNaN(want))) {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			check("CommitsPerSec", got.CommitsPerSec, tt.want.CommitsPerSec)
			check("AttemptsPerSec", got.AttemptsPerSec, tt.want.AttemptsPerSec)
			check("ConflictsPerSec", got.ConflictsPerSec, tt.want.ConflictsPerSec)
			check("ConflictShare", got.ConflictShare, tt.want.ConflictShare)
			check("EventsPerSec", got.EventsPerSec, tt.want.EventsPerSec)
			check("RowsPerCommit", got.RowsPerCommit, tt.want.RowsPerCommit)
		})
	}
}

func TestCountIDs(t *testing.T) {
	produced := map[string]bool{"a": true, "b": true, "c": true}
	tests := []struct {
		name  string
		table []string
		want  Tally
		exact bool
	}{
		{"exactly once", []string{"c", "a", "b"}, Tally{Produced: 3, Rows: 3, Distinct: 3}, true},
		{"a duplicate", []string{"a", "b", "c", "b"}, Tally{Produced: 3, Rows: 4, Distinct: 3}, false},
		{"one missing", []string{"a", "b"}, Tally{Produced: 3, Rows: 2, Distinct: 2, Missing: 1}, false},
		{"one replaced by a stranger", []string{"a", "b", "x"}, Tally{Produced: 3, Rows: 3, Distinct: 3, Missing: 1, Extra: 1}, false},
		{"empty table", nil, Tally{Produced: 3, Missing: 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CountIDs(produced, tt.table)
			if got != tt.want {
				t.Errorf("CountIDs = %+v, want %+v", got, tt.want)
			}
			if got.Exact() != tt.exact {
				t.Errorf("Exact() = %v, want %v", got.Exact(), tt.exact)
			}
		})
	}
}

func sampleResults() []Result {
	return []Result{
		Summarize(Measure{Workers: 1, Window: 10 * time.Second, Snapshots: 9, Attempts: 9, Committed: 16830,
			FreshnessP50: 1.18, FreshnessP99: 2.8, SteadyP50: 1.04, SteadyP99: 2.31, Drain: 1300 * time.Millisecond, Tally: Tally{Produced: 5, Rows: 5, Distinct: 5}}),
		Summarize(Measure{Workers: 4, Window: 10 * time.Second, FreshnessP50: math.NaN(), FreshnessP99: math.NaN(),
			SteadyP50: math.NaN(), SteadyP99: math.NaN(), Tally: Tally{Produced: 5, Rows: 6, Distinct: 5}}),
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	WriteText(&b, sampleResults())
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want a header and 2 rows:\n%s", len(lines), b.String())
	}
	for _, want := range []string{"0.90", "1683", "1870", "1.18s", "2.80s", "1.04s", "2.31s", "1.3s", "yes (5)"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row 1 lacks %q: %s", want, lines[1])
		}
	}
	for _, want := range []string{"n/a", "NO: 6 rows, 5 distinct, 5 produced"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row 2 lacks %q: %s", want, lines[2])
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	WriteMarkdown(&b, DefaultConfig(), sampleResults())
	out := b.String()
	for _, want := range []string{"mode worker, 16 shards, 2000 events/s, 1m0s per worker count, commit delay 300ms, steady state after the first 0s", "| workers | commits/s |", "|---|", "| 1 | 0.90 |"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

// NaN values (no freshness observed) become null: JSON has no NaN.
func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, DefaultConfig(), sampleResults()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mode    string `json:"mode"`
		Results []struct {
			Workers int      `json:"workers"`
			Commits float64  `json:"commits_per_second"`
			P99     *float64 `json:"freshness_p99_seconds"`
			Steady  *float64 `json:"steady_p99_seconds"`
			Exact   bool     `json:"exact"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if got.Mode != "worker" || len(got.Results) != 2 {
		t.Fatalf("got %+v", got)
	}
	r0, r1 := got.Results[0], got.Results[1]
	if r0.Workers != 1 || r0.Commits != 0.9 || r0.P99 == nil || *r0.P99 != 2.8 || r0.Steady == nil || *r0.Steady != 2.31 || !r0.Exact {
		t.Errorf("results[0] = %+v", r0)
	}
	if r1.P99 != nil || r1.Steady != nil || r1.Exact {
		t.Errorf("results[1] = %+v, want no p99 and not exact", r1)
	}
}
