package leasetest

import (
	"fmt"
	"slices"

	"github.com/paystream/paystream/pkg/lease"
)

// Copies of unexported helpers of package lease, so that FakeStore treats
// leases exactly as lease.DynamoStore does.

// clone returns l with its own copies of the slices.
func clone(l lease.Lease) lease.Lease {
	l.ParentShardIDs = slices.Clone(l.ParentShardIDs)
	l.ChildShardIDs = slices.Clone(l.ChildShardIDs)
	return l
}

// checkHolder rejects a holder's write on a lease that has no owner, as
// lease.DynamoStore does: a programming error, not a conflict.
func checkHolder(op string, l lease.Lease) error {
	if l.Key == "" {
		return fmt.Errorf("%s lease: empty key", op)
	}
	if l.Owner == "" {
		return fmt.Errorf("%s lease %s: lease has no owner", op, l.Key)
	}
	return nil
}
