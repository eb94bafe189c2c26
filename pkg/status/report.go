package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what Check found. Its JSON form (WriteJSON) is stable for
// scripts: field names as tagged, times RFC 3339, durations in seconds.
type Report struct {
	// At is when the second read ended; Sample how long apart the reads were.
	At     time.Time     `json:"at"`
	Sample time.Duration `json:"-"`
	// Healthy is false when a shard is stalled or unowned, or the stream has
	// no shards: the command then exits non-zero.
	Healthy bool `json:"healthy"`
	// Problems, worst first; Critical ones make the report unhealthy.
	Problems []Problem `json:"problems"`
	// LastCommit is the table's current snapshot time; nil before the
	// first commit.
	LastCommit *time.Time `json:"last_commit,omitempty"`
	// Maintainer holds the maintainer role; nil when nobody does.
	Maintainer *Role `json:"maintainer,omitempty"`
	// Shards with problems first, then by id.
	Shards []Shard `json:"shards"`
	// Workers are the owners of shard leases, by id.
	Workers []Worker `json:"workers"`
}

// Problem is one finding, about a shard, a worker, the maintainer or the
// stream (Subject).
type Problem struct {
	Subject  string `json:"subject"`
	Text     string `json:"text"`
	Critical bool   `json:"critical"`
}

// Shard is one shard's status.
type Shard struct {
	ID    string `json:"shard"`
	State string `json:"state"`
	// Problem explains a stalled or unowned state; empty otherwise.
	Problem string `json:"problem,omitempty"`
	// Owner is the lease owner ("" unowned); Counter the lease counter at
	// the second read, CounterDelta its change over the sample; Renewing
	// whether it changed (the owner is alive).
	Owner        string `json:"owner"`
	Counter      int64  `json:"lease_counter"`
	CounterDelta int64  `json:"lease_counter_delta"`
	Renewing     bool   `json:"renewing"`
	HasLease     bool   `json:"has_lease"`
	// Checkpoint is the lease table's (informational) checkpoint, and
	// CheckpointSub its checkpointSubSequenceNumber (the last user record
	// recorded of KPL aggregate Checkpoint; 0 for a plain record).
	Checkpoint    string `json:"checkpoint,omitempty"`
	CheckpointSub int64  `json:"checkpoint_sub_sequence_number,omitempty"`
	// Position is the last position committed to the table ("SEQ", or
	// "SEQ:SUB" inside a KPL aggregate);
	// LastCommit when (nil when no snapshot the table keeps moved it).
	Position   string     `json:"position,omitempty"`
	LastCommit *time.Time `json:"last_commit,omitempty"`
	// Closed: split or merged (no new records) or gone from the stream.
	Closed  bool     `json:"closed"`
	Parents []string `json:"parents,omitempty"`
	// Unread: the stream holds a record after Position. NextSeq and
	// NextArrival are that record's; Behind is how long ago it arrived (0
	// when nothing is unread).
	Unread      bool          `json:"unread"`
	NextSeq     string        `json:"next_sequence,omitempty"`
	NextArrival *time.Time    `json:"next_arrival,omitempty"`
	Behind      time.Duration `json:"-"`
}

// Worker is one lease owner and the open shards it holds.
type Worker struct {
	ID     string   `json:"worker"`
	Shards []string `json:"shards"`
	// Alive: at least one of its leases moved during the sample.
	Alive bool `json:"alive"`
}

// Role is the holder of a role lease.
type Role struct {
	Owner    string `json:"owner"`
	Counter  int64  `json:"lease_counter"`
	Renewing bool   `json:"renewing"`
}

// MarshalJSON adds the durations in seconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		SampleSeconds float64 `json:"sample_seconds"`
	}{plain(r), r.Sample.Seconds()})
}

// MarshalJSON adds Behind in seconds.
func (s Shard) MarshalJSON() ([]byte, error) {
	type plain Shard
	return json.Marshal(struct {
		plain
		BehindSeconds float64 `json:"behind_seconds"`
	}{plain(s), s.Behind.Seconds()})
}

// WriteJSON writes r as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for a person: a summary line, the problems, a table
// of shards and one of workers. Positions are whole sequence numbers (56
// digits on Kinesis), with ":SUB" inside a KPL aggregate, to be copied into
// queries or logs.
func (r Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	verdict := "OK"
	if !r.Healthy {
		verdict = "UNHEALTHY"
	}
	fmt.Fprintf(&b, "%s  at %s, leases sampled over %s\n", verdict, r.At.UTC().Format(time.RFC3339), r.Sample)
	if r.LastCommit != nil {
		fmt.Fprintf(&b, "last commit: %s (%s ago)\n", r.LastCommit.UTC().Format(time.RFC3339), r.At.Sub(*r.LastCommit).Round(time.Second))
	} else {
		fmt.Fprintf(&b, "last commit: none yet\n")
	}
	if m := r.Maintainer; m != nil {
		fmt.Fprintf(&b, "maintainer:  %s (%s)\n", m.Owner, renewing(m.Renewing))
	} else {
		fmt.Fprintf(&b, "maintainer:  none\n")
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "\nPROBLEMS\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s  %s\n", p.Subject, p.Text)
		}
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tSTATE\tOWNER\tLEASE\tPOSITION\tCOMMITTED\tUNREAD\tBEHIND")
	for _, s := range r.Shards {
		owner, lease := s.Owner, "-"
		if owner == "" {
			owner = "-"
		}
		if s.HasLease {
			lease = fmt.Sprintf("%d (+%d, %s)", s.Counter, s.CounterDelta, renewing(s.Renewing))
		}
		unread, behind := "no", "-"
		if s.Unread {
			unread = "yes"
			if s.NextArrival != nil {
				behind = s.Behind.Round(time.Second).String()
			}
		}
		if s.State == StateFinished {
			unread = "-"
		}
		committed := "-"
		if s.LastCommit != nil {
			committed = r.At.Sub(*s.LastCommit).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, owner, lease, orDash(s.Position), committed, unread, behind)
	}
	_ = tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tALIVE\tSHARDS")
	if len(r.Workers) == 0 {
		fmt.Fprintln(tw, "(none)\t\t")
	}
	for _, wk := range r.Workers {
		alive := "yes"
		if !wk.Alive {
			alive = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d: %s\n", wk.ID, alive, len(wk.Shards), strings.Join(wk.Shards, ", "))
	}
	_ = tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func renewing(ok bool) string {
	if ok {
		return "renewing"
	}
	return "NOT renewing"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
