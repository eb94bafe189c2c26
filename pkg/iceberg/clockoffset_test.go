package iceberg

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// A commit through WithClockOffset is that of a process whose clock is off
// by the offset: iceberg-go refuses a snapshot stamped more than a minute
// before the table's last one, whichever side the skewed writer is on.
func TestClockOffsetCatalog(t *testing.T) {
	cases := []struct {
		name     string
		offset   time.Duration
		skewedAt int  // which of the two commits goes through the wrapper (0 or 1; 2: both)
		refused  bool // the second commit gets ErrClockSkew
	}{
		{"ahead then plain", 90 * time.Second, 0, true},
		{"plain then behind", -90 * time.Second, 1, true},
		{"ahead within a minute then plain", 50 * time.Second, 0, false},
		{"plain then behind within a minute", -50 * time.Second, 1, false},
		{"behind within a minute then plain", -50 * time.Second, 0, false},
		{"plain then ahead within a minute", 50 * time.Second, 1, false},
		{"ahead then ahead", 90 * time.Second, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newSQLiteEnv(t)
			ctx := context.Background()
			plain := NewSink(env.cat, env.ident, SinkConfig{MinBackoff: time.Millisecond})
			skewed := NewSink(WithClockOffset(env.cat, tc.offset), env.ident, SinkConfig{MinBackoff: time.Millisecond})
			// A first snapshot, so that both commits below follow one.
			if _, err := plain.Commit(ctx, makeBatch(t, "s", "", 1, 5)); err != nil {
				t.Fatal(err)
			}
			sinks := [2]*Sink{plain, plain}
			if tc.skewedAt == 2 {
				sinks = [2]*Sink{skewed, skewed}
			} else {
				sinks[tc.skewedAt] = skewed
			}
			last := 5
			for i, s := range sinks {
				before := time.Now()
				_, err := s.Commit(ctx, makeBatch(t, "s", strconv.Itoa(last), last+1, 5))
				after := time.Now()
				if i == 1 && tc.refused {
					if !errors.Is(err, ErrClockSkew) {
						t.Fatalf("commit %d: %v; want ErrClockSkew", i, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("commit %d: %v", i, err)
				}
				last += 5
				// The snapshot landed stamped as the writer's clock reads.
				offset := time.Duration(0)
				if i == tc.skewedAt || tc.skewedAt == 2 {
					offset = tc.offset
				}
				tbl, err := env.cat.LoadTable(ctx, env.ident)
				if err != nil {
					t.Fatal(err)
				}
				ts := tbl.CurrentSnapshot().TimestampMs
				if lo, hi := before.Add(offset).UnixMilli(), after.Add(offset).UnixMilli(); ts < lo || ts > hi {
					t.Errorf("commit %d stamped %d, want within [%d, %d] (offset %s)", i, ts, lo, hi, offset)
				}
				if got := tbl.Metadata().LastUpdatedMillis(); got != ts {
					t.Errorf("commit %d: last-updated-ms %d, want the snapshot's %d", i, got, ts)
				}
			}
			want := ids("s", 1, last)
			assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident), want)
		})
	}
}

// A zero offset is no wrapper at all.
func TestWithClockOffsetZeroIsIdentity(t *testing.T) {
	env := newSQLiteEnv(t)
	if got := WithClockOffset(env.cat, 0); got != env.cat {
		t.Errorf("WithClockOffset(cat, 0) = %T, want the catalog itself", got)
	}
	w, ok := WithClockOffset(env.cat, time.Minute).(*ClockOffsetCatalog)
	if !ok || w.Offset() != time.Minute {
		t.Fatalf("WithClockOffset(cat, 1m) = %#v, want a ClockOffsetCatalog of 1m", w)
	}
}
