package ingest_test

import (
	"context"
	"testing"
	"time"

	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/producer"
)

// With --initial-position latest, a shard with no table position starts at
// the application's first start (recorded in the table), not at each
// worker's own start: a worker that takes over after a crash or a restart
// reads what arrived in between. It used to start at LATEST again and skip
// it.
func TestLatestMeansTheApplicationsStartNotTheWorkers(t *testing.T) {
	s := newStack(t, 2)
	ctx := context.Background()
	ident, _ := iceberg.ParseIdentifier(s.catCfg.Table)
	// A first worker started (and died before committing anything).
	if _, err := iceberg.NewSink(s.catalog(), ident, iceberg.SinkConfig{}).LatestStart(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // AT_TIMESTAMP has millisecond precision; keep the records clearly after it

	cfg := producer.DefaultConfig()
	cfg.Rate, cfg.Count = 0, 300
	_, sent := s.produce(ctx, cfg)

	s.startWorker("late", func(c *ingest.WorkerConfig) {
		c.Pipeline.Initial = ingest.InitialPosition{Type: ktypes.ShardIteratorTypeLatest}
	})
	s.expectExactlyOnce(ctx, sent, 60*time.Second)
}
