package leasetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/paystream/paystream/pkg/lease"
)

var _ lease.Store = (*FakeStore)(nil)

// FakeStore is an in-memory lease.Store for tests, with the same
// conditional semantics as lease.DynamoStore (both pass Run), plus error
// injection. The zero value is not usable; call NewFakeStore.
type FakeStore struct {
	mu     sync.Mutex
	leases map[string]lease.Lease
	inject map[string][]fakeInjection // by method name
	calls  map[string]int
}

type fakeInjection struct {
	err        error
	afterWrite bool
}

// NewFakeStore returns an empty store.
func NewFakeStore() *FakeStore {
	return &FakeStore{
		leases: map[string]lease.Lease{},
		inject: map[string][]fakeInjection{},
		calls:  map[string]int{},
	}
}

// FailNext queues err for the next call of method (the lease.Store method
// name, e.g. "Renew"): that call writes nothing and returns err. Queued
// errors are used in order, one per call.
func (f *FakeStore) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[method] = append(f.inject[method], fakeInjection{err: err})
}

// FailNextAfterWrite queues err for the next call of method: that call does
// its work (if its condition holds) and then returns err, as a request that
// timed out after DynamoDB applied it. This is the "outcome unknown" case.
func (f *FakeStore) FailNextAfterWrite(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[method] = append(f.inject[method], fakeInjection{err: err, afterWrite: true})
}

// Calls returns how many times method was called, failed calls included.
func (f *FakeStore) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// begin counts the call and pops the next injected error. Called with f.mu
// held.
func (f *FakeStore) begin(ctx context.Context, method string) (fakeInjection, error) {
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

// fakeResult returns v and err, or the injected after-write error when
// the call otherwise succeeded.
func fakeResult[T any](v T, err error, inj fakeInjection) (T, error) {
	if err == nil && inj.afterWrite {
		var zero T
		return zero, inj.err
	}
	return v, err
}

// EnsureTable implements lease.Store. The fake has no table; it only honours
// error injection.
func (f *FakeStore) EnsureTable(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "EnsureTable")
	if err != nil {
		return err
	}
	_, err = fakeResult(struct{}{}, nil, inj)
	return err
}

// Create implements lease.Store.
func (f *FakeStore) Create(ctx context.Context, l lease.Lease) error {
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
		err = fmt.Errorf("create lease %s: %w", l.Key, lease.ErrExists)
	} else {
		f.leases[l.Key] = l.Normalized()
	}
	_, err = fakeResult(struct{}{}, err, inj)
	return err
}

// Get implements lease.Store.
func (f *FakeStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Get")
	if err != nil {
		return lease.Lease{}, err
	}
	l, ok := f.leases[key]
	if !ok {
		return fakeResult(lease.Lease{}, fmt.Errorf("get lease %s: %w", key, lease.ErrNotFound), inj)
	}
	return fakeResult(l.Clone(), nil, inj)
}

// List implements lease.Store.
func (f *FakeStore) List(ctx context.Context) ([]lease.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "List")
	if err != nil {
		return nil, err
	}
	out := make([]lease.Lease, 0, len(f.leases))
	for _, k := range slices.Sorted(maps.Keys(f.leases)) {
		out = append(out, f.leases[k].Clone())
	}
	return fakeResult(out, nil, inj)
}

// holderMatches reports whether the stored lease is still the one the holder
// read.
func (f *FakeStore) holderMatches(l lease.Lease) (lease.Lease, bool) {
	cur, ok := f.leases[l.Key]
	return cur, ok && cur.Counter == l.Counter && cur.Owner == l.Owner
}

// Renew implements lease.Store.
func (f *FakeStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Renew")
	if err != nil {
		return lease.Lease{}, err
	}
	if err := lease.CheckHolderWrite("renew", l); err != nil {
		return lease.Lease{}, err
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		return fakeResult(lease.Lease{}, fmt.Errorf("renew lease %s: %w", l.Key, lease.ErrLost), inj)
	}
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.Clone(), nil, inj)
}

// Take implements lease.Store.
func (f *FakeStore) Take(ctx context.Context, l lease.Lease, newOwner string) (lease.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Take")
	if err != nil {
		return lease.Lease{}, err
	}
	if l.Key == "" || newOwner == "" {
		return lease.Lease{}, fmt.Errorf("take lease %q for %q: empty key or owner", l.Key, newOwner)
	}
	cur, ok := f.leases[l.Key]
	if !ok || cur.Counter != l.Counter {
		return fakeResult(lease.Lease{}, fmt.Errorf("take lease %s: %w", l.Key, lease.ErrHeld), inj)
	}
	if cur.Owner != newOwner {
		cur.OwnerSwitchesSinceCheckpoint++
	}
	cur.Owner = newOwner
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.Clone(), nil, inj)
}

// Release implements lease.Store.
func (f *FakeStore) Release(ctx context.Context, l lease.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "Release")
	if err != nil {
		return err
	}
	if err := lease.CheckHolderWrite("release", l); err != nil {
		return err
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		_, err = fakeResult(struct{}{}, fmt.Errorf("release lease %s: %w", l.Key, lease.ErrLost), inj)
		return err
	}
	cur.Owner = ""
	cur.Counter++
	f.leases[l.Key] = cur
	_, err = fakeResult(struct{}{}, nil, inj)
	return err
}

// UpdateCheckpoint implements lease.Store.
func (f *FakeStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, checkpoint string) (lease.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inj, err := f.begin(ctx, "UpdateCheckpoint")
	if err != nil {
		return lease.Lease{}, err
	}
	if err := lease.CheckHolderWrite("checkpoint", l); err != nil {
		return lease.Lease{}, err
	}
	if checkpoint == "" {
		return lease.Lease{}, fmt.Errorf("checkpoint lease %s: empty checkpoint", l.Key)
	}
	cp, cpsub, err := lease.SplitCheckpoint(checkpoint)
	if err != nil {
		return lease.Lease{}, fmt.Errorf("checkpoint lease %s: %w", l.Key, err)
	}
	cur, ok := f.holderMatches(l)
	if !ok {
		return fakeResult(lease.Lease{}, fmt.Errorf("checkpoint lease %s: %w", l.Key, lease.ErrLost), inj)
	}
	cur.Checkpoint, cur.CheckpointSubSequence = cp, cpsub
	cur.OwnerSwitchesSinceCheckpoint = 0
	cur.Counter++
	f.leases[l.Key] = cur
	return fakeResult(cur.Clone(), nil, inj)
}

// Delete implements lease.Store.
func (f *FakeStore) Delete(ctx context.Context, l lease.Lease) error {
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
		err = fmt.Errorf("delete lease %s: %w", l.Key, lease.ErrLost)
	default:
		delete(f.leases, l.Key)
	}
	_, err = fakeResult(struct{}{}, err, inj)
	return err
}
