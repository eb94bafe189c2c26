//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/paystream/paystream/internal/retry"
)

// Binaries are the real programs a trial runs.
type Binaries struct {
	Consumer string
	Producer string
	// Kinesis is the emulator of read mode efo (internal/cmd/kinesistest).
	Kinesis string
}

var (
	buildOnce sync.Once
	buildBins Binaries
	buildErr  error
)

// Build compiles cmd/consumer, cmd/producer and internal/cmd/kinesistest
// of the module at moduleDir into a temporary folder, once per process.
// With CHAOS_BIN set to a folder holding the binaries, it uses those
// instead (kinesistest is needed only in read mode efo). Race-enabled
// binaries are built when race is true.
func Build(ctx context.Context, moduleDir string, race bool) (Binaries, error) {
	buildOnce.Do(func() {
		if dir := os.Getenv("CHAOS_BIN"); dir != "" {
			buildBins = binariesIn(dir)
			return
		}
		dir, err := os.MkdirTemp("", "paystream-chaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		// Readable by the unprivileged user the consumers may run as.
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", dir + "/"}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/consumer", "./cmd/producer", "./internal/cmd/kinesistest")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = moduleDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/consumer ./cmd/producer ./internal/cmd/kinesistest: %w\n%s", err, out)
			return
		}
		buildBins = binariesIn(dir)
	})
	return buildBins, buildErr
}

// binariesIn names the binaries in dir.
func binariesIn(dir string) Binaries {
	return Binaries{Consumer: filepath.Join(dir, "consumer"), Producer: filepath.Join(dir, "producer"), Kinesis: filepath.Join(dir, "kinesistest")}
}

// ModuleDir returns the root of the Go module holding the working directory.
func ModuleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// The catalogs a trial can run the consumers on (CHAOS_CATALOG).
const (
	// CatalogSQLite is a SQLite catalog and a file:// warehouse in the
	// trial's folder.
	CatalogSQLite = "sqlite"
	// CatalogGlue is the production setup: the emulator's Glue catalog and
	// an s3:// warehouse in its S3, both reached through each consumer's
	// fault proxy.
	CatalogGlue = "glue"
)

// Bucket is the S3 bucket of a glue trial's warehouse and dead letters.
const Bucket = "paystream-chaos"

// ParseCatalog checks a CHAOS_CATALOG value; "" is sqlite.
func ParseCatalog(s string) (string, error) {
	switch s {
	case "", CatalogSQLite:
		return CatalogSQLite, nil
	case CatalogGlue:
		return CatalogGlue, nil
	}
	return "", fmt.Errorf("CHAOS_CATALOG=%q: want %s or %s", s, CatalogSQLite, CatalogGlue)
}

// Env is one trial's world: the AWS emulator, the stream, the lease table,
// the shared catalog (SQLite and a file warehouse, or Glue and an S3
// warehouse) and the folder for logs.
type Env struct {
	Dir     string // logs, sent log, report
	DataDir string // SQLite catalog and file warehouse (owned by RunAsUID); the consumers' HOME
	Moto    string // emulator endpoint, http://127.0.0.1:PORT
	// KinesisURL is where the trial's Kinesis calls go: Moto, or in read
	// mode efo a kinesistest emulator (UseKinesis).
	KinesisURL  string
	Stream      string
	AppName     string
	CatalogKind string // CatalogSQLite or CatalogGlue
	Catalog     string // sqlite:PATH or glue (the --catalog flag)
	Warehouse   string // file:///abs or s3://Bucket/warehouse
	Table       string
	Bins        Binaries
	// RunAsUID is the user the consumers run as: 65534 (nobody) when the
	// harness is root, so that a read-only warehouse (chmod) binds them;
	// -1 keeps the harness's own user.
	RunAsUID int

	Kinesis *kinesis.Client
	Dynamo  *dynamodb.Client
	S3      *s3.Client
	AWS     aws.Config // straight to the emulator, for the checker
}

// DefaultTable is the table the consumers write (their default).
const DefaultTable = "netflix_revenue_raw.subscription_payments"

// NewEnv prepares dir for a trial against the emulator at moto, on the
// catalog kind (CatalogSQLite or CatalogGlue; a glue trial gets its bucket
// created).
func NewEnv(ctx context.Context, dir, moto string, bins Binaries, kind string) (*Env, error) {
	kind, err := ParseCatalog(kind)
	if err != nil {
		return nil, err
	}
	e := &Env{
		Dir: dir, DataDir: filepath.Join(dir, "data"), Moto: moto, KinesisURL: moto, Stream: "payments", AppName: "paystream-chaos",
		CatalogKind: kind, Table: DefaultTable, Bins: bins, RunAsUID: -1,
	}
	if os.Geteuid() == 0 {
		e.RunAsUID = 65534
	}
	if err := os.MkdirAll(e.DataDir, 0o755); err != nil {
		return nil, err
	}
	// Every folder above DataDir must be searchable by the consumers' user.
	for d := e.DataDir; d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		if st.Mode().Perm()&0o011 != 0o011 {
			if err := os.Chmod(d, st.Mode().Perm()|0o011); err != nil {
				return nil, err
			}
		}
	}
	if e.RunAsUID >= 0 {
		if err := os.Chown(e.DataDir, e.RunAsUID, e.RunAsUID); err != nil {
			return nil, fmt.Errorf("chown %s: %w", e.DataDir, err)
		}
	}
	e.Catalog = "sqlite:" + filepath.Join(e.DataDir, "catalog.db")
	e.Warehouse = "file://" + filepath.Join(e.DataDir, "warehouse")
	if kind == CatalogGlue {
		e.Catalog, e.Warehouse = CatalogGlue, "s3://"+Bucket+"/warehouse"
	}
	if err := e.connect(ctx); err != nil {
		return nil, err
	}
	if kind == CatalogGlue {
		if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
			return nil, fmt.Errorf("create bucket %s: %w", Bucket, err)
		}
	}
	return e, nil
}

// connect makes the harness's own clients, straight to the emulator.
func (e *Env) connect(ctx context.Context) error {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		return err
	}
	cfg.BaseEndpoint = aws.String(e.Moto)
	e.AWS = cfg
	e.Kinesis = kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(e.KinesisURL) })
	e.Dynamo = dynamodb.NewFromConfig(cfg)
	e.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	return nil
}

// UseKinesis sends the trial's Kinesis calls to url (a kinesistest
// emulator, for read mode efo) instead of moto: the harness's own client,
// the producer's and maintain's (DirectEnv) and, through their proxies
// (NewProxy's routes), the consumers'. Call it before the stream is
// created.
func (e *Env) UseKinesis(url string) {
	e.KinesisURL = url
	e.Kinesis = kinesis.NewFromConfig(e.AWS, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
}

// EFO reports whether Kinesis is a kinesistest emulator rather than moto.
func (e *Env) EFO() bool { return e.KinesisURL != e.Moto }

// Glue reports whether the consumers run on the Glue catalog.
func (e *Env) Glue() bool { return e.CatalogKind == CatalogGlue }

// WarehouseDir is the warehouse's local path.
func (e *Env) WarehouseDir() string { return strings.TrimPrefix(e.Warehouse, "file://") }

// CatalogPath is the SQLite file's path.
func (e *Env) CatalogPath() string { return strings.TrimPrefix(e.Catalog, "sqlite:") }

// AWSEnv is the environment a child process needs to reach endpoint.
func (e *Env) AWSEnv(endpoint string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "PAYSTREAM_") || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AWS_ENDPOINT_URL="+endpoint, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_EC2_METADATA_DISABLED=true", "HOME="+e.DataDir,
	)
	if ca := os.Getenv("AWS_CA_BUNDLE"); ca != "" {
		env = append(env, "AWS_CA_BUNDLE="+ca)
	}
	return env
}

// DirectEnv is the environment of a child process that reaches the
// emulators without a proxy (the producer, maintain): moto, and Kinesis
// where UseKinesis put it.
func (e *Env) DirectEnv() []string {
	env := e.AWSEnv(e.Moto)
	if e.EFO() {
		env = append(env, "AWS_ENDPOINT_URL_KINESIS="+e.KinesisURL)
	}
	return env
}

// CreateStream creates the stream with n shards and waits until it is active.
func (e *Env) CreateStream(ctx context.Context, n int) error {
	_, err := e.Kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(e.Stream), ShardCount: aws.Int32(int32(n))})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	return e.waitActive(ctx)
}

func (e *Env) waitActive(ctx context.Context) error {
	for i := 0; ; i++ {
		out, err := e.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(e.Stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		if i > 300 {
			return fmt.Errorf("stream %s not active after 30s (last error: %w)", e.Stream, err)
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// Shard is what the harness knows of one shard.
type Shard struct {
	ID       string
	Parents  []string
	Start    *big.Int // hash key range
	End      *big.Int
	Closed   bool
	FirstSeq string
}

// Shards lists every shard of the stream (all pages).
func (e *Env) Shards(ctx context.Context) ([]Shard, error) {
	var out []Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(e.Stream)}
	for {
		res, err := e.Kinesis.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		for _, s := range res.Shards {
			sh := Shard{ID: aws.ToString(s.ShardId)}
			if p := aws.ToString(s.ParentShardId); p != "" {
				sh.Parents = append(sh.Parents, p)
			}
			if p := aws.ToString(s.AdjacentParentShardId); p != "" {
				sh.Parents = append(sh.Parents, p)
			}
			if r := s.HashKeyRange; r != nil {
				sh.Start, _ = new(big.Int).SetString(aws.ToString(r.StartingHashKey), 10)
				sh.End, _ = new(big.Int).SetString(aws.ToString(r.EndingHashKey), 10)
			}
			if r := s.SequenceNumberRange; r != nil {
				sh.Closed = r.EndingSequenceNumber != nil
				sh.FirstSeq = aws.ToString(r.StartingSequenceNumber)
			}
			out = append(out, sh)
		}
		if res.NextToken == nil || *res.NextToken == "" {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
}

// OpenShards returns the open shards ordered by hash range.
func (e *Env) OpenShards(ctx context.Context) ([]Shard, error) {
	all, err := e.Shards(ctx)
	if err != nil {
		return nil, err
	}
	var open []Shard
	for _, s := range all {
		if !s.Closed && s.Start != nil {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool { return open[i].Start.Cmp(open[j].Start) < 0 })
	return open, nil
}

// Split splits shard at the middle of its hash range.
func (e *Env) Split(ctx context.Context, s Shard) error {
	mid := new(big.Int).Add(s.Start, s.End)
	mid.Rsh(mid, 1)
	mid.Add(mid, big.NewInt(1))
	_, err := e.Kinesis.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(e.Stream), ShardToSplit: aws.String(s.ID), NewStartingHashKey: aws.String(mid.String()),
	})
	if err != nil {
		return fmt.Errorf("split %s: %w", s.ID, err)
	}
	return e.waitActive(ctx)
}

// Merge merges two shards with adjacent hash ranges.
func (e *Env) Merge(ctx context.Context, a, b Shard) error {
	_, err := e.Kinesis.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: aws.String(e.Stream), ShardToMerge: aws.String(a.ID), AdjacentShardToMerge: aws.String(b.ID),
	})
	if err != nil {
		return fmt.Errorf("merge %s and %s: %w", a.ID, b.ID, err)
	}
	return e.waitActive(ctx)
}

// LeaseView is one row of the lease table, read without the consumer's code.
type LeaseView struct {
	Key        string
	Owner      string
	Counter    string
	Checkpoint string
}

// RoleOwner returns the leaseOwner of the role lease "role#"+role ("" when
// the role is not held or its lease does not exist yet).
func (e *Env) RoleOwner(ctx context.Context, role string) (string, error) {
	res, err := e.Dynamo.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(e.AppName), ConsistentRead: aws.Bool(true),
		Key: map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: "role#" + role}},
	})
	if err != nil {
		return "", fmt.Errorf("read the %s role: %w", role, err)
	}
	return str(res.Item["leaseOwner"]), nil
}

// Leases reads the shard leases of the lease table (KCL attribute names).
// Role leases (keys starting "role#", e.g. the maintainer's) are not
// shards and are left out. A missing table is no leases.
func (e *Env) Leases(ctx context.Context) (map[string]LeaseView, error) {
	out := map[string]LeaseView{}
	var start map[string]dtypes.AttributeValue
	for {
		res, err := e.Dynamo.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(e.AppName), ExclusiveStartKey: start, ConsistentRead: aws.Bool(true)})
		if err != nil {
			var nf *dtypes.ResourceNotFoundException
			if errors.As(err, &nf) {
				return out, nil
			}
			return nil, fmt.Errorf("scan lease table: %w", err)
		}
		for _, it := range res.Items {
			l := LeaseView{Key: str(it["leaseKey"]), Owner: str(it["leaseOwner"]), Checkpoint: str(it["checkpoint"])}
			if n, ok := it["leaseCounter"].(*dtypes.AttributeValueMemberN); ok {
				l.Counter = n.Value
			}
			if !strings.HasPrefix(l.Key, "role#") {
				out[l.Key] = l
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = res.LastEvaluatedKey
	}
}

func str(v dtypes.AttributeValue) string {
	if s, ok := v.(*dtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// OwnedBy returns the shards whose lease owner is worker.
func OwnedBy(leases map[string]LeaseView, worker string) []string {
	var ids []string
	for k, l := range leases {
		if l.Owner == worker {
			ids = append(ids, k)
		}
	}
	sort.Strings(ids)
	return ids
}

// ArrivalBefore returns, for each of shards, the last sequence number of a
// record that arrived in the stream before t (read back from Kinesis, by
// each record's ApproximateArrivalTimestamp).
func (e *Env) ArrivalBefore(ctx context.Context, shards []string, t time.Time) (map[string]string, error) {
	out := map[string]string{}
	for _, id := range shards {
		err := e.readShard(ctx, id, func(r ktypes.Record) error {
			if r.ApproximateArrivalTimestamp != nil && r.ApproximateArrivalTimestamp.Before(t) {
				out[id] = aws.ToString(r.SequenceNumber)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
