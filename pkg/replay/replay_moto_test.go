package replay_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/iceberg/icebergtest"
)

// The same replay on a Glue catalog and an s3:// warehouse (moto).
func TestReplayOnS3(t *testing.T) {
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
	testReplay(t, icebergtest.Open(t, iceberg.CatalogConfig{Catalog: "glue", Warehouse: "s3://paystream-lake/warehouse", Table: iceberg.DefaultTable}))
}
