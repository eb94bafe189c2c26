package e2ebench_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/sivchari/kumo"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/commit"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/ingest"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/schema"
)

// BenchmarkWorkerEndToEnd measures the consumer's throughput from Kinesis
// to committed Iceberg rows, with de-duplication on and off. Kinesis and
// DynamoDB are kumo in-process (moto tops out near 3k records/s); the
// catalog is SQLite and the warehouse local. The stream is filled first
// (600k records, 10% duplicates, over 4 shards); the clock runs from the
// worker's start until every record is committed. parquet-bytes/row is
// the table's Parquet files over the rows kept; PAYSTREAM_BENCH_PLAIN=1
// writes the table as earlier versions did (no delta encodings).
//
//	go test -run '^$' -bench WorkerEndToEnd -benchtime 1x ./pkg/ingest/e2ebench
func BenchmarkWorkerEndToEnd(b *testing.B) {
	for _, withDedup := range []bool{true, false} {
		b.Run(fmt.Sprintf("dedup=%v", withDedup), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchWorker(b, withDedup, 600_000, 4)
			}
		})
	}
}

func benchWorker(b *testing.B, withDedup bool, records, shards int) {
	b.StopTimer()
	ctx := context.Background()
	srv := kumo.NewServer()
	defer srv.Close()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	if err != nil {
		b.Fatal(err)
	}
	kin := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	ddb := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	// kumo keeps its state process-wide: give every run its own names.
	stream := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if _, err := kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(int32(shards))}); err != nil {
		b.Fatal(err)
	}
	for {
		out, err := kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Fill the stream: every tenth event is sent twice.
	now := time.Now()
	g := schema.NewGenerator(1, now)
	var batch []ktypes.PutRecordsRequestEntry
	unique := 0
	last := map[string]string{}
	flush := func() {
		out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: batch})
		if err != nil || aws.ToInt32(out.FailedRecordCount) > 0 {
			b.Fatalf("put records: %v", err)
		}
		for _, r := range out.Records {
			if commit.CompareSeq(aws.ToString(r.SequenceNumber), last[aws.ToString(r.ShardId)]) > 0 {
				last[aws.ToString(r.ShardId)] = aws.ToString(r.SequenceNumber)
			}
		}
		batch = batch[:0]
	}
	for sent := 0; sent < records; {
		e := g.Next(now)
		data := e.AppendJSON(nil)
		unique++
		for copies := 1 + boolInt(unique%10 == 0); copies > 0 && sent < records; copies-- {
			batch = append(batch, ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(e.CustomerID)})
			sent++
			if len(batch) == 500 {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}

	cat, ident, warehouse := benchTable(b)
	sink := iceberg.NewSink(cat, ident, iceberg.SinkConfig{})
	var dd *dedup.Filter
	if withDedup {
		if dd, err = dedup.New(dedup.Config{}); err != nil {
			b.Fatal(err)
		}
	}
	store, err := lease.NewDynamoStore(ddb, lease.DynamoStoreConfig{Table: stream + "-leases", CreateTable: true})
	if err != nil {
		b.Fatal(err)
	}
	wc := ingest.DefaultWorkerConfig()
	wc.Pipeline.Stream, wc.Pipeline.DedupWindow = stream, time.Hour
	wc.Coordinator.WorkerID = "bench"
	wc.MaintenanceInterval = 0
	w, err := ingest.NewWorker(wc, ingest.WorkerDeps{
		Kinesis: kin, Leases: store, Sink: sink, DeadLetters: iceberg.NewDeadLetter(warehouse, "", ident, nil), Dedup: dd,
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.StartTimer()
	start := time.Now()
	go func() { done <- w.Run(runCtx) }()
	for {
		pos, err := sink.Positions(ctx)
		if err != nil {
			b.Fatal(err)
		}
		caughtUp := true
		for shard, seq := range last {
			if pos[shard] != seq {
				caughtUp = false
			}
		}
		if caughtUp {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(records)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(unique), "unique")
	b.ReportMetric(float64(testenv.ParquetBytes(b, strings.TrimPrefix(warehouse, "file://")))/float64(unique), "parquet-bytes/row")
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// benchTable opens a new table in a SQLite catalog under b's temporary
// folder (closed when b ends) and returns it with its warehouse.
func benchTable(b *testing.B) (cat catalog.Catalog, ident table.Identifier, warehouse string) {
	b.Helper()
	ctx := b.Context()
	dir := b.TempDir()
	catCfg := iceberg.CatalogConfig{Catalog: "sqlite:" + filepath.Join(dir, "catalog.db"), Warehouse: "file://" + filepath.Join(dir, "warehouse"), Table: iceberg.DefaultTable}
	cat, err := iceberg.OpenCatalog(ctx, catCfg)
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := cat.(io.Closer); ok {
		b.Cleanup(func() { _ = c.Close() })
	}
	ident, _ = iceberg.ParseIdentifier(catCfg.Table)
	tbl, err := iceberg.EnsureTable(ctx, cat, ident, catCfg.Warehouse)
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("PAYSTREAM_BENCH_PLAIN") != "" {
		// A table as earlier versions made it: PLAIN event_ts and
		// sequence_number instead of the delta encodings.
		txn := tbl.NewTransaction()
		if err := txn.SetProperties(iceberggo.Properties{iceberg.DeltaEncodingKey: "false"}); err != nil {
			b.Fatal(err)
		}
		if _, err := txn.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return cat, ident, catCfg.Warehouse
}
