package dedup_test

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paystream/paystream/pkg/dedup"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newFilter(t testing.TB, cfg dedup.Config) *dedup.Filter {
	t.Helper()
	f, err := dedup.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkAll runs Check on every id and returns the ids reported duplicate.
func checkAll(b *dedup.Batch, ids ...string) []string {
	var dups []string
	for _, id := range ids {
		if b.Check(id) {
			dups = append(dups, id)
		}
	}
	return dups
}

// commitBatch checks ids in a new batch of shard and commits it at at.
func commitBatch(t *testing.T, f *dedup.Filter, shard string, at time.Time, ids ...string) []string {
	t.Helper()
	b := f.Begin(shard)
	dups := checkAll(b, ids...)
	if err := b.Commit(at); err != nil {
		t.Fatal(err)
	}
	return dups
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func TestDuplicateWithinBatch(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	b := f.Begin("shard-0")
	got := checkAll(b, "a", "b", "a", "c", "b", "a")
	if want := []string{"a", "b", "a"}; !slices.Equal(got, want) {
		t.Fatalf("duplicates %v, want %v (the first copy is kept)", got, want)
	}
	if n := f.Len("shard-0"); n != 3 {
		t.Fatalf("Len = %d pending ids, want 3", n)
	}
	// Another shard has its own window.
	if dups := checkAll(f.Begin("shard-1"), "a"); dups != nil {
		t.Fatalf("shard-1 saw %v as duplicates of shard-0", dups)
	}
}

func TestDuplicateAcrossBatches(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	commitBatch(t, f, "s", t0, "a", "b")
	if got := commitBatch(t, f, "s", t0.Add(time.Second), "c", "a"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("second batch duplicates %v, want [a]", got)
	}
	if got := commitBatch(t, f, "s", t0.Add(2*time.Second), "b", "c", "d"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("third batch duplicates %v, want [b c]", got)
	}
	if st := f.Stats(); st.IDs != 4 || st.Pending != 0 || st.Shards != 1 {
		t.Fatalf("Stats = %+v, want 4 ids, 0 pending, 1 shard", st)
	}
}

func TestAbortForgetsUncommitted(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	commitBatch(t, f, "s", t0, "a")
	b := f.Begin("s")
	checkAll(b, "b", "c")
	b.Abort()
	if err := b.Commit(t0); !errors.Is(err, dedup.ErrAborted) {
		t.Fatalf("Commit after Abort = %v, want ErrAborted", err)
	}
	// The batch is re-read: its ids are new again, the committed one is not.
	if got := commitBatch(t, f, "s", t0.Add(time.Second), "b", "c", "a"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("re-read batch duplicates %v, want [a]", got)
	}
}

// TestPipelinedBatches covers a consumer that reads batch N+1 while batch N
// commits: N+1 sees N's ids, N's Commit does not commit N+1, and aborting N
// aborts N+1, whose ids must not survive as "committed".
func TestPipelinedBatches(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	b1 := f.Begin("s")
	checkAll(b1, "a", "b")
	b2 := f.Begin("s")
	if got := checkAll(b2, "b", "c"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("batch 2 duplicates %v, want [b] from the uncommitted batch 1", got)
	}
	if err := b2.Commit(t0); err == nil {
		t.Fatal("committing batch 2 before batch 1 succeeded")
	}
	if err := b1.Commit(t0); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Pending != 1 {
		t.Fatalf("after committing batch 1: %d pending, want 1 (batch 2's c)", st.Pending)
	}
	b3 := f.Begin("s")
	checkAll(b3, "d")
	b2.Abort() // the commit of batch 2 was rejected: batch 3 goes too
	if err := b3.Commit(t0); !errors.Is(err, dedup.ErrAborted) {
		t.Fatalf("Commit of a batch newer than an aborted one = %v, want ErrAborted", err)
	}
	if got := commitBatch(t, f, "s", t0, "a", "c", "d"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after re-read: duplicates %v, want [a]", got)
	}
}

func TestCheckAfterNewerBatchPanics(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	b1 := f.Begin("s")
	f.Begin("s")
	defer func() {
		if recover() == nil {
			t.Fatal("Check on a sealed batch did not panic")
		}
	}()
	b1.Check("x")
}

func TestAbortAfterCommitIsNoop(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	b := f.Begin("s")
	checkAll(b, "a")
	if err := b.Commit(t0); err != nil {
		t.Fatal(err)
	}
	b.Abort()
	if f.Len("s") != 1 || !f.Begin("s").Check("a") {
		t.Fatal("Abort after Commit removed committed ids")
	}
}

func TestTimeEviction(t *testing.T) {
	f := newFilter(t, dedup.Config{Window: time.Hour})
	commitBatch(t, f, "s", t0, "old")
	commitBatch(t, f, "s", t0.Add(30*time.Minute), "mid")

	// Exactly one window after the commit the id is still caught.
	if got := commitBatch(t, f, "s", t0.Add(time.Hour), "old", "x1"); !slices.Equal(got, []string{"old"}) {
		t.Fatalf("at +1h duplicates %v, want [old]", got)
	}
	// A commit past the window evicts it; "mid" stays.
	commitBatch(t, f, "s", t0.Add(time.Hour+2*time.Second))
	if got := commitBatch(t, f, "s", t0.Add(time.Hour+3*time.Second), "old", "mid"); !slices.Equal(got, []string{"mid"}) {
		t.Fatalf("after +1h duplicates %v, want [mid]", got)
	}

	// Expire evicts idle shards without a commit.
	commitBatch(t, f, "idle", t0, "i1", "i2")
	if n := f.Expire(t0.Add(59 * time.Minute)); n != 0 {
		t.Fatalf("Expire inside the window evicted %d", n)
	}
	f.Expire(t0.Add(2 * time.Hour))
	if n := f.Len("idle"); n != 0 {
		t.Fatalf("idle shard holds %d ids two hours later", n)
	}
}

func TestTimeEvictionSkipsPending(t *testing.T) {
	f := newFilter(t, dedup.Config{Window: time.Minute})
	b := f.Begin("s")
	checkAll(b, "p")
	f.Expire(t0.Add(24 * time.Hour))
	if b.Check("p") != true {
		t.Fatal("Expire evicted an id of an uncommitted batch")
	}
}

func TestCountEvictionKeepsNewest(t *testing.T) {
	const maxIDs = 1000
	f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
	all := ids("e", 0, 2500)
	for i := 0; i < len(all); i += 100 {
		commitBatch(t, f, "s", t0.Add(time.Duration(i)*time.Millisecond), all[i:i+100]...)
	}
	if n := f.Len("s"); n != maxIDs {
		t.Fatalf("Len = %d, want MaxIDs %d", n, maxIDs)
	}
	b := f.Begin("s")
	if got := checkAll(b, all[1500:]...); len(got) != maxIDs {
		t.Fatalf("%d of the newest %d ids are caught, want all", len(got), maxIDs)
	}
	if got := checkAll(b, all[:1500]...); got != nil {
		t.Fatalf("evicted old ids still caught: %d of them", len(got))
	}
}

func seq(ids []string, times func(i int) time.Time) iter.Seq2[string, time.Time] {
	return func(yield func(string, time.Time) bool) {
		for i, id := range ids {
			if !yield(id, times(i)) {
				return
			}
		}
	}
}

func TestSeed(t *testing.T) {
	rows := ids("r", 0, 3000)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	t.Run("ordered", func(t *testing.T) {
		f := newFilter(t, dedup.Config{})
		if err := f.Seed("s", seq(rows, at)); err != nil {
			t.Fatal(err)
		}
		if got := checkAll(f.Begin("s"), append(rows, "new")...); len(got) != len(rows) || slices.Contains(got, "new") {
			t.Fatalf("after Seed %d of %d rows caught", len(got), len(rows))
		}
	})
	t.Run("unordered", func(t *testing.T) {
		// Rows arrive in reverse time order (newest data file first); the
		// oldest ones must still be the ones evicted by time and count.
		f := newFilter(t, dedup.Config{Window: 1000 * time.Second, MaxIDs: 2000})
		rev := slices.Clone(rows)
		slices.Reverse(rev)
		if err := f.Seed("s", seq(rev, func(i int) time.Time { return at(len(rows) - 1 - i) })); err != nil {
			t.Fatal(err)
		}
		if n := f.Len("s"); n != 2000 {
			t.Fatalf("Len = %d, want MaxIDs 2000", n)
		}
		f.Expire(at(len(rows) - 1))
		// Newest first: Check adds what it does not catch, which evicts.
		b := f.Begin("s")
		if got := checkAll(b, rows[1999:]...); len(got) != 1001 {
			t.Fatalf("%d of the newest 1001 rows caught, want all", len(got))
		}
		if got := checkAll(b, rows[:1999]...); got != nil {
			t.Fatalf("%d rows older than the window still caught", len(got))
		}
	})
	t.Run("shuffled with repeats", func(t *testing.T) {
		// Rows in no order, and the oldest 500 again with the newest time
		// (a retry committed twice): the first copy by time is kept, once.
		f := newFilter(t, dedup.Config{Window: 1000 * time.Second})
		order := rand.New(rand.NewPCG(1, 2)).Perm(len(rows))
		all := func(yield func(string, time.Time) bool) {
			for _, i := range order {
				if !yield(rows[i], at(i)) {
					return
				}
			}
			for _, id := range rows[:500] {
				if !yield(id, at(len(rows)-1)) {
					return
				}
			}
		}
		if err := f.Seed("s", all); err != nil {
			t.Fatal(err)
		}
		if n := f.Len("s"); n != len(rows) {
			t.Fatalf("Len = %d, want %d (each id once)", n, len(rows))
		}
		f.Expire(at(len(rows) - 1))
		b := f.Begin("s")
		if got := checkAll(b, rows[1999:]...); len(got) != 1001 {
			t.Fatalf("%d of the newest 1001 rows caught, want all", len(got))
		}
		if got := checkAll(b, rows[:1999]...); got != nil {
			t.Fatalf("%d rows older than the window still caught", len(got))
		}
	})
	t.Run("past a quarter of MaxIDs", func(t *testing.T) {
		// Enough rows that Seed reads the rest into a ring allocated at
		// MaxIDs (the first 64 Ki ids are past a quarter of it), shuffled,
		// with the oldest 500 again at the newest time: within MaxIDs, and
		// beyond it (the newest MaxIDs are kept).
		const n = 150_000
		big := ids("b", 0, n)
		// at gives one id per second: the window keeps whole seconds, so which ids
		// of a second on the MaxIDs edge are kept is not defined.
		order := rand.New(rand.NewPCG(3, 4)).Perm(n)
		all := func(yield func(string, time.Time) bool) {
			for _, i := range order {
				if !yield(big[i], at(i)) {
					return
				}
			}
			for _, id := range big[:500] {
				if !yield(id, at(n-1)) {
					return
				}
			}
		}
		for _, maxIDs := range []int{200_000, 100_000} {
			f := newFilter(t, dedup.Config{MaxIDs: maxIDs})
			if err := f.Seed("s", all); err != nil {
				t.Fatal(err)
			}
			kept := min(n, maxIDs)
			if got := f.Len("s"); got != kept {
				t.Fatalf("MaxIDs %d: Len = %d, want %d (each id once)", maxIDs, got, kept)
			}
			// By time, the repeats of the oldest 500 are among the newest.
			newest := append(slices.Clone(big[:500]), big[n-(kept-500):]...)
			b := f.Begin("s")
			if got := checkAll(b, newest...); len(got) != kept {
				t.Fatalf("MaxIDs %d: %d of the newest %d rows caught, want all", maxIDs, len(got), kept)
			}
			if got := checkAll(b, big[500:n-(kept-500)]...); got != nil {
				t.Fatalf("MaxIDs %d: %d rows beyond MaxIDs still caught", maxIDs, len(got))
			}
			b.Abort()
		}
	})
	t.Run("merges with existing window", func(t *testing.T) {
		f := newFilter(t, dedup.Config{})
		commitBatch(t, f, "s", at(5000), "live")
		if err := f.Seed("s", seq(rows, at)); err != nil {
			t.Fatal(err)
		}
		if got := checkAll(f.Begin("s"), "live", rows[0], rows[2999]); len(got) != 3 {
			t.Fatalf("caught %v, want all three", got)
		}
	})
	t.Run("open batch", func(t *testing.T) {
		f := newFilter(t, dedup.Config{})
		f.Begin("s")
		if err := f.Seed("s", seq(rows, at)); !errors.Is(err, dedup.ErrBatchOpen) {
			t.Fatalf("Seed with an open batch = %v, want ErrBatchOpen", err)
		}
	})
}

func TestInherit(t *testing.T) {
	f := newFilter(t, dedup.Config{MaxIDs: 100})
	commitBatch(t, f, "p1", t0, ids("p1", 0, 60)...)
	commitBatch(t, f, "p2", t0.Add(time.Second), ids("p2", 0, 60)...)
	pending := f.Begin("p2")
	checkAll(pending, "p2-uncommitted")

	missing, err := f.Inherit("c", "p1", "p2", "gone")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(missing, []string{"gone"}) {
		t.Fatalf("missing = %v, want [gone]", missing)
	}
	// 120 parent ids over MaxIDs 100: the 20 oldest (p1's first 20) go.
	if n := f.Len("c"); n != 100 {
		t.Fatalf("child Len = %d, want 100", n)
	}
	b := f.Begin("c")
	if got := checkAll(b, append(ids("p1", 20, 60), ids("p2", 0, 60)...)...); len(got) != 100 {
		t.Fatalf("child caught %d of the 100 newest parent ids", len(got))
	}
	if got := checkAll(b, ids("p1", 0, 20)...); got != nil {
		t.Fatalf("oldest parent ids %v kept beyond MaxIDs", got)
	}
	if b.Check("p2-uncommitted") {
		t.Fatal("child inherited an uncommitted id of its parent")
	}
	// Parents are untouched.
	if f.Len("p1") != 60 || f.Len("p2") != 61 {
		t.Fatalf("parents changed: p1 %d p2 %d", f.Len("p1"), f.Len("p2"))
	}
	if _, err := f.Inherit("c", "p1"); !errors.Is(err, dedup.ErrBatchOpen) {
		t.Fatalf("Inherit into a shard with an open batch = %v, want ErrBatchOpen", err)
	}
	if _, err := f.Inherit("p1", "p1"); err == nil {
		t.Fatal("a shard inherited from itself")
	}
}

func TestDrop(t *testing.T) {
	f := newFilter(t, dedup.Config{})
	commitBatch(t, f, "s", t0, "a")
	b := f.Begin("s")
	checkAll(b, "b")
	f.Drop("s")
	if err := b.Commit(t0); !errors.Is(err, dedup.ErrAborted) {
		t.Fatalf("Commit after Drop = %v, want ErrAborted", err)
	}
	if b.Check("a") {
		t.Fatal("Check on a dropped shard's batch reported a duplicate")
	}
	if st := f.Stats(); st.Shards != 0 || st.IDs != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after Drop = %+v, want zero", st)
	}
	if f.Begin("s").Check("a") {
		t.Fatal("a re-created shard remembered a dropped id")
	}
	f.Drop("never-held")
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  dedup.Config
		flag string
	}{
		{dedup.Config{Window: -time.Second}, "--dedup-window"},
		{dedup.Config{Window: time.Millisecond}, "--dedup-window"},
		{dedup.Config{MaxIDs: -1}, "--dedup-max-ids"},
		{dedup.Config{MaxIDs: dedup.MaxMaxIDs + 1}, "--dedup-max-ids"},
	} {
		if _, err := dedup.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.flag)
		}
	}
	if err := (dedup.Config{}).Validate(); err != nil {
		t.Errorf("zero Config (defaults) rejected: %v", err)
	}
}

// TestConcurrentShards runs one goroutine per shard, as the consumer does,
// alongside Stats and Expire callers; run it with -race.
func TestConcurrentShards(t *testing.T) {
	f := newFilter(t, dedup.Config{MaxIDs: 5000})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			shard := fmt.Sprint("shard-", s)
			for i := range 20 {
				b := f.Begin(shard)
				for j := range 500 {
					// Every id twice: the second copy must be caught.
					id := fmt.Sprint(i, "-", j)
					if b.Check(id) || !b.Check(id) {
						t.Errorf("%s: id %s not caught exactly once", shard, id)
						return
					}
				}
				if err := b.Commit(t0.Add(time.Duration(i) * time.Second)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				f.Stats()
				f.Expire(t0)
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	if st := f.Stats(); st.IDs != 4*5000 {
		t.Fatalf("%d ids after the run, want 4 shards × MaxIDs 5000", st.IDs)
	}
}
