package ingest

import (
	"slices"
	"sync"
	"time"
)

// Slots (commit mode single). Time is cut into slots of one flush interval
// at the wall clock's multiples of it (counted from the zero time, so every
// process cuts the same slots). The committer starts at most one round per
// slot, at its start or within its first half; workers flush a lead
// (leadTracker) before each slot starts, so that their batches are staged just before
// the round that commits them instead of just after the previous one.
// Clocks that disagree by more than the lead cost a worker one slot of
// freshness per batch, never a batch.

// leadTracker sets how long before a slot starts a worker flushes: enough
// to write its batch's files and stage it, as measured on its last
// leadSamples batches (from the table's Commit to the item written; the
// slowest, times 1.5, plus leadMargin for the flush's own work before it),
// within [interval/10, interval/2]. Tens of milliseconds on an idle
// machine, a few hundred on a loaded one. Until it has a sample it uses
// 0.3 intervals.
type leadTracker struct {
	interval time.Duration
	mu       sync.Mutex
	recent   []time.Duration // ring of the last leadSamples
	next     int
}

const (
	leadSamples = 20
	leadMargin  = 50 * time.Millisecond
)

func newLeadTracker(interval time.Duration) *leadTracker {
	return &leadTracker{interval: interval}
}

// note records how long one batch took from the table's Commit to staged.
func (l *leadTracker) note(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) < leadSamples {
		l.recent = append(l.recent, d)
		return
	}
	l.recent[l.next] = d
	l.next = (l.next + 1) % leadSamples
}

// get returns the lead to flush with now.
func (l *leadTracker) get() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.recent) == 0 {
		return l.interval * 3 / 10
	}
	slowest := slices.Max(l.recent)
	return min(max(slowest*3/2+leadMargin, l.interval/10), l.interval/2)
}

// slotStart returns the start of the slot holding t.
func slotStart(t time.Time, interval time.Duration) time.Time { return t.Truncate(interval) }

// untilSlot returns the time from now to the start of the next slot.
func untilSlot(now time.Time, interval time.Duration) time.Duration {
	return slotStart(now, interval).Add(interval).Sub(now)
}

// untilFlush returns the time from now to the next flush lead before a
// slot's start, at least half an interval away (a timer that fired a
// little early does not flush twice).
func untilFlush(now time.Time, interval, lead time.Duration) time.Duration {
	d := untilSlot(now, interval) - lead
	for d < interval/2 {
		d += interval
	}
	return d
}
