package commit_test

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paystream/paystream/pkg/commit"
)

// flakyTable fails its first commit with a transient error before
// committing anything (a catalog that timed out), then commits through.
type flakyTable struct {
	commit.Table
	calls int
}

func (f *flakyTable) Commit(ctx context.Context, b commit.Batch) (commit.Result, error) {
	f.calls++
	if f.calls == 1 {
		return commit.Result{}, errors.New("catalog unavailable")
	}
	return f.Table.Commit(ctx, b)
}

// deadLetterObjects maps every record (shard/sequence) in the readable
// dead-letter store under warehouse to the objects that hold it.
func deadLetterObjects(t *testing.T, warehouse string) map[string][]string {
	t.Helper()
	root := filepath.Join(strings.TrimPrefix(warehouse, "file://"), "_dead_letter")
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ndjson") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			shard := between(line, `"shard_id":"`, `"`)
			seq := between(line, `"sequence_number":"`, `"`)
			out[shard+"/"+seq] = append(out[shard+"/"+seq], p)
		}
		return sc.Err()
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return v
}

// A batch whose commit failed is flushed again with more records (the
// reader kept reading). Every rejected record must be readable exactly
// once: not in the failed attempt's object and again in the retry's.
func TestStepRetryAfterFailedCommitDeadLettersOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	flaky := &flakyTable{Table: e.sink}
	step := e.step(t, func(c *commit.Config) { c.Table = flaky })

	first := part("a", "", 1, 2)
	reject(&first, "3")
	reject(&first, "4")
	if _, err := step.Commit(ctx, []commit.Part{first}); err == nil {
		t.Fatal("the first commit succeeded; the table should have failed it")
	}
	retry := part("a", "", 1, 2)
	reject(&retry, "3")
	reject(&retry, "4")
	more := part("a", "", 5, 1)
	retry.Rows = append(retry.Rows, more.Rows...)
	retry.Arrivals = append(retry.Arrivals, more.Arrivals...)
	retry.Last = "5"
	reject(&retry, "6")
	if _, err := step.Commit(ctx, []commit.Part{retry}); err != nil {
		t.Fatal(err)
	}

	objs := deadLetterObjects(t, e.warehouse)
	for _, rec := range []string{"a/3", "a/4", "a/6"} {
		if len(objs[rec]) != 1 {
			t.Errorf("record %s is in %d objects %v, want exactly 1", rec, len(objs[rec]), objs[rec])
		}
	}
	if len(objs) != 3 {
		t.Errorf("dead-letter store holds records %v, want a/3, a/4, a/6", objs)
	}
}
