package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// Kinesis lists the calls the producer makes. *kinesis.Client implements
// it; tests use hand-written fakes. It is exported (unlike most such
// interfaces) so callers of Run can pass either.
type Kinesis interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
	CreateStream(ctx context.Context, in *kinesis.CreateStreamInput, optFns ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	// ListShards is called only with --aggregate, to group records by shard.
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

var _ Kinesis = (*kinesis.Client)(nil)

// Sentinel errors of the start-up check. The messages wrapping them name
// the stream, the endpoint and what to do.
var (
	ErrStreamNotFound = errors.New("stream not found")
	ErrUnreachable    = errors.New("kinesis endpoint unreachable")
)

// startError is a start-up failure with a message for people; errors.Is
// matches its sentinel.
type startError struct {
	msg  string
	kind error
}

func (e *startError) Error() string { return e.msg }
func (e *startError) Unwrap() error { return e.kind }

// NewKinesisClient builds a Kinesis client from the standard AWS SDK chain
// (AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_KINESIS, credentials,
// profiles, AWS_CA_BUNDLE). It fails when no region is configured.
func NewKinesisClient(ctx context.Context) (*kinesis.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region configured: set AWS_REGION (e.g. us-east-1) or a profile with a region")
	}
	return kinesis.NewFromConfig(cfg), nil
}

// Endpoint describes where c sends requests, for messages.
func Endpoint(c *kinesis.Client) string {
	o := c.Options()
	if o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
		return *o.BaseEndpoint
	}
	return fmt.Sprintf("https://kinesis.%s.amazonaws.com (region default)", o.Region)
}

// noRetry turns off the SDK's own retries for one call: the producer
// retries PutRecords entries itself so that it can count them.
func noRetry(o *kinesis.Options) { o.Retryer = aws.NopRetryer{} }

// ensureStream checks within cfg.ConnectTimeout that the endpoint answers
// and the stream exists, creating it when cfg.CreateStream is set and
// waiting until it accepts writes. It returns the stream's open shard count.
func ensureStream(ctx context.Context, cfg *Config, kc Kinesis, log *slog.Logger) (int, error) {
	status, shards, err := describe(ctx, cfg, kc)
	switch {
	case errors.Is(err, ErrStreamNotFound) && cfg.CreateStream:
		cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		_, err = kc.CreateStream(cctx, &kinesis.CreateStreamInput{
			StreamName: aws.String(cfg.Stream),
			ShardCount: aws.Int32(int32(cfg.Shards)),
		})
		cancel()
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // in use: someone else just created it
			return 0, fmt.Errorf("create stream %q with %d shards at %s (--create-stream): %w", cfg.Stream, cfg.Shards, cfg.Endpoint, err)
		}
		log.Info("stream created", "stream", cfg.Stream, "shards", cfg.Shards)
	case err != nil:
		return 0, err
	case cfg.CreateStream && shards != cfg.Shards:
		log.Info("stream exists; using it as it is", "stream", cfg.Stream, "open_shards", shards, "shards_flag", cfg.Shards)
	}
	if status == types.StreamStatusActive || status == types.StreamStatusUpdating {
		return shards, nil
	}
	// Wait until the stream accepts writes.
	const waitLimit = 2 * time.Minute
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		status, shards, err = describe(ctx, cfg, kc)
		if err != nil && !errors.Is(err, ErrStreamNotFound) {
			return 0, err
		}
		if status == types.StreamStatusActive || status == types.StreamStatusUpdating {
			return shards, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("stream %q at %s is still %q after %s; it cannot take writes yet", cfg.Stream, cfg.Endpoint, status, waitLimit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// describe returns the stream's status and open shard count, translating
// the failures a person must act on into ErrStreamNotFound and
// ErrUnreachable.
func describe(ctx context.Context, cfg *Config, kc Kinesis) (types.StreamStatus, int, error) {
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	out, err := kc.DescribeStreamSummary(dctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(cfg.Stream)})
	if err != nil {
		var notFound *types.ResourceNotFoundException
		var apiErr smithy.APIError
		switch {
		case ctx.Err() != nil:
			return "", 0, ctx.Err()
		case errors.As(err, &notFound):
			return "", 0, &startError{fmt.Sprintf("stream %q not found at %s; create it or pass --create-stream", cfg.Stream, cfg.Endpoint), ErrStreamNotFound}
		case errors.As(err, &apiErr):
			return "", 0, fmt.Errorf("describe stream %q at %s: %w", cfg.Stream, cfg.Endpoint, err)
		default:
			return "", 0, &startError{fmt.Sprintf("cannot reach Kinesis endpoint %s within --connect-timeout %s (check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_KINESIS and that the server is up): %v",
				cfg.Endpoint, cfg.ConnectTimeout, err), ErrUnreachable}
		}
	}
	s := out.StreamDescriptionSummary
	if s == nil {
		return "", 0, fmt.Errorf("describe stream %q at %s: empty answer", cfg.Stream, cfg.Endpoint)
	}
	return s.StreamStatus, int(aws.ToInt32(s.OpenShardCount)), nil
}
