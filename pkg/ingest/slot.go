package ingest

import "time"

// Slots (commit mode single). Time is cut into slots of one flush interval
// at the wall clock's multiples of it (counted from the zero time, so every
// process cuts the same slots). The committer starts at most one round per
// slot, at its start or within its first half; workers flush slotLead
// before each slot starts, so that their batches are staged just before
// the round that commits them instead of just after the previous one.
// Clocks that disagree by more than the lead cost a worker one slot of
// freshness per batch, never a batch.

// slotLead is how long before a slot starts the workers flush: enough to
// write a batch's files and stage it (tens of milliseconds; a few hundred
// on a loaded machine).
func slotLead(interval time.Duration) time.Duration { return interval * 3 / 10 }

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
