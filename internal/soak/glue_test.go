//go:build linux

package soak_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	glueBucket = "paystream-soak"
	gluePrefix = "warehouse/"
)

// objectStore finds metadata files in an S3 warehouse.
type objectStore interface {
	metadataStats(ctx context.Context) (metadataStats, error)
}

type s3Store struct{ client *s3.Client }

// useGlue switches the run to the Glue catalog with a warehouse in a new
// bucket of the emulator.
func (r *run) useGlue(ctx context.Context) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		return err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(r.env.Moto)
		o.UsePathStyle = true
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(glueBucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", glueBucket, err)
	}
	r.store = s3Store{client: client}
	r.env.Catalog, r.env.Warehouse = "glue", "s3://"+glueBucket+"/"+strings.TrimSuffix(gluePrefix, "/")
	return nil
}

func (s s3Store) metadataStats(ctx context.Context) (metadataStats, error) {
	var st metadataStats
	var newest time.Time
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(glueBucket), Prefix: aws.String(gluePrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return st, fmt.Errorf("list %s: %w", glueBucket, err)
		}
		for _, o := range page.Contents {
			if !strings.HasSuffix(aws.ToString(o.Key), ".metadata.json") {
				continue
			}
			st.files++
			if aws.ToTime(o.LastModified).After(newest) {
				newest, st.newest = aws.ToTime(o.LastModified), aws.ToInt64(o.Size)
			}
		}
	}
	return st, nil
}
