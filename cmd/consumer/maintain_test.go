package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/catalog"
	"github.com/google/uuid"

	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/schema"
)

// maintainTable makes a table in a fresh SQLite catalog under dir with n
// one-file commits, and returns the catalog flags that name it.
func maintainTable(t *testing.T, dir string, n int) []string {
	t.Helper()
	ctx := context.Background()
	cfg := iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.ToSlash(filepath.Join(dir, "warehouse")),
		Table:     iceberg.DefaultTable,
	}
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cat.(catalog.Closer).Close() }()
	ident, err := iceberg.ParseIdentifier(cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{})
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	g := schema.NewGenerator(1, start)
	for i := range n {
		rows := make([]schema.Row, 10)
		for j := range rows {
			e := g.Next(start.Add(time.Duration(i*10+j) * 10 * time.Minute))
			e.EventID = fmt.Sprintf("evt_%d_%d", i, j)
			rows[j] = schema.Row{Event: e, ShardID: "shardId-1", SequenceNumber: strconv.Itoa(i*10 + j + 1), IngestedAt: start}
		}
		rec := schema.BuildRecordBatch(memory.DefaultAllocator, rows)
		after := ""
		if i > 0 {
			after = strconv.Itoa(i * 10)
		}
		_, err := sink.Commit(ctx, commit.Batch{Records: rec, Ranges: []commit.ShardRange{{Shard: "shardId-1", After: after, Last: strconv.Itoa(i*10 + 10)}}})
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	return []string{"--catalog", cfg.Catalog, "--warehouse", cfg.Warehouse, "--table", cfg.Table}
}

func runMaintainCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runMaintain(context.Background(), args, &out, &errOut)
	code := exitCode(err, &errOut)
	t.Logf("consumer maintain %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// metadataFile is the catalog's current metadata location of the table.
func metadataFile(t *testing.T, dir string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "warehouse", "*", "*", "metadata", "*.metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(matches, ",")
}

func TestMaintainCompactsEveryPartitionAndReports(t *testing.T) {
	dir := t.TempDir()
	args := maintainTable(t, dir, 20)
	out, _, code := runMaintainCmd(t, append(args, "--compact-min-age", "0", "--compact-min-files", "2", "--keep-snapshots", "1", "--orphan-age", "0")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"hourly tags created:  1",
		"compaction:           2 partitions, 21 files",
		"into 2 files",
		"snapshots expired:    ",
		"orphans removed:      (sweep skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	out, _, _ = runMaintainCmd(t, append(args, "--compact-min-age", "0", "--compact-min-files", "2", "--orphan-age", "0")...)
	if !strings.Contains(out, "compaction:           0 partitions") {
		t.Errorf("second run compacted again:\n%s", out)
	}
}

func TestMaintainBadInput(t *testing.T) {
	dir := t.TempDir()
	args := maintainTable(t, dir, 3)
	before := metadataFile(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing table", []string{"--catalog", args[1], "--warehouse", args[3], "--table", "payments.nope"}, 2,
			"--table payments.nope: no such table in catalog"},
		{"wrong catalog", []string{"--catalog", "mysql://x", "--table", "payments.events"}, 2, "--catalog"},
		{"bad target size", append(args, "--compact-target-size", "100"), 2, "--compact-target-size 100: must be at least"},
		{"short orphan age", append(args, "--orphan-age", "1m"), 2, "--orphan-age 1m0s: must be at least 1h"},
		{"argument", append(args, "now"), 2, `maintain takes no arguments, got "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runMaintainCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	if got := metadataFile(t, dir); got != before {
		t.Errorf("metadata changed by failed runs:\n%s\nwant\n%s", got, before)
	}
}

// A warehouse the process cannot write: compaction fails with the
// storage's error, exit 1, and the table is unchanged.
func TestMaintainReadOnlyWarehouse(t *testing.T) {
	dir := t.TempDir()
	args := maintainTable(t, dir, 6)
	before := metadataFile(t, dir)
	wh := filepath.Join(dir, "warehouse")
	var dirs []string
	_ = filepath.WalkDir(wh, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	})
	readOnly(t, dirs)
	_, stderr, code := runMaintainCmd(t, append(args, "--compact-min-age", "0", "--orphan-age", "0")...)
	if code != 1 ||
		!strings.Contains(stderr, "permission denied") && !strings.Contains(stderr, "operation not permitted") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the permission error", code, stderr)
	}
	if got := metadataFile(t, dir); got != before {
		t.Errorf("metadata changed: %s, want %s", got, before)
	}
}

// readOnly makes dirs unwritable until the test ends: chmod, or for root
// (whom permissions do not stop) the immutable attribute.
func readOnly(t *testing.T, dirs []string) {
	t.Helper()
	set, unset := func(d string) error { return os.Chmod(d, 0o555) }, func(d string) error { return os.Chmod(d, 0o755) }
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("chattr"); err != nil {
			t.Skip("running as root without chattr: a read-only warehouse cannot be made")
		}
		set = func(d string) error { return exec.CommandContext(t.Context(), "chattr", "+i", d).Run() }
		unset = func(d string) error { return exec.CommandContext(context.Background(), "chattr", "-i", d).Run() }
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			_ = unset(d)
		}
	})
	for _, d := range dirs {
		if err := set(d); err != nil {
			t.Skipf("cannot make %s read-only: %v", d, err)
		}
	}
}

// A writer killed between its commit and publishing its dead letters
// leaves them staged; consumer maintain must publish them before expiring
// the snapshot that says the commit landed, or they would later be removed
// as a never-landed attempt's.
func TestMaintainPublishesStagedDeadLettersBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	args := maintainTable(t, dir, 2)
	ctx := context.Background()
	cfg := iceberg.CatalogConfig{Catalog: args[1], Warehouse: args[3], Table: args[5]}
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cat.(catalog.Closer).Close() }()
	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{})
	dl := iceberg.NewDeadLetter(cfg.Warehouse, "", ident, nil)
	id := uuid.NewString()
	rej := []commit.Rejected{{Raw: []byte("{bad"), Reasons: []string{"not JSON"}, Shard: "shardId-1", Sequence: "21"}}
	if _, err := dl.Stage(ctx, id, "shardId-1", "21", "21", rej); err != nil {
		t.Fatal(err)
	}
	// The commit lands; its writer dies before publishing.
	b := commit.Batch{Ranges: []commit.ShardRange{{Shard: "shardId-1", After: "20", Last: "21"}}, CommitID: id, Staged: time.Now()}
	if _, err := sink.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := iceberg.ReadDeadLetters(ctx, cfg.Warehouse, "", ident); err != nil || len(got) != 0 {
		t.Fatalf("before maintain: %d readable dead letters (%v), want 0: still staged", len(got), err)
	}

	out, _, code := runMaintainCmd(t, append(args, "--keep-snapshots", "1", "--orphan-age", "0", "--compact-target-size", "0")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out, "dead letters:         1 objects published") {
		t.Errorf("output does not report the published object:\n%s", out)
	}
	got, err := iceberg.ReadDeadLetters(ctx, cfg.Warehouse, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Sequence != "21" {
		t.Errorf("readable dead letters %+v, want the landed commit's shardId-1/21", got)
	}
}
