package iceberg

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/schema"
)

func TestEnsureTableCreatesPaymentTable(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	tbl, err := env.cat.LoadTable(ctx, env.ident)
	if err != nil {
		t.Fatal(err)
	}
	assertPaymentTable(t, tbl)
	if want := strings.TrimSuffix(env.cfg.Warehouse, "/") + "/netflix_revenue_raw.db/subscription_payments"; tbl.Location() != want {
		t.Errorf("location = %s, want %s", tbl.Location(), want)
	}

	// A second EnsureTable (another process starting) changes nothing.
	again, err := EnsureTable(ctx, env.cat, env.ident, env.cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	if again.MetadataLocation() != tbl.MetadataLocation() {
		t.Errorf("EnsureTable on an up-to-date table wrote new metadata %s", again.MetadataLocation())
	}
}

// assertPaymentTable checks schema, partitioning and properties.
func assertPaymentTable(t *testing.T, tbl *table.Table) {
	t.Helper()
	if v := tbl.Metadata().Version(); v != 2 {
		t.Errorf("format version = %d, want 2", v)
	}
	sc := tbl.Schema()
	if got, want := len(sc.Fields()), len(schema.Columns); got != want {
		t.Errorf("table has %d columns, want %d", got, want)
	}
	for _, c := range schema.Columns {
		f, ok := sc.FindFieldByName(c.Name)
		if !ok {
			t.Errorf("column %s missing", c.Name)
			continue
		}
		if want := eventField(c.Name); !f.Type.Equals(want.Type) || f.Required != c.Required || f.ID != c.ID {
			t.Errorf("column %s = id %d %s required=%v, want id %d %s required=%v", c.Name, f.ID, f.Type, f.Required, c.ID, want.Type, c.Required)
		}
	}
	if f, _ := sc.FindFieldByName(schema.ColAmountUSD); f.Type.String() != "decimal(12, 2)" {
		t.Errorf("amount_usd is %s, want decimal(12, 2)", f.Type)
	}
	if f, _ := sc.FindFieldByName(schema.ColEventTS); !f.Type.Equals(iceberggo.PrimitiveTypes.TimestampTz) {
		t.Errorf("event_ts is %s, want timestamptz", f.Type)
	}
	spec := tbl.Spec()
	if spec.NumFields() != 1 {
		t.Fatalf("partition spec %s, want day(event_ts)", spec)
	}
	pf := spec.Field(0)
	src, _ := sc.FindColumnName(pf.SourceIDs[0])
	if src != schema.ColEventTS || pf.Transform.String() != "day" {
		t.Errorf("partition field = %s(%s), want day(event_ts)", pf.Transform, src)
	}
	props := tbl.Properties()
	for k, want := range map[string]string{
		"write.parquet.compression-codec":                            "zstd",
		"write.parquet.compression-level":                            "1",
		"commit.manifest-merge.enabled":                              "true",
		"write.metadata.delete-after-commit.enabled":                 "true",
		"write.metadata.previous-versions-max":                       "8",
		"write.parquet.dict-encoding-enabled.column.event_id":        "false",
		"write.parquet.dict-encoding-enabled.column.sequence_number": "false",
		"write.parquet.dict-encoding-enabled.column.event_ts":        "false",
	} {
		if props[k] != want {
			t.Errorf("property %s = %q, want %q", k, props[k], want)
		}
	}
}

func TestEnsureTableRefusesIncompatibleTable(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	ident := table.Identifier{"netflix_revenue_raw", "legacy"}
	// amount as a double, event_id optional, an extra required column.
	sc := iceberggo.NewSchema(0,
		iceberggo.NestedField{ID: 1, Name: schema.ColEventID, Type: iceberggo.PrimitiveTypes.String},
		iceberggo.NestedField{ID: 2, Name: schema.ColAmountUSD, Type: iceberggo.PrimitiveTypes.Float64},
		iceberggo.NestedField{ID: 3, Name: "region", Type: iceberggo.PrimitiveTypes.String, Required: true},
	)
	if _, err := env.cat.CreateTable(ctx, ident, sc); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureTable(ctx, env.cat, ident, env.cfg.Warehouse)
	if !errors.Is(err, ErrIncompatibleTable) {
		t.Fatalf("err = %v, want ErrIncompatibleTable", err)
	}
	t.Logf("refusal reads:\n%v", err)
	for _, want := range []string{
		"column amount_usd is double in the table; paystream writes decimal(12, 2)",
		"column region (string) is required in the table but paystream does not write it",
		"netflix_revenue_raw.legacy",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	// event_id optional in the table is fine: paystream always fills it.
	if strings.Contains(err.Error(), "column event_id") {
		t.Errorf("error complains about event_id:\n%v", err)
	}
}

func TestEnsureTableRefusesFormatV1(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	ident := table.Identifier{"netflix_revenue_raw", "v1"}
	spec := PartitionSpec()
	if _, err := env.cat.CreateTable(ctx, ident, schema.IcebergSchema(), catalog.WithPartitionSpec(&spec),
		catalog.WithProperties(iceberggo.Properties{"format-version": "1"})); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureTable(ctx, env.cat, ident, env.cfg.Warehouse)
	if !errors.Is(err, ErrIncompatibleTable) || !strings.Contains(err.Error(), "format version is 1; paystream needs 2") {
		t.Errorf("err = %v, want ErrIncompatibleTable about format version 1", err)
	}
}

func TestEnsureTableAddsNewOptionalColumns(t *testing.T) {
	env := newSQLiteEnv(t)
	ctx := context.Background()
	// A table from an older release: without the lineage columns.
	ident := table.Identifier{"netflix_revenue_raw", "older"}
	var old []iceberggo.NestedField
	for _, f := range schema.IcebergSchema().Fields() {
		if f.Name != schema.ColSequenceNumber && f.Name != schema.ColIngestedAt && f.Name != schema.ColSubSequence {
			old = append(old, f)
		}
	}
	spec := PartitionSpec()
	if _, err := env.cat.CreateTable(ctx, ident, iceberggo.NewSchema(0, old...), catalog.WithPartitionSpec(&spec)); err != nil {
		t.Fatal(err)
	}
	tbl, err := EnsureTable(ctx, env.cat, ident, env.cfg.Warehouse)
	if err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	for _, name := range []string{schema.ColSequenceNumber, schema.ColIngestedAt, schema.ColSubSequence} {
		f, ok := tbl.Schema().FindFieldByName(name)
		if !ok || f.Required {
			t.Errorf("column %s after evolution: found=%v required=%v, want optional column", name, ok, f.Required)
		}
	}
	for _, k := range []string{"commit.manifest-merge.enabled", "write.parquet.dict-encoding-enabled.column.event_id"} {
		if _, ok := tbl.Properties()[k]; !ok {
			t.Errorf("maintenance property %s was not added to the existing table", k)
		}
	}
	// The evolved table takes full rows.
	s := NewSink(env.cat, ident, SinkConfig{})
	if _, err := s.Commit(ctx, makeBatch(t, "s", "", 1, 5)); err != nil {
		t.Fatalf("commit to evolved table: %v", err)
	}
	if got := recentIDs(t, s, []string{"s"}, makeRows("s", 1, 1)[0].IngestedAt); len(got) != 5 {
		t.Errorf("recent ids on evolved table = %d; want 5", len(got))
	}
}

func TestParseIdentifier(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{DefaultTable, DefaultTable, true},
		{"a.b.c", "a.b.c", true},
		{"ns.my-table_2", "ns.my-table_2", true},
		{"table", "", false},
		{"", "", false},
		{"ns.", "", false},
		{".t", "", false},
		{"ns.t/x", "", false},
		{"ns.t x", "", false},
	} {
		got, err := ParseIdentifier(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseIdentifier(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && strings.Join(got, ".") != tc.want {
			t.Errorf("ParseIdentifier(%q) = %v", tc.in, got)
		}
	}
}

func TestCatalogConfigValidate(t *testing.T) {
	def := DefaultCatalogConfig()
	if err := def.Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
	if !strings.HasPrefix(def.Warehouse, "file:///") || !strings.HasSuffix(def.Warehouse, "/data/warehouse") {
		t.Errorf("default warehouse = %s", def.Warehouse)
	}
	for _, tc := range []struct {
		cfg  CatalogConfig
		want string // substring of the error; "" = valid
	}{
		{CatalogConfig{"glue", "s3://bucket/wh", DefaultTable}, ""},
		{CatalogConfig{"https://rest.example.com/catalog", "", DefaultTable}, ""},
		{CatalogConfig{"sqlite:/tmp/c.db", "s3://bucket/wh", DefaultTable}, ""},
		{CatalogConfig{"", "file:///wh", DefaultTable}, "--catalog is empty"},
		{CatalogConfig{"hive://x", "file:///wh", DefaultTable}, "--catalog \"hive://x\": unknown catalog"},
		{CatalogConfig{"sqlite:", "file:///wh", DefaultTable}, "sqlite needs a file path"},
		{CatalogConfig{"glue", "file:///wh", DefaultTable}, "--warehouse \"file:///wh\": with --catalog=glue"},
		{CatalogConfig{"sqlite:c.db", "/wh", DefaultTable}, "--warehouse \"/wh\": must start with file:// or s3://"},
		{CatalogConfig{"sqlite:c.db", "file://relative/wh", DefaultTable}, "absolute file:///path"},
		{CatalogConfig{"sqlite:c.db", "s3:///nobucket", DefaultTable}, "needs a bucket"},
		{CatalogConfig{"sqlite:c.db", "file:///wh", "payments"}, "--table: table \"payments\": want NAMESPACE.NAME"},
		{CatalogConfig{"glue", "s3://b/wh", "a.b.c"}, "Glue has one namespace level"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	cfg := DefaultCatalogConfig()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"--catalog=glue", "--warehouse=s3://b/w", "--table=a.b"}); err != nil {
		t.Fatal(err)
	}
	if cfg != (CatalogConfig{"glue", "s3://b/w", "a.b"}) {
		t.Errorf("parsed %+v", cfg)
	}
}
