package iceberg

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go/table"
)

// HourlyTagPrefix starts the tags that keep one snapshot per hour for time
// travel: "hourly-2026120703" is the oldest snapshot of 03:00–04:00 UTC
// that still existed when the maintainer ran.
const HourlyTagPrefix = "hourly-"

// DefaultRetention is the consumer's --retention: a week of hourly
// snapshots is 168 tagged snapshots, about 168 × 1 KiB of metadata.json
// beside the newest KeepSnapshots; their manifests are what keeps the data
// files those snapshots replaced (compaction) from being deleted.
const DefaultRetention = 7 * 24 * time.Hour

// hourlyTag names the tag of the hour t falls in (UTC).
func hourlyTag(t time.Time) string {
	return HourlyTagPrefix + t.UTC().Format("2006010215")
}

// hourlyTagsToAdd picks, for every hour within retention before now that
// has a snapshot and no tag yet, the oldest snapshot of that hour. Hours
// whose snapshots have all expired are not tagged later: the maintainer
// runs every few minutes and tags each hour while it still has snapshots.
func hourlyTagsToAdd(meta table.Metadata, retention time.Duration, now time.Time) map[string]int64 {
	have := map[string]bool{}
	for name := range meta.Refs() {
		have[name] = true
	}
	out := map[string]int64{}
	oldest := map[string]int64{}
	for _, s := range meta.Snapshots() {
		at := time.UnixMilli(s.TimestampMs)
		if now.Sub(at) >= retention {
			continue
		}
		name := hourlyTag(at)
		if have[name] {
			continue
		}
		if ts, ok := oldest[name]; !ok || s.TimestampMs < ts {
			oldest[name], out[name] = s.TimestampMs, s.SnapshotID
		}
	}
	return out
}

// tagHours tags one snapshot per hour (hourlyTagsToAdd), each tag with a
// max-ref-age of retention so that snapshot expiry drops it, and the
// snapshot it alone kept, once it is older. The tags are set in one
// catalog commit that requires each tag to be absent and does not pin main:
// it never fences an append, and a concurrent append never fails it.
func (s *Sink) tagHours(ctx context.Context, retention time.Duration) (int, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := s.backoff.Wait(ctx, attempt-1); err != nil {
				return 0, err
			}
		}
		tbl, err := s.cat.LoadTable(ctx, s.ident)
		if err != nil {
			return 0, fmt.Errorf("load table: %w", err)
		}
		add := hourlyTagsToAdd(tbl.Metadata(), retention, time.Now())
		if len(add) == 0 {
			return 0, nil
		}
		reqs := []table.Requirement{table.AssertTableUUID(tbl.Metadata().TableUUID())}
		var upd []table.Update
		for _, name := range slices.Sorted(maps.Keys(add)) {
			reqs = append(reqs, table.AssertRefSnapshotID(name, nil))
			upd = append(upd, table.NewSetSnapshotRefUpdate(name, add[name], table.TagRef, retention.Milliseconds(), 0, 0))
		}
		_, _, err = s.cat.CommitTable(ctx, s.ident, reqs, upd)
		if err == nil {
			return len(add), nil
		}
		if !isConflict(err) || attempt >= s.cfg.MaxRetries {
			return 0, fmt.Errorf("commit %d hourly tags: %w", len(add), err)
		}
	}
}

// HourlyTags returns the table's hourly tags, oldest first, for time
// travel (scan with table.WithSnapshotID of the tag's snapshot).
func HourlyTags(tbl *table.Table) []string {
	var out []string
	for name := range tbl.Metadata().Refs() {
		if strings.HasPrefix(name, HourlyTagPrefix) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
