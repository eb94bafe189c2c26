package lease_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/lease"
	"github.com/paystream/paystream/pkg/lease/leasetest"
)

func newDynamoClient(t *testing.T, endpoint string) *dynamodb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(t.Context(),
		config.WithRegion(testenv.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// TestDynamoStore runs everything against one moto_server.
func TestDynamoStore(t *testing.T) {
	client := newDynamoClient(t, testenv.Moto(t))
	tables := 0
	newTable := func() string { tables++; return fmt.Sprintf("leases-%d", tables) }

	t.Run("Conformance", func(t *testing.T) {
		leasetest.Run(t, func(t *testing.T) lease.Store {
			s, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: newTable(), CreateTable: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})

	// Coordinators on real DynamoDB semantics, in real time (short failover).
	t.Run("Coordinators", func(t *testing.T) {
		const fo, ri = 1200 * time.Millisecond, 300 * time.Millisecond
		store, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: newTable(), CreateTable: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.EnsureTable(t.Context()); err != nil {
			t.Fatal(err)
		}
		leases := shards(4)
		createLeases(t, store, leases...)
		fast := func(c *lease.CoordinatorConfig) { c.FailoverTime, c.RenewInterval = fo, ri }
		a := startWorker(t, store, "a", fast)
		b := startWorker(t, store, "b", fast)
		waitFor(t, 10*time.Second, "2/2 spread", func() bool { return len(a.c.Held()) == 2 && len(b.c.Held()) == 2 })
		checkDisjoint(t, store, keys(leases), a, b)

		a.stop() // no release: b must wait for expiry
		killed := time.Now()
		waitFor(t, 3*fo, "b to take a's leases", func() bool { return len(b.c.Held()) == 4 })
		if took := time.Since(killed); took < fo-ri-200*time.Millisecond {
			t.Errorf("b took a's leases %v after a stopped, before the failover time %v", took, fo)
		}
		checkDisjoint(t, store, keys(leases), b)

		// Graceful hand-over: release is picked up within a round or two.
		c := startWorker(t, store, "c", fast)
		waitFor(t, 10*time.Second, "c to steal its share", func() bool { return len(c.c.Held()) == 2 && len(b.c.Held()) == 2 })
		b.c.Drain()
		released := time.Now()
		for _, id := range b.c.Held() {
			if err := b.c.Release(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, fo, "c to take the released leases", func() bool { return len(c.c.Held()) == 4 })
		t.Logf("released leases taken after %v (failover %v)", time.Since(released), fo)
		checkDisjoint(t, store, keys(leases), b, c)
	})

	// The maintainer role on real DynamoDB semantics, beside shard leases:
	// one holder, the shard coordinators leave it alone, a dead holder's
	// role moves after the failover time, a stopped one's at once.
	t.Run("Roles", func(t *testing.T) {
		const fo, ri = 1200 * time.Millisecond, 300 * time.Millisecond
		store, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: newTable(), CreateTable: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.EnsureTable(t.Context()); err != nil {
			t.Fatal(err)
		}
		leases := shards(2)
		createLeases(t, store, leases...)
		kill := &killable{Store: store, last: map[string]time.Time{}}
		fast := func(c *lease.RoleConfig) { c.FailoverTime, c.RenewInterval = fo, ri }
		a := startCandidate(t, kill, "a", fast)
		waitFor(t, 5*time.Second, "a to hold the role", a.r.IsHolder)
		b := startCandidate(t, kill, "b", fast)
		w := startWorker(t, store, "w", func(c *lease.CoordinatorConfig) { c.FailoverTime, c.RenewInterval = fo, ri })
		waitFor(t, 10*time.Second, "w to take both shards", func() bool { return len(w.c.Held()) == 2 })
		checkDisjoint(t, store, keys(leases), w)
		if got := holders(a, b); !slices.Equal(got, []string{"a"}) || roleOwner(t, store) != "a" {
			t.Fatalf("holders %v, store owner %q; want a", got, roleOwner(t, store))
		}

		last := kill.kill(a)
		waitFor(t, 3*fo, "b to take the dead holder's role", b.r.IsHolder)
		if took := time.Since(last); took < fo {
			t.Errorf("b took the role %v after a's last renewal, before the failover time %v", took, fo)
		}

		c := startCandidate(t, store, "c", fast)
		b.stop()
		stopped := time.Now()
		// b released the role: the store names no owner, or already c (it
		// polls every renew interval and may take it before this read).
		if owner := roleOwner(t, store); owner != "" && owner != "c" {
			t.Fatalf("after b stopped the store says owner %q, want none (or c)", owner)
		}
		waitFor(t, fo, "c to take the released role", c.r.IsHolder)
		t.Logf("released role taken after %v (failover %v)", time.Since(stopped), fo)
		checkDisjoint(t, store, keys(leases), w)
	})

	t.Run("MissingTableWithoutCreate", func(t *testing.T) {
		table := newTable()
		s, err := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: table})
		if err != nil {
			t.Fatal(err)
		}
		err = s.EnsureTable(t.Context())
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("EnsureTable without CreateTable on a missing table: err = %v", err)
		}
		if _, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)}); err == nil {
			t.Fatalf("EnsureTable created the table although CreateTable is false")
		}
		// Once the table exists (Terraform made it), EnsureTable is happy.
		creator, _ := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: table, CreateTable: true})
		if err := creator.EnsureTable(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureTable(t.Context()); err != nil {
			t.Fatalf("EnsureTable on an existing table: %v", err)
		}
		out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		if bm := out.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
			t.Fatalf("created table billing = %+v, want PAY_PER_REQUEST", bm)
		}
	})

	t.Run("WrongKeySchema", func(t *testing.T) {
		table := newTable()
		_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: table, CreateTable: true})
		if err := s.EnsureTable(t.Context()); err == nil || !strings.Contains(err.Error(), "not a lease table") {
			t.Fatalf("EnsureTable on a table keyed by id: err = %v", err)
		}
	})

	t.Run("ListPages", func(t *testing.T) {
		s, err := lease.NewDynamoStoreWithScanLimit(client, lease.DynamoStoreConfig{Table: newTable(), CreateTable: true}, 3)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if err := s.EnsureTable(ctx); err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 10 {
			k := fmt.Sprintf("shardId-%012d", i)
			want = append(want, k)
			if err := s.Create(ctx, lease.Lease{Key: k, Checkpoint: lease.CheckpointTrimHorizon}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, l := range got {
			keys = append(keys, l.Key)
		}
		if !reflect.DeepEqual(keys, want) {
			t.Fatalf("List over 4 pages = %v, want %v", keys, want)
		}
	})

	t.Run("KCLItemLayout", func(t *testing.T) {
		table := newTable()
		s, _ := lease.NewDynamoStore(client, lease.DynamoStoreConfig{Table: table, CreateTable: true})
		ctx := t.Context()
		if err := s.EnsureTable(ctx); err != nil {
			t.Fatal(err)
		}
		// An item as KCL writes it, with attributes this store does not model.
		_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"leaseKey":                     &types.AttributeValueMemberS{Value: "shardId-000000000004"},
			"leaseOwner":                   &types.AttributeValueMemberS{Value: "kcl-worker"},
			"leaseCounter":                 &types.AttributeValueMemberN{Value: "12"},
			"checkpoint":                   &types.AttributeValueMemberS{Value: "4959"},
			"checkpointSubSequenceNumber":  &types.AttributeValueMemberN{Value: "0"},
			"ownerSwitchesSinceCheckpoint": &types.AttributeValueMemberN{Value: "3"},
			"parentShardId":                &types.AttributeValueMemberSS{Value: []string{"shardId-000000000001", "shardId-000000000000"}},
			"startingHashKey":              &types.AttributeValueMemberS{Value: "0"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Get(ctx, "shardId-000000000004")
		if err != nil {
			t.Fatal(err)
		}
		want := lease.Lease{Key: "shardId-000000000004", Owner: "kcl-worker", Counter: 12, Checkpoint: "4959",
			OwnerSwitchesSinceCheckpoint: 3, ParentShardIDs: []string{"shardId-000000000000", "shardId-000000000001"}}
		if !reflect.DeepEqual(l, want) {
			t.Fatalf("decoded KCL item = %+v, want %+v", l, want)
		}
		l, err = s.Take(ctx, l, "paystream-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table),
			Key: map[string]types.AttributeValue{"leaseKey": &types.AttributeValueMemberS{Value: "shardId-000000000004"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := out.Item["leaseOwner"]; ok {
			t.Errorf("released lease still has leaseOwner: %v", out.Item["leaseOwner"])
		}
		if n, ok := out.Item["leaseCounter"].(*types.AttributeValueMemberN); !ok || n.Value != "14" {
			t.Errorf("leaseCounter = %#v, want N 14", out.Item["leaseCounter"])
		}
		if _, ok := out.Item["startingHashKey"]; !ok {
			t.Errorf("unknown attribute startingHashKey was dropped")
		}
		if ss, ok := out.Item["parentShardId"].(*types.AttributeValueMemberSS); !ok || len(ss.Value) != 2 {
			t.Errorf("parentShardId = %#v, want a string set of 2", out.Item["parentShardId"])
		}
	})
}

// waitFor polls cond (real time) until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		<-tick.C
	}
}

func TestDynamoStoreConfigValidate(t *testing.T) {
	for _, name := range []string{"", "ab", "has space", strings.Repeat("x", 256)} {
		_, err := lease.NewDynamoStore(nil, lease.DynamoStoreConfig{Table: name})
		if err == nil || !strings.Contains(err.Error(), "--lease-table") {
			t.Errorf("table name %q: err = %v, want an error naming --lease-table", name, err)
		}
	}
	if _, err := lease.NewDynamoStore(nil, lease.DynamoStoreConfig{Table: "paystream"}); err != nil {
		t.Errorf("table name paystream rejected: %v", err)
	}
}
