package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

var _ LeaseStore = (*FakeLeaseStore)(nil)

// FakeLeaseStore is an in-memory LeaseStore for tests, with the same
// conditional semantics as DynamoLeaseStore (both pass leasetest.Run), plus
// error injection. The zero value is not usable; call NewFakeLeaseStore.
type FakeLeaseStore struct {
	mu     sync.Mutex
	leases map[string]Lease
	inject map[string][]fakeInjection // by method name
	calls  map[string]int
}

type fakeInjection struct {
	err        error
	afterWrite bool
}

// NewFakeLeaseStore returns an empty store.
func NewFakeLeaseStore() *FakeLeaseStore {
	return &FakeLeaseStore{
		leases: map[string]Lease{},
		inject: map[string][]fakeInjection{},
		calls:  map[string]int{},
	}
}

// FailNext queues err for the next call of method (the LeaseStore method
// name, e.g. "Renew"): that call writes nothing and returns err. Queued
// errors are used in order, one per call.
func (f *FakeLeaseStore) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[method] = append(f.inject[method], fakeInjection{err: err})
}

// FailNextAfterWrite queues err for the next call of method: that call does
// its work (if its condition holds) and then returns err, as a request that
// timed out after DynamoDB applied it. This is the "outcome unknown" case.
func (f *FakeLeaseStore) FailNextAfterWrite(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[method] = append(f.inject[method], fakeInjection{err: err, afterWrite: true})
}

// Calls returns how many times method was called, failed calls included.
func (f *FakeLeaseStore) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// begin counts the call and pops an fakeInjection error. Called with f.mu held.
func (f *FakeLeaseStore) begin(ctx context.Context, method string) (fakeInjection, error) {
	f.calls[method]++
	if err := ctx.Err(); err != nil {
		return fakeInjection{}, err
	}
	q := f.inject[method]
	if len(q) == 0 {
		return fakeInjection{}, nil
	}
	f.inject[method] = q[1:]
	if !q[0].afterWrite {
		return fakeInjection{}, q[0].err
	}
	return q[0], nil
}

// end returns err, or the fakeInjection after-write error when the call
// otherwise succeeded.
func fakeResult[T any](v T, err error, inj fakeInjection) (T, error) {
	if err == nil && inj.afterWrite {
		var zero T
		return zero, inj.err
	}
	return v, err
}

// EnsureTable implements LeaseStore. The fake has no table; it only honours
// error injection.
func (f *FakeLeaseStore) EnsureTable(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "EnsureTable")
	if err != nil {
		return err
	}
	_, err = fakeResult(struct{}{}, nil, inj)
	return err
}

// Create implements LeaseStore.
func (f *FakeLeaseStore) Create(ctx context.Context, l Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Create")
	if err != nil {
		return err
	}
	if l.Key == "" {
		return errors.New("create lease: empty key")
	}
	if _, ok := f.leases[l.Key]; ok {
		err = fmt.Errorf("create lease %s: %w", l.Key, ErrLeaseExists)
	} else {
		f.leases[l.Key] = normalizeLease(l)
	}
	_, err = fakeResult(struct{}{}, err, inj)
	return err
}

// Get implements LeaseStore.
func (f *FakeLeaseStore) Get(ctx context.Context, key string) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Get")
	if err != nil {
		return Lease{}, err
	}
	l, ok := f.leases[key]
	if !ok {
		return fakeResult(Lease{}, fmt.Errorf("get lease %s: %w", key, ErrLeaseNotFound), inj)
	}
	return fakeResult(l.clone(), nil, inj)
}

// List implements LeaseStore.
func (f *FakeLeaseStore) List(ctx context.Context) ([]Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "List")
	if err != nil {
		return nil, err
	}
	out := make([]Lease, 0, len(f.leases))
	for _, k := range slices.Sorted(maps.Keys(f.leases)) {
		out = append(out, f.leases[k].clone())
	}
	return fakeResult(out, nil, inj)
}

// holderMatches reports whether the stored lease is still the one the holder
// read.
func (f *FakeLeaseStore) holderMatches(l Lease) (Lease, bool) {
	cur, ok := f.leases[l.Key]
	return cur, ok && cur.Counter == l.Counter && cur.Owner == l.Owner
}

// Renew implements LeaseStore.
func (f *FakeLeaseStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Renew")
	if err != nil {
		return Lease{}, err
	}
	if err := checkHolderWrite("renew", l); err != nil {
		return Lease{}, err
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		return fakeResult(Lease{}, fmt.Errorf("renew lease %s: %w", l.Key, ErrLeaseLost), inj)
	}
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.clone(), nil, inj)
}

// Take implements LeaseStore.
func (f *FakeLeaseStore) Take(ctx context.Context, l Lease, newOwner string) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Take")
	if err != nil {
		return Lease{}, err
	}
	if l.Key == "" || newOwner == "" {
		return Lease{}, fmt.Errorf("take lease %q for %q: empty key or owner", l.Key, newOwner)
	}
	cur, ok := f.leases[l.Key]
	if !ok || cur.Counter != l.Counter {
		return fakeResult(Lease{}, fmt.Errorf("take lease %s: %w", l.Key, ErrLeaseHeld), inj)
	}
	if cur.Owner != newOwner {
		cur.OwnerSwitchesSinceCheckpoint++
	}
	cur.Owner = newOwner
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.clone(), nil, inj)
}

// Release implements LeaseStore.
func (f *FakeLeaseStore) Release(ctx context.Context, l Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Release")
	if err != nil {
		return err
	}
	if err := checkHolderWrite("release", l); err != nil {
		return err
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		_, err = fakeResult(struct{}{}, fmt.Errorf("release lease %s: %w", l.Key, ErrLeaseLost), inj)
		return err
	}
	cur.Owner = ""
	cur.Counter++
	f.leases[l.Key] = cur
	_, err = fakeResult(struct{}{}, nil, inj)
	return err
}

// UpdateCheckpoint implements LeaseStore.
func (f *FakeLeaseStore) UpdateCheckpoint(ctx context.Context, l Lease, checkpoint string) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "UpdateCheckpoint")
	if err != nil {
		return Lease{}, err
	}
	if err := checkHolderWrite("checkpoint", l); err != nil {
		return Lease{}, err
	}
	if checkpoint == "" {
		return Lease{}, fmt.Errorf("checkpoint lease %s: empty checkpoint", l.Key)
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		return fakeResult(Lease{}, fmt.Errorf("checkpoint lease %s: %w", l.Key, ErrLeaseLost), inj)
	}
	cur.Checkpoint = checkpoint
	cur.OwnerSwitchesSinceCheckpoint = 0
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.clone(), nil, inj)
}

// Delete implements LeaseStore.
func (f *FakeLeaseStore) Delete(ctx context.Context, l Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Delete")
	if err != nil {
		return err
	}
	cur, ok := f.leases[l.Key]
	switch {
	case !ok:
	case cur.Counter != l.Counter:
		err = fmt.Errorf("delete lease %s: %w", l.Key, ErrLeaseLost)
	default:
		delete(f.leases, l.Key)
	}
	_, err = fakeResult(struct{}{}, err, inj)
	return err
}

// normalize stores empty sets as nil, as DynamoDB does (it has no empty
// string sets), so both stores round-trip leases the same way.
func normalizeLease(l Lease) Lease {
	l = l.clone()
	if len(l.ParentShardIDs) == 0 {
		l.ParentShardIDs = nil
	} else {
		slices.Sort(l.ParentShardIDs)
		l.ParentShardIDs = slices.Compact(l.ParentShardIDs)
	}
	if len(l.ChildShardIDs) == 0 {
		l.ChildShardIDs = nil
	} else {
		slices.Sort(l.ChildShardIDs)
		l.ChildShardIDs = slices.Compact(l.ChildShardIDs)
	}
	return l
}
