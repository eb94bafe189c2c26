// Package leasetest holds what tests of lease.Store users need: the
// conformance suite every implementation of lease.Store passes, and
// FakeStore, an in-memory store with error injection. It is imported only by
// tests.
//
// Every implementation runs the suite from its own test:
//
//	leasetest.Run(t, func(t *testing.T) lease.Store { return newStore(t) })
//
// newStore must return an empty store (a fresh table) that is allowed to
// create its table; Run calls EnsureTable itself. Subtests do not run in
// parallel.
package leasetest
