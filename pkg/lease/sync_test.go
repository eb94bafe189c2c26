package lease_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

// shardList is a lease.ShardLister with fixed answers.
type shardList struct {
	shards []lease.Shard
	err    error
}

func (s shardList) ListShards(context.Context) ([]lease.Shard, error) { return s.shards, s.err }

// createOrder wraps a store to record the keys of successful Creates.
type createOrder struct {
	lease.Store
	mu   sync.Mutex
	keys []string
}

func (c *createOrder) Create(ctx context.Context, l lease.Lease) error {
	err := c.Store.Create(ctx, l)
	if err == nil {
		c.mu.Lock()
		c.keys = append(c.keys, l.Key)
		c.mu.Unlock()
	}
	return err
}

func TestSync(t *testing.T) {
	// 0 split into 1 and 2; 1 and 2 merged into 3. Kinesis lists parents
	// first, but Sync must not rely on it: the lists below are reversed.
	reshard := []lease.Shard{
		{ID: "3", Parents: []string{"1", "2"}},
		{ID: "2", Parents: []string{"0"}, Closed: true},
		{ID: "1", Parents: []string{"0"}, Closed: true},
		{ID: "0", Closed: true},
	}
	open := func(key string, parents ...string) lease.Lease {
		return lease.Lease{Key: key, Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: parents}
	}
	finished := func(key string, parents ...string) lease.Lease {
		return lease.Lease{Key: key, Checkpoint: lease.CheckpointShardEnd, ParentShardIDs: parents}
	}
	for _, tc := range []struct {
		name        string
		shards      []lease.Shard
		before      []lease.Lease
		want        []lease.Lease // the table after Sync, by key
		wantCreated []string      // in order
	}{
		{
			name:   "empty table",
			shards: reshard,
			want: []lease.Lease{
				{Key: "0", Checkpoint: lease.CheckpointTrimHorizon, ChildShardIDs: []string{"1", "2"}},
				{Key: "1", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{"0"}, ChildShardIDs: []string{"3"}},
				{Key: "2", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{"0"}, ChildShardIDs: []string{"3"}},
				{Key: "3", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{"1", "2"}},
			},
			wantCreated: []string{"0", "1", "2", "3"},
		},
		{
			name:   "existing leases are left alone",
			shards: []lease.Shard{{ID: "0"}, {ID: "1"}},
			before: []lease.Lease{{Key: "0", Owner: "w", Counter: 4, Checkpoint: "17"}},
			want: []lease.Lease{
				{Key: "0", Owner: "w", Counter: 4, Checkpoint: "17"},
				open("1"),
			},
			wantCreated: []string{"1"},
		},
		{
			name:   "finished parent deleted once every child has a lease",
			shards: reshard,
			before: []lease.Lease{finished("0"), finished("1", "0"), open("2", "0")},
			// 3 is created; 1 is finished and now all its children have
			// leases; 0 is finished and 1 and 2 had leases.
			want:        []lease.Lease{open("2", "0"), {Key: "3", Checkpoint: lease.CheckpointTrimHorizon, ParentShardIDs: []string{"1", "2"}}},
			wantCreated: []string{"3"},
		},
		{
			name:        "unfinished parent kept",
			shards:      []lease.Shard{{ID: "2", Parents: []string{"0"}}, {ID: "1", Parents: []string{"0"}}, {ID: "0", Closed: true}},
			before:      []lease.Lease{open("0"), open("1", "0"), open("2", "0")},
			want:        []lease.Lease{open("0"), open("1", "0"), open("2", "0")},
			wantCreated: nil,
		},
		{
			name:   "closed shards whose descendants have leases are not re-created",
			shards: reshard,
			// 0, 1 and 2 were read to their end and cleaned up.
			before:      []lease.Lease{open("3", "1", "2")},
			want:        []lease.Lease{open("3", "1", "2")},
			wantCreated: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			fake := leasetest.NewFakeStore()
			for _, l := range tc.before {
				if err := fake.Create(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			store := &createOrder{Store: fake}
			if err := lease.Sync(ctx, shardList{shards: tc.shards}, store, nil); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			got, err := fake.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lease table after Sync:\n got %+v\nwant %+v", got, tc.want)
			}
			if !slices.Equal(store.keys, tc.wantCreated) {
				t.Errorf("created %v, want %v (parents before children)", store.keys, tc.wantCreated)
			}
			// A second Sync finds nothing to do.
			store.keys = nil
			if err := lease.Sync(ctx, shardList{shards: tc.shards}, store, nil); err != nil {
				t.Fatalf("second Sync: %v", err)
			}
			again, _ := fake.List(ctx)
			if len(store.keys) != 0 || !reflect.DeepEqual(again, got) {
				t.Errorf("second Sync changed the table: created %v, table %+v", store.keys, again)
			}
		})
	}
}

func TestSyncErrors(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("boom")
	shards := shardList{shards: []lease.Shard{{ID: "0"}, {ID: "1"}}}

	if err := lease.Sync(ctx, shardList{err: boom}, leasetest.NewFakeStore(), nil); !errors.Is(err, boom) {
		t.Errorf("lister failure: err = %v, want it returned", err)
	}

	s := leasetest.NewFakeStore()
	s.FailNext("List", boom)
	if err := lease.Sync(ctx, shards, s, nil); !errors.Is(err, boom) {
		t.Errorf("List failure: err = %v, want it wrapped", err)
	}

	// Another worker created the lease first: not an error.
	s = leasetest.NewFakeStore()
	s.FailNext("Create", lease.ErrExists)
	if err := lease.Sync(ctx, shards, s, nil); err != nil {
		t.Errorf("Create racing another worker: %v, want nil", err)
	}

	s = leasetest.NewFakeStore()
	s.FailNext("Create", boom)
	if err := lease.Sync(ctx, shards, s, nil); !errors.Is(err, boom) {
		t.Errorf("Create failure: err = %v, want it wrapped", err)
	}
}
