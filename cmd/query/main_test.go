package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/paystream/paystream/internal/testenv"
	"github.com/paystream/paystream/pkg/dedup"
	"github.com/paystream/paystream/pkg/fileingest"
	"github.com/paystream/paystream/pkg/iceberg"
	"github.com/paystream/paystream/pkg/schema"
)

const tierSQL = "SELECT subscription_tier, COUNT(*), SUM(amount_usd) FROM netflix_revenue_raw.subscription_payments WHERE status = 'succeeded' GROUP BY subscription_tier"

// tierTotal is one row of tierSQL's answer.
type tierTotal struct {
	count int64
	sum   schema.Amount
}

// genFile writes n NDJSON lines: mostly valid generated events, every 9th
// line invalid, plus lines with a NULL and an empty event_id and one
// duplicate of an earlier event. It returns the path and tierSQL's answer
// computed from the events written (not from what was ingested).
func genFile(t testing.TB, dir string, n int) (string, map[string]tierTotal, int) {
	t.Helper()
	now := time.Now()
	g := schema.NewGenerator(42, now)
	want := map[string]tierTotal{}
	valid := 0
	var buf bytes.Buffer
	var first schema.Event
	for i := range n {
		switch {
		case i == 5:
			buf.WriteString(`{"event_id":null,"event_type":"payment.succeeded","customer_id":"cus_000001","amount_usd":15.49,"subscription_tier":"standard","status":"succeeded","country_code":"US","payment_processor":"stripe","event_ts":"2024-05-01T00:00:00Z"}`)
		case i == 6:
			buf.WriteString(`{"event_id":"","event_type":"payment.succeeded","customer_id":"cus_000001","amount_usd":15.49,"subscription_tier":"standard","status":"succeeded","country_code":"US","payment_processor":"stripe","event_ts":"2024-05-01T00:00:00Z"}`)
		case i == 7:
			buf.Write(first.AppendJSON(nil)) // a producer retry: dropped by dedup
		case i%9 == 4:
			raw, _ := g.NextInvalid(now)
			buf.Write(raw)
		default:
			ev := g.Next(now.Add(-time.Duration(i) * time.Second))
			if i == 0 {
				first = ev
			}
			valid++
			if ev.Status == schema.StatusSucceeded {
				tt := want[ev.SubscriptionTier]
				tt.count++
				tt.sum += ev.AmountUSD
				want[ev.SubscriptionTier] = tt
			}
			buf.Write(ev.AppendJSON(nil))
		}
		buf.WriteByte('\n')
	}
	path := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, want, valid
}

// ingestFile loads path into the table of cfg with dedup, as consumer
// ingest-file does.
func ingestFile(t testing.TB, cfg iceberg.CatalogConfig, path string) fileingest.Stats {
	t.Helper()
	ctx := context.Background()
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if c, ok := cat.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}()
	ident, err := iceberg.ParseIdentifier(cfg.Table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	filter, err := dedup.New(dedup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fileingest.New(fileingest.Config{
		Table:       iceberg.NewSink(cat, ident, iceberg.SinkConfig{}),
		DeadLetters: iceberg.NewDeadLetter(cfg.Warehouse, "", ident, nil),
		Dedup:       filter,
		BatchRows:   700,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.IngestPath(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// query runs the command with the catalog flags of cfg plus args.
func query(t testing.TB, cfg iceberg.CatalogConfig, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append([]string{"--catalog", cfg.Catalog, "--warehouse", cfg.Warehouse}, args...)
	err := run(context.Background(), all, func(string) (string, bool) { return "", false }, strings.NewReader(""), &stdout, &stderr)
	if stderr.Len() > 0 && err == nil {
		t.Logf("stderr: %s", stderr.String())
	}
	return stdout.String(), err
}

func mustQuery(t testing.TB, cfg iceberg.CatalogConfig, args ...string) [][]string {
	t.Helper()
	out, err := query(t, cfg, append([]string{"--format", "csv"}, args...)...)
	if err != nil {
		t.Fatalf("query %q: %v", args, err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv output %q: %v", out, err)
	}
	return recs[1:]
}

func localConfig(t testing.TB) iceberg.CatalogConfig {
	dir := t.TempDir()
	return iceberg.CatalogConfig{
		Catalog:   "sqlite:" + filepath.Join(dir, "catalog.db"),
		Warehouse: "file://" + filepath.Join(dir, "warehouse"),
		Table:     iceberg.DefaultTable,
	}
}

// checkIngestAndQuery is the end-to-end check shared by the local and the
// AWS (moto) catalogs.
func checkIngestAndQuery(t *testing.T, cfg iceberg.CatalogConfig) {
	path, want, valid := genFile(t, t.TempDir(), 3000)
	st := ingestFile(t, cfg, path)
	if st.Rows != int64(valid) || st.Duplicates != 1 || st.Rejected == 0 {
		t.Fatalf("ingest stats = %+v, want %d rows and 1 duplicate", st, valid)
	}

	check := func(when string) {
		t.Helper()
		got := map[string]tierTotal{}
		for _, r := range mustQuery(t, cfg, tierSQL) {
			n, err := strconv.ParseInt(r[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			sum, err := schema.ParseAmount(r[2])
			if err != nil || !strings.Contains(r[2], ".") {
				t.Fatalf("%s: SUM %q is not an exact decimal: %v", when, r[2], err)
			}
			got[r[0]] = tierTotal{n, sum}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: tiers %v, want %v", when, got, want)
		}
		for tier, w := range want {
			if got[tier] != w {
				t.Errorf("%s: tier %s = %d rows, %s; want %d rows, %s", when, tier, got[tier].count, got[tier].sum, w.count, w.sum)
			}
		}
		r := mustQuery(t, cfg, "SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE event_id IS NULL OR event_id = '') FROM netflix_revenue_raw.subscription_payments")
		if r[0][0] != strconv.Itoa(valid) || r[0][1] != strconv.Itoa(valid) || r[0][2] != "0" {
			t.Errorf("%s: rows, distinct ids, NULL-or-empty ids = %v; want %d, %d, 0", when, r[0], valid, valid)
		}
	}
	check("after ingest")

	again := ingestFile(t, cfg, path)
	if again.Rows != 0 || again.Commits != 0 {
		t.Errorf("re-ingest stats = %+v, want nothing committed", again)
	}
	check("after re-ingest")

	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	dls, err := iceberg.ReadDeadLetters(t.Context(), cfg.Warehouse, "", ident)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(dls)) != st.Rejected {
		t.Errorf("dead letters = %d, want %d", len(dls), st.Rejected)
	}
	var nullID, emptyID bool
	for _, d := range dls {
		if len(d.Reasons) == 0 {
			t.Errorf("dead letter for line %s has no reason", d.Sequence)
		}
		switch d.Sequence {
		case "6":
			nullID = strings.Contains(strings.Join(d.Reasons, "; "), "event_id: is missing")
		case "7":
			emptyID = strings.Contains(strings.Join(d.Reasons, "; "), "event_id: is empty")
		}
	}
	if !nullID || !emptyID {
		t.Errorf("NULL and empty event_id lines are not dead letters with their reasons (null %v, empty %v)", nullID, emptyID)
	}

	tables := mustQuery(t, cfg, "--tables")
	if len(tables) != 1 || tables[0][0] != iceberg.DefaultTable || tables[0][4] != strconv.Itoa(valid) {
		t.Errorf("--tables = %v, want %s with %d rows", tables, iceberg.DefaultTable, valid)
	}
}

func TestIngestThenQueryLocal(t *testing.T) {
	checkIngestAndQuery(t, localConfig(t))
}

func TestIngestThenQueryGlueS3(t *testing.T) {
	endpoint := testenv.Moto(t)
	awsCfg, err := config.LoadDefaultConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
	if _, err := s3c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String("lake")}); err != nil {
		t.Fatal(err)
	}
	checkIngestAndQuery(t, iceberg.CatalogConfig{Catalog: "glue", Warehouse: "s3://lake/warehouse", Table: iceberg.DefaultTable})
}

func TestQueryEmptyTableAndTimeTravel(t *testing.T) {
	cfg := localConfig(t)
	ctx := context.Background()
	cat, err := iceberg.OpenCatalog(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ident, _ := iceberg.ParseIdentifier(cfg.Table)
	if _, err := iceberg.EnsureTable(ctx, cat, ident, cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, cfg, tierSQL); len(r) != 0 {
		t.Fatalf("empty table: %v", r)
	}
	if r := mustQuery(t, cfg, "SELECT count(*) FROM netflix_revenue_raw.subscription_payments"); r[0][0] != "0" {
		t.Fatalf("empty table count: %v", r)
	}

	path, _, valid := genFile(t, t.TempDir(), 500)
	ingestFile(t, cfg, path)
	tbl, err := cat.LoadTable(ctx, ident)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := cat.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	snap := tbl.CurrentSnapshot()
	first := tbl.Metadata().Snapshots()[0]
	count := "SELECT count(*) FROM netflix_revenue_raw.subscription_payments"
	if r := mustQuery(t, cfg, "--snapshot", strconv.FormatInt(snap.SnapshotID, 10), count); r[0][0] != strconv.Itoa(valid) {
		t.Errorf("--snapshot current: %v rows, want %d", r[0][0], valid)
	}
	// 500 lines with 700 per batch: one commit, so before it the table was empty.
	before := time.UnixMilli(first.TimestampMs - 1).UTC().Format(time.RFC3339Nano)
	if r := mustQuery(t, cfg, "--as-of", before, count); r[0][0] != "0" {
		t.Errorf("--as-of %s: %v rows, want 0", before, r[0][0])
	}
	if r := mustQuery(t, cfg, "--as-of", time.Now().Add(time.Hour).Format(time.RFC3339), count); r[0][0] != strconv.Itoa(valid) {
		t.Errorf("--as-of later: %v rows, want %d", r[0][0], valid)
	}
}

func TestQueryReportsMistakesClearly(t *testing.T) {
	cfg := localConfig(t)
	path, _, _ := genFile(t, t.TempDir(), 50)
	ingestFile(t, cfg, path)
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no SQL", nil, true, "no SQL given"},
		{"bad format", []string{"--format", "yaml", "SELECT 1"}, true, "--format"},
		{"bad as-of", []string{"--as-of", "yesterday", "SELECT 1"}, true, "--as-of \"yesterday\""},
		{"both time travels", []string{"--as-of", "2024-05-01T00:00:00Z", "--snapshot", "1", "SELECT 1"}, true, "--snapshot and --as-of"},
		{"tables and SQL", []string{"--tables", "SELECT 1"}, true, "either --tables or SQL"},
		{"unknown flag", []string{"--nope", "SELECT 1"}, true, "nope"},
		{"bad SQL", []string{"SELEC 1"}, false, "syntax error"},
		{"unknown table", []string{"SELECT * FROM netflix_revenue_raw.payments"}, false, "tables in the catalog: netflix_revenue_raw.subscription_payments"},
		{"unknown snapshot", []string{"--snapshot", "12345", "SELECT 1"}, false, "has no snapshot 12345"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := query(t, cfg, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.As(err, new(usageError)) != tc.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tc.usage, tc.usage, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestQueryHelpAndEnvironment(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) (string, bool) { return "", false }, nil, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "PAYSTREAM_FORMAT") || !strings.Contains(stderr.String(), "PAYSTREAM_CATALOG") {
		t.Fatalf("--help: err %v, output:\n%s", err, stderr.String())
	}

	cfg := localConfig(t)
	path, _, valid := genFile(t, t.TempDir(), 50)
	ingestFile(t, cfg, path)
	env := map[string]string{"PAYSTREAM_CATALOG": cfg.Catalog, "PAYSTREAM_WAREHOUSE": cfg.Warehouse, "PAYSTREAM_FORMAT": "json"}
	stdout.Reset()
	err = run(context.Background(), []string{"-"}, func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		strings.NewReader("SELECT count(*) AS n FROM netflix_revenue_raw.subscription_payments"), &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"n": ` + strconv.Itoa(valid); !strings.Contains(stdout.String(), want) {
		t.Errorf("SQL from stdin with env config: output %q lacks %q", stdout.String(), want)
	}
}
