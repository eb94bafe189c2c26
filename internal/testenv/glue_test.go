package testenv

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/glue"
	gluetypes "github.com/aws/aws-sdk-go-v2/service/glue/types"
)

const (
	glueDB    = "db"
	glueTable = "t"
)

// newGlue starts moto and returns a Glue client for it with retries off, so
// every answer the test sees is the answer to exactly one request, and a
// table glueDB.glueTable with Parameters {"n": "0"}.
func newGlue(t *testing.T) *glue.Client {
	t.Helper()
	endpoint := StartMoto(t)
	ctx := t.Context()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	)
	if err != nil {
		t.Fatal(err)
	}
	g := glue.NewFromConfig(cfg, func(o *glue.Options) { o.BaseEndpoint = aws.String(endpoint) })
	if _, err := g.CreateDatabase(ctx, &glue.CreateDatabaseInput{DatabaseInput: &gluetypes.DatabaseInput{Name: aws.String(glueDB)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.CreateTable(ctx, &glue.CreateTableInput{DatabaseName: aws.String(glueDB), TableInput: tableInput("0")}); err != nil {
		t.Fatal(err)
	}
	return g
}

func tableInput(n string) *gluetypes.TableInput {
	return &gluetypes.TableInput{Name: aws.String(glueTable), Parameters: map[string]string{"n": n}}
}

// current returns the table's VersionId and its parameter "n".
func current(t *testing.T, g *glue.Client) (version, n string) {
	t.Helper()
	out, err := g.GetTable(t.Context(), &glue.GetTableInput{DatabaseName: aws.String(glueDB), Name: aws.String(glueTable)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.Table.VersionId) == "" {
		t.Fatal("GetTable returned no VersionId")
	}
	return aws.ToString(out.Table.VersionId), out.Table.Parameters["n"]
}

func update(t *testing.T, g *glue.Client, version *string, n string, skipArchive bool) error {
	_, err := g.UpdateTable(t.Context(), &glue.UpdateTableInput{
		DatabaseName: aws.String(glueDB),
		TableInput:   tableInput(n),
		VersionId:    version,
		SkipArchive:  aws.Bool(skipArchive),
	})
	return err
}

// requireConflict fails t unless err is Glue's ConcurrentModificationException
// as the Go SDK reports it: the typed error, from an HTTP 400 answer.
func requireConflict(t *testing.T, err error) {
	t.Helper()
	var cme *gluetypes.ConcurrentModificationException
	if !errors.As(err, &cme) {
		t.Fatalf("err = %v (%T); want *types.ConcurrentModificationException", err, err)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
		t.Fatalf("ConcurrentModificationException without HTTP 400: %v", err)
	}
}

// The moto stand-in refuses an UpdateTable whose VersionId is not the
// table's current one, as AWS Glue does, and leaves the table as it was.
func TestMotoGlueVersionIDSequential(t *testing.T) {
	g := newGlue(t)

	v1, _ := current(t, g)
	if err := update(t, g, aws.String(v1), "1", true); err != nil {
		t.Fatalf("update with the current VersionId: %v", err)
	}
	v2, n := current(t, g)
	if v2 == v1 || n != "1" {
		t.Fatalf("after an update: version %s (was %s), n = %s; want a new version and n = 1", v2, v1, n)
	}

	requireConflict(t, update(t, g, aws.String(v1), "stale", true))
	if v, n := current(t, g); v != v2 || n != "1" {
		t.Fatalf("a refused update changed the table: version %s, n = %s; want %s, 1", v, n, v2)
	}
	requireConflict(t, update(t, g, aws.String("no-such-version"), "bogus", true))

	if err := update(t, g, aws.String(v2), "2", false); err != nil {
		t.Fatalf("update with the current VersionId after a refusal: %v", err)
	}
	v3, n := current(t, g)
	if v3 == v2 || v3 == v1 || n != "2" {
		t.Fatalf("after the second update: version %s, n = %s; want a version other than %s and %s, n = 2", v3, n, v1, v2)
	}

	// No VersionId: no condition, as on AWS.
	if err := update(t, g, nil, "3", true); err != nil {
		t.Fatalf("update without VersionId: %v", err)
	}
	v4, n := current(t, g)
	if v4 == v3 || n != "3" {
		t.Fatalf("after an unconditional update: version %s, n = %s", v4, n)
	}

	// SkipArchive=true drops the superseded version (v1 and v3 went that
	// way); without it the superseded version stays (v2).
	out, err := g.GetTableVersions(t.Context(), &glue.GetTableVersionsInput{DatabaseName: aws.String(glueDB), TableName: aws.String(glueTable)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tv := range out.TableVersions {
		got = append(got, aws.ToString(tv.VersionId))
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{v2, v4}) {
		t.Errorf("table versions = %v, want [%s %s]", got, v2, v4)
	}
}

// Two UpdateTables racing with one VersionId: exactly one applies, the
// other gets ConcurrentModificationException, and the table holds the
// winner's input. moto_server serves each request on its own thread, so
// without the stand-in's lock both could pass the check.
func TestMotoGlueVersionIDConcurrent(t *testing.T) {
	g := newGlue(t)
	const rounds = 20
	for round := range rounds {
		version, _ := current(t, g)
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				<-start
				errs[i] = update(t, g, aws.String(version), fmt.Sprintf("%d-%d", round, i), true)
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: both UpdateTables with VersionId %s succeeded", round, version)
				}
				winner = i
				continue
			}
			requireConflict(t, err)
		}
		if winner < 0 {
			t.Fatalf("round %d: neither UpdateTable succeeded: %v", round, errs)
		}
		now, n := current(t, g)
		if want := fmt.Sprintf("%d-%d", round, winner); now == version || n != want {
			t.Fatalf("round %d: table at version %s (was %s) with n = %s; want a new version with n = %s", round, now, version, n, want)
		}
	}
}
