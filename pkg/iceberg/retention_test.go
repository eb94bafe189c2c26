package iceberg

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
)

// The maintainer tags one snapshot per hour; expiry keeps it (and the data
// files it references, replaced by compaction since) beside the newest
// KeepSnapshots, so time travel to it returns the rows of that time.
func TestHourlyTagKeepsSnapshotForTimeTravel(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	noCompact := CompactOptions{TargetSize: -1}
	commitBatches(t, s, "shardId-1", 1, 3, 10)
	res, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, Retention: DefaultRetention, Compact: noCompact})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	tags := HourlyTags(tbl)
	if res.TagsCreated != 1 || len(tags) != 1 || tags[0] != hourlyTag(time.Now()) {
		t.Fatalf("tags %v (created %d), want one for this hour", tags, res.TagsCreated)
	}
	tagged := tbl.SnapshotByName(tags[0]).SnapshotID
	then := tableRows(t, env, tagged)

	commitBatches(t, s, "shardId-1", 31, 5, 10)
	if _, err := s.Compact(ctx, compactNow); err != nil {
		t.Fatal(err)
	}
	res, err = s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, Retention: DefaultRetention, Compact: noCompact})
	if err != nil {
		t.Fatal(err)
	}
	if res.TagsCreated != 0 || res.SnapshotsExpired == 0 {
		t.Errorf("second run %+v; want no new tag, snapshots expired", res)
	}
	tbl, err = env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tbl.Metadata().Snapshots()); n != 2 {
		t.Errorf("%d snapshots kept, want 2 (the head and the hourly one)", n)
	}
	if got := tableRows(t, env, tagged); len(then) == 0 || !slices.Equal(got, then) {
		t.Errorf("time travel to the hourly snapshot: %d rows, want the %d of then", len(got), len(then))
	}
	if got := len(tableRows(t, env, 0)); got != 80 {
		t.Errorf("current snapshot has %d rows, want 80", got)
	}
}

// A tag older than its max-ref-age (the retention it was set with) is
// dropped by expiry, and so is the snapshot it alone kept.
func TestExpiredHourlyTagIsDropped(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	commitBatches(t, s, "shardId-1", 1, 1, 10)
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	old := tbl.CurrentSnapshot().SnapshotID
	const stale = HourlyTagPrefix + "2000010100"
	if _, _, err := env.cat.CommitTable(ctx, env.ident, nil, []table.Update{
		table.NewSetSnapshotRefUpdate(stale, old, table.TagRef, 1, 0, 0),
	}); err != nil {
		t.Fatal(err)
	}
	commitBatches(t, s, "shardId-1", 11, 1, 10)
	time.Sleep(5 * time.Millisecond) // the tag's max-ref-age is 1 ms
	if _, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, Retention: time.Nanosecond, Compact: CompactOptions{TargetSize: -1}}); err != nil {
		t.Fatal(err)
	}
	tbl, err = env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	if tags := HourlyTags(tbl); len(tags) != 0 {
		t.Errorf("tags %v left, want the stale one dropped", tags)
	}
	if tbl.SnapshotByID(old) != nil {
		t.Errorf("snapshot %d kept by a dropped tag still exists", old)
	}
}
