package iceberg

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The first caller fixes the latest start; later callers, and concurrent
// ones, get the same time whatever their own clock says.
func TestLatestStartIsFixedByTheFirstCaller(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 123_000_000, time.UTC)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  []time.Time
		errs []error
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := NewSink(openCatalog(t, env.cfg), env.ident, SinkConfig{MinBackoff: time.Millisecond})
			at, err := s.LatestStart(ctx, t0.Add(time.Duration(i)*time.Minute))
			mu.Lock()
			defer mu.Unlock()
			got, errs = append(got, at), append(errs, err)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	for _, at := range got[1:] {
		if !at.Equal(got[0]) {
			t.Fatalf("concurrent first callers got different starts: %v", got)
		}
	}
	later, err := NewSink(env.cat, env.ident, SinkConfig{}).LatestStart(ctx, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !later.Equal(got[0]) || later.Before(t0) || later.After(t0.Add(3*time.Minute)) {
		t.Errorf("a later caller got %v, want the first caller's %v (between %v and %v)", later, got[0], t0, t0.Add(3*time.Minute))
	}
	// Data commits still work after the property commit.
	if _, err := NewSink(env.cat, env.ident, SinkConfig{}).Commit(ctx, makeBatch(t, "s", "", 1, 3)); err != nil {
		t.Fatalf("commit after the latest start was recorded: %v", err)
	}
}
