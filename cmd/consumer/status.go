package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/status"
)

const statusUsage = `consumer status — which worker reads which shard, and is anything stuck?

Usage:
  consumer status [flags]

Reads the lease table twice, --sample apart, plus the stream's shards and the
Iceberg table's positions, and prints per shard: state (reading, finished,
waiting-for-parents, unowned, stalled), owner, lease counter and whether it
moved (the owner is alive), the table's position, whether the stream holds
records after it and how long ago the first of them arrived; per worker the
shards it holds; the maintainer role's holder. Problems come first.

A shard is stalled when its owner did not renew the lease during the sample,
or when its table position did not move while a record older than
--stall-after waits after it. It writes nothing.

Exit status: 0 healthy; 3 a shard is stalled or unowned (or the stream has no
shards); 2 bad flags; 1 a source could not be read. Usable from cron or a probe.

AWS endpoint, region and credentials come from the standard AWS SDK chain.`

// statusExitProblems is the exit status when the report is unhealthy.
const statusExitProblems = 3

// errUnhealthy is returned by runStatus when the report found a stalled or
// unowned shard; exitCode maps it to statusExitProblems.
var errUnhealthy = errors.New("unhealthy")

type statusConfig struct {
	Stream       string
	AppName      string
	LeaseTable   string
	Catalog      iceberg.CatalogConfig
	FailoverTime time.Duration
	Sample       time.Duration
	StallAfter   time.Duration
	Format       string
}

func parseStatus(args []string, lookup func(string) (string, bool), stderr io.Writer) (statusConfig, error) {
	def := defaultServiceConfig()
	c := statusConfig{
		AppName:      def.AppName,
		Catalog:      def.Catalog,
		FailoverTime: def.FailoverTime,
		StallAfter:   time.Minute,
		Format:       "table",
	}
	fs := flag.NewFlagSet("consumer status", flag.ContinueOnError)
	fs.StringVar(&c.Stream, "stream", c.Stream, "Kinesis stream the consumer reads (required)")
	fs.StringVar(&c.AppName, "app-name", c.AppName, "the consumer's application name (names the lease table by default)")
	fs.StringVar(&c.LeaseTable, "lease-table", c.LeaseTable, "DynamoDB lease table (default: the --app-name)")
	c.Catalog.RegisterFlags(fs)
	fs.Lookup("table").Usage = "the consumer's Iceberg table as `NAMESPACE.NAME` (status reads it, never creates it)"
	fs.DurationVar(&c.FailoverTime, "failover-time", c.FailoverTime, "the consumers' --failover-time: they renew leases every third of it, so --sample must be longer than that")
	fs.DurationVar(&c.Sample, "sample", c.Sample, "how long apart the lease table is read to see which lease counters move (default: half of --failover-time)")
	fs.DurationVar(&c.StallAfter, "stall-after", c.StallAfter, "a shard whose table position did not move during the sample while a record older than this waits after it is stalled (keep above --flush-interval)")
	fs.StringVar(&c.Format, "format", c.Format, "table (for people) or json (for scripts)")
	if err := parseFlags(fs, args, lookup, stderr, statusUsage); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, &usageError{fmt.Errorf("status takes no arguments, got %q", fs.Arg(0))}
	}
	if c.LeaseTable == "" {
		c.LeaseTable = c.AppName
	}
	if c.Sample == 0 {
		c.Sample = c.FailoverTime / 2
	}
	var errs []error
	if c.Stream == "" {
		errs = append(errs, errors.New("--stream is required: the Kinesis stream the consumer reads (or PAYSTREAM_STREAM)"))
	}
	if c.LeaseTable == "" {
		errs = append(errs, errors.New("--lease-table (or --app-name) must not be empty"))
	}
	if err := c.Catalog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.FailoverTime < time.Second {
		errs = append(errs, fmt.Errorf("--failover-time %s: must be at least 1s", c.FailoverTime))
	} else if c.Sample <= c.FailoverTime/3 {
		errs = append(errs, fmt.Errorf("--sample %s: must be longer than a third of --failover-time %s (the lease renew interval), or live workers look dead", c.Sample, c.FailoverTime))
	}
	if c.StallAfter <= 0 {
		errs = append(errs, fmt.Errorf("--stall-after %s: must be positive", c.StallAfter))
	}
	if c.Format != "table" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("--format %q: use table or json", c.Format))
	}
	if err := errors.Join(errs...); err != nil {
		return c, &usageError{err}
	}
	return c, nil
}

// runStatus is "consumer status": it prints the status report on stdout
// and returns errUnhealthy when something is stalled or unowned.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseStatus(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	ddb := dynamodb.NewFromConfig(awsCfg)
	store, err := lease.NewDynamoStore(ddb, lease.DynamoStoreConfig{Table: c.LeaseTable})
	if err != nil {
		return &usageError{err}
	}
	// Status never creates the lease table, so a missing one gets its own
	// advice rather than the store's "create it or enable creation".
	if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(c.LeaseTable)}); err != nil {
		if nf := (*dtypes.ResourceNotFoundException)(nil); errors.As(err, &nf) {
			return fmt.Errorf("lease table %q not found: check --lease-table, or --app-name which names it by default, and AWS_REGION (the consumer creates the table when it first starts)", c.LeaseTable)
		}
		return fmt.Errorf("read lease table %q: %w", c.LeaseTable, err)
	}
	if err := store.EnsureTable(ctx); err != nil {
		return err
	}
	if strings.HasPrefix(c.Catalog.Catalog, "sqlite:") {
		p := strings.TrimPrefix(c.Catalog.Catalog, "sqlite:")
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("--catalog %s: %w (run status where the consumer keeps its catalog, or pass --catalog)", c.Catalog.Catalog, err)
		}
	}
	cat, ident, release, err := openTable(ctx, c.Catalog)
	if err != nil {
		return err
	}
	defer release()
	kin := kinesis.NewFromConfig(awsCfg)
	rep, err := status.Check(ctx, status.Config{Sample: c.Sample, StallAfter: c.StallAfter}, status.Deps{
		Stream:  c.Stream,
		Shards:  ingest.KinesisShards{Client: kin, Stream: c.Stream},
		Leases:  store,
		Table:   status.IcebergTable{Catalog: cat, Ident: ident},
		Records: kin,
	})
	if err != nil {
		if strings.Contains(err.Error(), "stream not found") {
			return fmt.Errorf("--stream %s: %w (check the name and AWS_REGION)", c.Stream, err)
		}
		return err
	}
	if c.Format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.Healthy {
		return errUnhealthy
	}
	return nil
}
