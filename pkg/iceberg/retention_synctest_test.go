package iceberg

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A day later, the hourly snapshot of yesterday is still there to time
// travel to, while the untagged snapshots between are gone; a week later
// its tag has expired with it. The bubble's clock makes the days pass.
//
// It runs in a child process: the Parquet writer's ZSTD encoders are pooled
// process-wide, and an encoder made inside a bubble may not be used outside
// it (the runtime aborts the process).
func TestTimeTravelToYesterdaysHourlySnapshot(t *testing.T) {
	if os.Getenv(synctestChildEnv) == "" {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), synctestChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
			t.Fatalf("child test: %v\n%s", err, out)
		}
		return
	}
	synctest.Test(t, func(t *testing.T) {
		env := newSQLiteEnv(t)
		ctx := context.Background()
		s := NewSink(env.cat, env.ident, SinkConfig{})
		opts := MaintainOptions{KeepSnapshots: 1, Retention: DefaultRetention, Compact: CompactOptions{TargetSize: -1}}
		commitBatches(t, s, "shardId-1", 1, 2, 10)
		if _, err := s.Maintain(ctx, opts); err != nil {
			t.Fatal(err)
		}
		yesterday := hourlyTag(time.Now())
		tbl, err := env.cat.LoadTable(ctx, env.ident)
		if err != nil {
			t.Fatal(err)
		}
		snap := tbl.SnapshotByName(yesterday)
		if snap == nil {
			t.Fatalf("no tag %s after the first run; tags %v", yesterday, HourlyTags(tbl))
		}
		then := tableRows(t, env, snap.SnapshotID)

		time.Sleep(25 * time.Hour)
		commitBatches(t, s, "shardId-1", 21, 3, 10)
		if _, err := s.Maintain(ctx, opts); err != nil {
			t.Fatal(err)
		}
		tbl, err = env.cat.LoadTable(ctx, env.ident)
		if err != nil {
			t.Fatal(err)
		}
		if got := HourlyTags(tbl); !slices.Equal(got, []string{yesterday, hourlyTag(time.Now())}) {
			t.Fatalf("tags %v, want yesterday's %s and this hour's", got, yesterday)
		}
		if got := tableRows(t, env, tbl.SnapshotByName(yesterday).SnapshotID); len(then) == 0 || !slices.Equal(got, then) {
			t.Errorf("time travel to %s: %d rows, want the %d of then", yesterday, len(got), len(then))
		}

		time.Sleep(DefaultRetention + time.Hour)
		commitBatches(t, s, "shardId-1", 51, 1, 10)
		if _, err := s.Maintain(ctx, opts); err != nil {
			t.Fatal(err)
		}
		tbl, err = env.cat.LoadTable(ctx, env.ident)
		if err != nil {
			t.Fatal(err)
		}
		if got := HourlyTags(tbl); len(got) != 1 || got[0] != hourlyTag(time.Now()) {
			t.Errorf("tags %v a week later, want only this hour's", got)
		}
		if n := len(tbl.Metadata().Snapshots()); n != 1 {
			t.Errorf("%d snapshots a week later, want 1", n)
		}
	})
}

// synctestChildEnv marks the child process that runs a bubble test alone.
const synctestChildEnv = "PAYSTREAM_TEST_SYNCTEST_CHILD"
