package iceberg

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/commit"
)

// newGlueEnv starts moto and returns a Glue catalog with an s3:// warehouse,
// reached only through the standard AWS chain (AWS_ENDPOINT_URL etc. are set
// by testenv.Moto), as the consumer runs in AWS.
func newGlueEnv(t *testing.T) *testEnv {
	t.Helper()
	testenv.Moto(t)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("paystream-lake")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return openEnv(t, CatalogConfig{Catalog: "glue", Warehouse: "s3://paystream-lake/warehouse", Table: DefaultTable})
}

func TestGlueS3(t *testing.T) {
	env := newGlueEnv(t)
	ctx := context.Background()

	t.Run("bootstrap", func(t *testing.T) {
		tbl, err := env.cat.LoadTable(ctx, env.ident)
		if err != nil {
			t.Fatal(err)
		}
		assertPaymentTable(t, tbl)
		if want := "s3://paystream-lake/warehouse/netflix_revenue_raw.db/subscription_payments"; tbl.Location() != want {
			t.Errorf("location = %s, want %s", tbl.Location(), want)
		}
		again, err := EnsureTable(ctx, env.cat, env.ident, env.cfg.Warehouse)
		if err != nil {
			t.Fatal(err)
		}
		if again.MetadataLocation() != tbl.MetadataLocation() {
			t.Error("EnsureTable on an up-to-date Glue table wrote new metadata")
		}
	})

	t.Run("commit and fence", func(t *testing.T) {
		s := NewSink(env.cat, env.ident, SinkConfig{})
		zombie := NewSink(openCatalog(t, env.cfg), env.ident, SinkConfig{})
		b1 := makeBatch(t, "shardId-000000000000", "", 1, 30)
		if _, err := s.Commit(ctx, b1); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if _, err := zombie.Commit(ctx, b1); !errors.Is(err, commit.ErrPositionMoved) {
			t.Errorf("zombie replay: err = %v, want commit.ErrPositionMoved", err)
		}
		if _, err := s.Commit(ctx, makeBatch(t, "shardId-000000000000", "30", 31, 10)); err != nil {
			t.Fatalf("second commit: %v", err)
		}
		if _, err := zombie.Commit(ctx, makeBatch(t, "shardId-000000000001", "", 1, 5)); err != nil {
			t.Fatalf("other shard from second handle: %v", err)
		}
		pos, err := s.Positions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pos["shardId-000000000000"] != "40" || pos["shardId-000000000001"] != "5" {
			t.Errorf("positions = %v", pos)
		}
		assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident),
			append(ids("shardId-000000000000", 1, 40), ids("shardId-000000000001", 1, 5)...))
		if recent := recentIDs(t, s, []string{"shardId-000000000001"}, makeRows("x", 1, 1)[0].IngestedAt); len(recent) != 5 {
			t.Errorf("recent ids = %d; want 5", len(recent))
		}
		res, err := s.Maintain(ctx, MaintainOptions{KeepSnapshots: 1, OrphanAge: 1})
		if err != nil {
			t.Fatalf("maintain: %v", err)
		}
		if res.SnapshotsExpired != 2 {
			t.Errorf("expired %d snapshots, want 2", res.SnapshotsExpired)
		}
		assertExactlyOnce(t, eventIDCounts(t, env.cat, env.ident),
			append(ids("shardId-000000000000", 1, 40), ids("shardId-000000000001", 1, 5)...))
	})

	t.Run("dead letters on s3", func(t *testing.T) {
		testDeadLetter(t, env.cfg.Warehouse)
	})
}
