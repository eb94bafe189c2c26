//go:build linux

package chaos

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// The patched moto must reshard like Kinesis, or the harness's split and
// merge faults prove nothing: new records go to the children only, the
// parents keep their records and end, and a merge copies nothing.
func TestMotoReshardsLikeKinesis(t *testing.T) {
	ctx := context.Background()
	env := motoStream(t)
	// Each record's data is unique, and records are counted by distinct
	// data: the SDK may resend a PutRecord whose first attempt applied
	// (seen under load), and a resent copy is not a routing error.
	next := 0
	put := func(n int) map[string]int {
		per := map[string]int{}
		for range n {
			next++
			out, err := env.Kinesis.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamName: aws.String(env.Stream), PartitionKey: aws.String("k" + strconv.Itoa(next)), Data: []byte(strconv.Itoa(next)),
			})
			if err != nil {
				t.Fatal(err)
			}
			per[aws.ToString(out.ShardId)]++
		}
		return per
	}
	read := func(shard string) (n int, ended bool) {
		it, err := env.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(env.Stream), ShardId: aws.String(shard), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		seen := map[string]bool{}
		for range 5 {
			out, err := env.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				seen[string(r.Data)] = true
			}
			if out.NextShardIterator == nil {
				return len(seen), true
			}
			iter = out.NextShardIterator
		}
		return len(seen), false
	}

	put(10)
	open, err := env.OpenShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parent := open[0].ID
	if err := env.Split(ctx, open[0]); err != nil {
		t.Fatal(err)
	}
	after := put(40)
	if after[parent] != 0 || len(after) != 2 {
		t.Fatalf("records after the split went to %v; want the two children only", after)
	}
	if n, ended := read(parent); n != 10 || !ended {
		t.Fatalf("parent after the split: %d records, ended %v; want its 10 records and an end", n, ended)
	}
	kids, err := env.OpenShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, ended := read(kids[0].ID); ended || n != after[kids[0].ID] {
		t.Fatalf("open child %s: %d records (want %d), ended %v", kids[0].ID, n, after[kids[0].ID], ended)
	}
	if err := env.Merge(ctx, kids[0], kids[1]); err != nil {
		t.Fatal(err)
	}
	merged, err := env.OpenShards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(merged) != 1 || len(merged[0].Parents) != 2 {
		t.Fatalf("after the merge: open shards %+v", merged)
	}
	if n, _ := read(merged[0].ID); n != 0 {
		t.Fatalf("the merged shard starts with %d records copied from its parents; want none", n)
	}
	if got := put(5); got[merged[0].ID] != 5 {
		t.Fatalf("records after the merge went to %v", got)
	}
}

// motoStream starts a moto_server for the test (skipped with -short, or
// without moto outside CI) and returns an environment on it with a stream
// of one shard.
func motoStream(t *testing.T) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts moto_server; skipped with -short")
	}
	dir := t.TempDir()
	m, err := StartMoto(dir)
	if errors.Is(err, ErrNoMoto) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	ctx := context.Background()
	env, err := NewEnv(ctx, dir, m.URL, Binaries{}, CatalogSQLite)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.CreateStream(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return env
}
