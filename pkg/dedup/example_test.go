package dedup_test

import (
	"fmt"
	"time"

	"github.com/paystream/paystream/pkg/dedup"
)

func Example() {
	f, err := dedup.New(dedup.Config{Window: time.Hour})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// A worker takes the lease of a shard: restore the window from the
	// table's recent rows (event_id, ingested_at) of the shard.
	rows := func(yield func(string, time.Time) bool) {
		yield("evt-committed-earlier", now.Add(-10*time.Minute))
	}
	if err := f.Seed("shardId-000000000001", rows); err != nil {
		panic(err)
	}

	b := f.Begin("shardId-000000000001")
	defer b.Abort()
	for _, id := range []string{"evt-1", "evt-2", "evt-1", "evt-committed-earlier"} {
		if b.Check(id) {
			fmt.Println("drop", id)
			continue
		}
		fmt.Println("keep", id)
	}
	// ... the kept rows are committed to the table with ingested_at = now ...
	if err := b.Commit(now); err != nil {
		panic(err)
	}
	fmt.Println("window:", f.Len("shardId-000000000001"))
	// Output:
	// keep evt-1
	// keep evt-2
	// drop evt-1
	// drop evt-committed-earlier
	// window: 3
}
