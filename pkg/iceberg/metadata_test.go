package iceberg

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

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

// TestManyCommitsKeepMetadataSmall makes 2,000 consecutive one-row commits
// with a maintenance cadence (expire every 20 commits keeping 20 snapshots,
// orphan sweep every quarter) and asserts the metadata folder stays bounded
// and metadata.json flat: with iceberg-go's defaults 2,000 commits made
// 1.5 GiB (DESIGN §7).
func TestManyCommitsKeepMetadataSmall(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	s := NewSink(env.cat, env.ident, SinkConfig{})
	// Under the race detector a commit costs ~6× the CPU (2,000 commits took
	// 7.5 minutes) and this single-goroutine loop has no races to find, so a
	// -race run makes 500 commits (25 maintenance cycles) against the same
	// bounds; a plain `go test ./pkg/iceberg` makes all 2,000.
	defaultCommits := 2000
	if raceEnabled {
		defaultCommits = 500
	}
	commits, maintainEvery, keep := envInt("PAYSTREAM_TEST_COMMITS", defaultCommits), 20, 20
	orphanEvery := max(commits/4, 1)

	var samples [][3]int64 // files, bytes, newest metadata.json bytes after each maintenance
	rows := makeRows("shardId-0", 1, commits)
	after := ""
	for i := range commits {
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows[i:i+1])
		last := strconv.Itoa(i + 1)
		_, err := s.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-0", After: after, Last: last}}})
		rec.Release()
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		after = last
		if (i+1)%maintainEvery == 0 || i+1 == commits {
			opts := MaintainOptions{KeepSnapshots: keep}
			if (i+1)%orphanEvery == 0 || i+1 == commits {
				opts.OrphanAge = time.Nanosecond // one writer, nothing in flight
			}
			if _, err := s.Maintain(ctx, opts); err != nil {
				t.Fatalf("maintain after %d commits: %v", i+1, err)
			}
			f, b, j := metadataStats(t, env)
			samples = append(samples, [3]int64{int64(f), b, j})
		}
	}
	files, bytes, newest := metadataStats(t, env)
	t.Logf("after %d commits: %d metadata files, %d KiB; newest metadata.json %d KiB", commits, files, bytes>>10, newest>>10)
	for i, s := range samples {
		if i%5 == 4 {
			t.Logf("  after %4d commits: %4d files %6d KiB, metadata.json %4d KiB", (i+1)*maintainEvery, s[0], s[1]>>10, s[2]>>10)
		}
	}

	// Bounds: at most keep+maintainEvery snapshots, hence manifest lists;
	// merged manifests; at most previous-versions-max+1 metadata.json files.
	// Manifests grow with the number of live data files (one per commit
	// here); that is inherent to Iceberg and why the cap is generous.
	maxFiles, maxBytes := 2*(keep+maintainEvery)+20, int64(8<<20)
	if files > maxFiles {
		t.Errorf("metadata folder holds %d files after %d commits, want ≤ %d", files, commits, maxFiles)
	}
	if bytes > maxBytes {
		t.Errorf("metadata folder holds %d bytes after %d commits, want ≤ %d", bytes, commits, maxBytes)
	}
	// What each commit reads and rewrites (metadata.json) stays flat.
	mid, end := samples[len(samples)/2-1], samples[len(samples)-1]
	if float64(end[2]) > 1.2*float64(mid[2]) {
		t.Errorf("metadata.json grows: %d bytes after %d commits, %d after %d", mid[2], commits/2, end[2], commits)
	}
	// Nothing in the metadata folder is unreferenced after the orphan sweep.
	if n := unreferencedMetadata(t, env); n != 0 {
		t.Errorf("%d unreferenced files in the metadata folder after maintenance", n)
	}
	if got := eventIDCounts(t, env.cat, env.ident); len(got) != commits {
		t.Errorf("table has %d rows, want %d", len(got), commits)
	}
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
