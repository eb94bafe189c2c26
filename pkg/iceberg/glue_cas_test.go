package iceberg

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog/glue"
	"github.com/apache/iceberg-go/table"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsglue "github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
	"github.com/aws/smithy-go/middleware"
)

// iceberg-go's Glue CommitTable is a compare-and-swap on Glue's VersionId:
// its UpdateTable carries the VersionId of the GetTable it staged the commit
// on (and SkipArchive=true by default). When another writer's UpdateTable
// lands between the two, Glue — and the moto stand-in testenv starts —
// refuses it with ConcurrentModificationException, which CommitTable
// reports as table.ErrCommitFailed. This pins what the production path
// relies on: an iceberg-go upgrade that stops sending VersionId fails here.
func TestGlueCommitIsCompareAndSwap(t *testing.T) {
	env := newGlueEnv(t)
	ctx := t.Context()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rival := awsglue.NewFromConfig(cfg)
	db, name := splitIdent(t, env.ident)

	// The catalog under test records the VersionId each GetTable returned
	// and each UpdateTable it sent; while race is set, a rival UpdateTable
	// (same content, no VersionId) lands just before iceberg-go's.
	var (
		gotVersions []string
		sent        []awsglue.UpdateTableInput
		race        = true
	)
	watch := middleware.InitializeMiddlewareFunc("watchGlue", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
		if p, ok := in.Parameters.(*awsglue.UpdateTableInput); ok {
			sent = append(sent, *p)
			if race {
				race = false
				cur, err := rival.GetTable(ctx, &awsglue.GetTableInput{DatabaseName: aws.String(db), Name: aws.String(name)})
				if err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
				tb := cur.Table
				if _, err := rival.UpdateTable(ctx, &awsglue.UpdateTableInput{DatabaseName: aws.String(db), TableInput: &gluetypes.TableInput{
					Name: tb.Name, TableType: tb.TableType, Parameters: tb.Parameters, StorageDescriptor: tb.StorageDescriptor,
				}}); err != nil {
					return middleware.InitializeOutput{}, middleware.Metadata{}, err
				}
			}
		}
		out, md, err := next.HandleInitialize(ctx, in)
		if r, ok := out.Result.(*awsglue.GetTableOutput); ok && err == nil {
			gotVersions = append(gotVersions, aws.ToString(r.Table.VersionId))
		}
		return out, md, err
	})
	cfg.APIOptions = append(cfg.APIOptions, func(s *middleware.Stack) error {
		return s.Initialize.Add(watch, middleware.After)
	})
	props := storageProps()
	props["warehouse"] = env.cfg.Warehouse
	cat, err := glue.NewCatalog(glue.WithAwsConfig(cfg), glue.WithAwsProperties(glue.AwsProperties(props)))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []table.Requirement{table.AssertTableUUID(tbl.Metadata().TableUUID())}
	updates := []table.Update{table.NewSetPropertiesUpdate(iceberg.Properties{"paystream.test": "cas"})}

	gotVersions, sent = nil, nil
	_, _, err = cat.CommitTable(ctx, env.ident, reqs, updates)
	var cme *gluetypes.ConcurrentModificationException
	if !errors.Is(err, table.ErrCommitFailed) || !errors.As(err, &cme) {
		t.Fatalf("commit raced by another writer: err = %v; want table.ErrCommitFailed wrapping ConcurrentModificationException", err)
	}
	checkSent := func(what string) {
		t.Helper()
		if len(sent) != 1 || len(gotVersions) == 0 {
			t.Fatalf("%s: %d UpdateTables after %d GetTables; want one after at least one", what, len(sent), len(gotVersions))
		}
		if v := aws.ToString(sent[0].VersionId); v == "" || v != gotVersions[len(gotVersions)-1] {
			t.Fatalf("%s: UpdateTable sent VersionId %q; want %q, the one GetTable returned", what, v, gotVersions[len(gotVersions)-1])
		}
		if !aws.ToBool(sent[0].SkipArchive) {
			t.Errorf("%s: UpdateTable sent SkipArchive %v; want true (iceberg-go's default)", what, sent[0].SkipArchive)
		}
	}
	checkSent("raced commit")

	gotVersions, sent = nil, nil
	if _, _, err := cat.CommitTable(ctx, env.ident, reqs, updates); err != nil {
		t.Fatalf("commit with nobody racing: %v", err)
	}
	checkSent("commit")
	after, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	if after.Properties()["paystream.test"] != "cas" {
		t.Errorf("the commit that succeeded is not in the table: properties %v", after.Properties())
	}
}

func splitIdent(t *testing.T, ident table.Identifier) (db, name string) {
	t.Helper()
	if len(ident) != 2 {
		t.Fatalf("identifier %v: want namespace.table", ident)
	}
	return ident[0], ident[1]
}
