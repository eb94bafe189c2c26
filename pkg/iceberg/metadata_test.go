package iceberg

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/schema"
)

// metadataStats counts the files and bytes in the table's metadata folder.
func metadataStats(t testing.TB, env *testEnv) (files int, bytes int64, newestJSON int64) {
	t.Helper()
	var newest time.Time
	err := filepath.WalkDir(filepath.Join(tableDir(t, env), "metadata"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		if filepath.Ext(p) == ".json" && info.ModTime().After(newest) {
			newest, newestJSON = info.ModTime(), info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytes, newestJSON
}

// TestServiceMaintenanceKeepsMetadataSmall makes 2,000 consecutive
// one-row commits with the service's maintenance (Maintain with the
// consumer's defaults: keep the newest 100 snapshots, hourly tags for a
// week, compaction, orphan sweep) every 100 commits, as the maintainer does
// every --maintenance-interval. Time runs faster than the service's: the
// compaction age floor is off (every run compacts what the previous ones
// left), and a week of hourly tags is simulated by tagging a snapshot
// every 5 commits and dropping the oldest beyond 168, as expiry does with
// tags past --retention. metadata.json must stay ≤ 1 MiB and commit time
// flat: with iceberg-go's defaults 2,000 commits made 1.5 GiB (DESIGN §7).
func TestServiceMaintenanceKeepsMetadataSmall(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	// Under the race detector a commit costs ~6× the CPU and this
	// single-goroutine loop has no races to find, so a -race run makes 500
	// commits against the same bounds.
	defaultCommits := 2000
	if raceEnabled {
		defaultCommits = 500
	}
	commits, maintainEvery, tagEvery := envInt("PAYSTREAM_TEST_COMMITS", defaultCommits), 100, 5
	opts := MaintainOptions{KeepSnapshots: DefaultKeepSnapshots, Retention: DefaultRetention, Compact: CompactOptions{MinAge: -1}}

	var samples [][3]int64 // files, bytes, newest metadata.json bytes after each maintenance
	took := make([]time.Duration, commits)
	rows := makeRows("shardId-0", 1, commits)
	after := ""
	for i := range commits {
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows[i:i+1])
		last := strconv.Itoa(i + 1)
		start := time.Now()
		_, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-0", After: after, Last: last}}})
		took[i] = time.Since(start)
		rec.Release()
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		after = last
		if (i+1)%tagEvery == 0 {
			simulateHourlyTag(t, env, (i+1)/tagEvery)
		}
		if (i+1)%maintainEvery == 0 || i+1 == commits {
			o := opts
			if (i+1)%(commits/4) == 0 || i+1 == commits {
				o.OrphanAge = time.Nanosecond // one writer, nothing in flight
			}
			if _, err := s.Maintain(ctx, o); err != nil {
				t.Fatalf("maintain after %d commits: %v", i+1, err)
			}
			f, b, j := metadataStats(t, env)
			samples = append(samples, [3]int64{int64(f), b, j})
		}
	}
	files, bytes, newest := metadataStats(t, env)
	t.Logf("after %d commits: %d metadata files, %d KiB; newest metadata.json %d KiB; %d live data files",
		commits, files, bytes>>10, newest>>10, len(liveDataFiles(t, env)))
	for i, s := range samples {
		if i%2 == 1 {
			t.Logf("  after %4d commits: %4d files %6d KiB, metadata.json %4d KiB", (i+1)*maintainEvery, s[0], s[1]>>10, s[2]>>10)
		}
	}
	for _, s := range samples {
		if s[2] > 1<<20 {
			t.Errorf("metadata.json reached %d bytes, want ≤ 1 MiB", s[2])
		}
	}
	// Once the simulated week of tags is full (168 × 5 commits), what a
	// commit reads and rewrites stays flat, and so does its time.
	if commits >= 1600 {
		full := samples[168*tagEvery/maintainEvery]
		if end := samples[len(samples)-1]; float64(end[2]) > 1.2*float64(full[2]) {
			t.Errorf("metadata.json grows: %d bytes when the tags were full, %d at the end", full[2], end[2])
		}
		mid, end := median(took[commits/2:commits/2+200]), median(took[commits-200:])
		t.Logf("commit p50: %s at commit %d, %s at the end", mid, commits/2, end)
		if end > 2*mid+5*time.Millisecond {
			t.Errorf("commit time grows: p50 %s at commit %d, %s at the end", mid, commits/2, end)
		}
	}
	if n := len(liveDataFiles(t, env)); n > 2*DefaultCompactMinFiles+maintainEvery {
		t.Errorf("%d live data files: compaction is not keeping up", n)
	}
	if n := unreferencedMetadata(t, env); n != 0 {
		t.Errorf("%d unreferenced files in the metadata folder after maintenance", n)
	}
	if got := eventIDCounts(t, env.cat, env.ident); len(got) != commits {
		t.Errorf("table has %d rows, want %d", len(got), commits)
	}
}

// simulateHourlyTag tags the current snapshot as hour n and drops the tag
// of hour n-168, as a week of hourly tags past --retention would be.
func simulateHourlyTag(t testing.TB, env *testEnv, n int) {
	t.Helper()
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	upd := []table.Update{table.NewSetSnapshotRefUpdate(fmt.Sprintf("%ssim%05d", HourlyTagPrefix, n), tbl.CurrentSnapshot().SnapshotID, table.TagRef, 0, 0, 0)}
	if n > 168 {
		upd = append(upd, table.NewRemoveSnapshotRefUpdate(fmt.Sprintf("%ssim%05d", HourlyTagPrefix, n-168)))
	}
	if _, _, err := env.cat.CommitTable(ctx, env.ident, nil, upd); err != nil {
		t.Fatal(err)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// unreferencedMetadata counts manifest and manifest-list files in the
// metadata folder that no snapshot references.
func unreferencedMetadata(t testing.TB, env *testEnv) int {
	t.Helper()
	tbl, err := env.cat.LoadTable(context.Background(), env.ident)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := tbl.FS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ref := map[string]bool{}
	for _, snap := range tbl.Metadata().Snapshots() {
		ref[snap.ManifestList] = true
		ms, err := snap.Manifests(fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			ref[m.FilePath()] = true
		}
	}
	n := 0
	err = filepath.WalkDir(filepath.Join(tableDir(t, env), "metadata"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".metadata.json") {
			return err
		}
		if !ref[fileURL(p)] {
			n++
			t.Logf("unreferenced: %s", filepath.Base(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
