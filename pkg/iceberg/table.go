package iceberg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/paystream/paystream/pkg/schema"
)

// Table properties set when paystream creates the table. The last group keeps
// metadata small under a commit every few seconds (DESIGN §7): merged
// manifests, old metadata.json files deleted after each commit, and a short
// metadata log. Snapshots are expired by Sink.Maintain.
var createProperties = iceberggo.Properties{
	table.PropertyFormatVersion:               "2",
	table.ParquetCompressionKey:               "zstd",
	table.ManifestMergeEnabledKey:             "true",
	table.ManifestMinMergeCountKey:            "16",
	table.MetadataDeleteAfterCommitEnabledKey: "true",
	table.MetadataPreviousVersionsMaxKey:      "8",
	table.MinSnapshotsToKeepKey:               "64",
	table.MaxSnapshotAgeMsKey:                 "3600000",
	// zstd level 1 (arrow-go's fastest encoder): the data pages are mostly
	// dictionary indices already, so level 3 bought no smaller files on the
	// benchmark data (6.48 against 6.43 bytes per event at level 1) for
	// about 6 % more CPU per event (BENCHMARKS.md, "The Parquet writer: its
	// settings, dictionaries, zstd").
	"write.parquet.compression-level": "1",
	"paystream.table-version":         "1",
	// Full shard_id bounds in the manifests (the default truncates them to
	// 16 characters, shorter than a Kinesis shard id), so that the dedup
	// window restore (RecentEventIDs) skips the data files of other shards.
	shardIDMetricsKey: "full",
	// No dictionary for the columns whose values almost never repeat: the
	// Parquet writer (arrow-go) hashed their values into a dictionary and
	// then fell back to plain encoding part way through every file anyway,
	// so the files are the same without the hashing.
	dictEncodingKey + schema.ColEventID:        "false",
	dictEncodingKey + schema.ColSequenceNumber: "false",
	dictEncodingKey + schema.ColEventTS:        "false",
	// Delta encodings for event_ts, ingested_at and sequence_number
	// (DeltaEncodingKey).
	DeltaEncodingKey: "true",
}

// dictEncodingKey, followed by a column name, turns the column's Parquet
// dictionary encoding on or off (iceberg-go passes it to the writer).
const dictEncodingKey = "write.parquet.dict-encoding-enabled.column."

// shardIDMetricsKey sets the manifest column statistics kept for shard_id.
const shardIDMetricsKey = table.MetricsModeColumnConfPrefix + "." + schema.ColShardID

// maintenanceProperties are added to an existing table that lacks them
// (never overriding a value someone set on purpose).
var maintenanceProperties = []string{
	table.ManifestMergeEnabledKey,
	table.ManifestMinMergeCountKey,
	table.MetadataDeleteAfterCommitEnabledKey,
	table.MetadataPreviousVersionsMaxKey,
	table.ParquetCompressionKey,
	shardIDMetricsKey,
	dictEncodingKey + schema.ColEventID,
	dictEncodingKey + schema.ColSequenceNumber,
	dictEncodingKey + schema.ColEventTS,
}

// ErrIncompatibleTable means an existing table cannot take paystream's rows.
// The wrapping error lists every difference.
var ErrIncompatibleTable = errors.New("table is incompatible with the payment event schema")

// PartitionSpec returns the table's partitioning: day(event_ts).
func PartitionSpec() iceberggo.PartitionSpec {
	var tsID int
	for _, c := range schema.Columns {
		if c.Name == schema.ColEventTS {
			tsID = c.ID
		}
	}
	return iceberggo.NewPartitionSpec(iceberggo.PartitionField{
		SourceIDs: []int{tsID},
		FieldID:   1000,
		Name:      schema.ColEventTS + "_day",
		Transform: iceberggo.DayTransform{},
	})
}

// EnsureTable returns the table ident, creating its namespace and the table
// when absent (schema from pkg/schema, partitioned by day(event_ts), format
// v2, ZSTD Parquet, metadata-size properties). Location: for SQLite and Glue
// catalogs the table goes to WAREHOUSE/NAMESPACE.db/NAME; a REST catalog
// picks its own location.
//
// For an existing table it checks compatibility (format ≥ 2, every event
// column present with the same type, no column required that paystream
// leaves empty) and returns an error wrapping ErrIncompatibleTable that
// names every difference. Columns the event schema gained since the table
// was created are added as optional columns in one schema update, so a new
// consumer version rolls out without downtime; missing metadata-size
// properties are added the same way.
//
// Safe to call from several processes at once: creation races and
// concurrent schema updates are retried. Called once at start-up by every
// binary that writes.
func EnsureTable(ctx context.Context, cat catalog.Catalog, ident table.Identifier, warehouse string) (*table.Table, error) {
	if err := catalog.ValidateTableIdentifier(ident); err != nil {
		return nil, err
	}
	name := strings.Join(ident, ".")
	if err := ensureNamespace(ctx, cat, catalog.NamespaceFromIdent(ident)); err != nil {
		return nil, fmt.Errorf("table %s: %w", name, err)
	}

	const attempts = 5
	var lastErr error
	for range attempts {
		tbl, err := cat.LoadTable(ctx, ident)
		if errors.Is(err, catalog.ErrNoSuchTable) {
			tbl, err = createTable(ctx, cat, ident, warehouse)
			if errors.Is(err, catalog.ErrTableAlreadyExists) {
				lastErr = err
				continue // another process created it: load and check it
			}
			if err != nil {
				return nil, fmt.Errorf("create table %s: %w", name, err)
			}
			return tbl, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load table %s: %w", name, err)
		}

		plan, err := checkCompatible(tbl)
		if err != nil {
			return nil, fmt.Errorf("table %s at %s: %w", name, tbl.Location(), err)
		}
		if plan.empty() {
			return tbl, nil
		}
		if err := plan.apply(ctx, tbl); err != nil {
			if isConflict(err) {
				lastErr = err
				continue // someone else evolved it first: reload and re-check
			}
			return nil, fmt.Errorf("evolve table %s: %w", name, err)
		}
		// Reload rather than keep the handle Commit returned (DESIGN §7).
	}
	return nil, fmt.Errorf("table %s: still changing after %d attempts: %w", name, attempts, lastErr)
}

func ensureNamespace(ctx context.Context, cat catalog.Catalog, ns table.Identifier) error {
	ok, err := cat.CheckNamespaceExists(ctx, ns)
	if err != nil {
		return fmt.Errorf("check namespace %s: %w", strings.Join(ns, "."), err)
	}
	if ok {
		return nil
	}
	err = cat.CreateNamespace(ctx, ns, iceberggo.Properties{"comment": "created by paystream"})
	if err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return fmt.Errorf("create namespace %s: %w", strings.Join(ns, "."), err)
	}
	return nil
}

func createTable(ctx context.Context, cat catalog.Catalog, ident table.Identifier, warehouse string) (*table.Table, error) {
	spec := PartitionSpec()
	props := iceberggo.Properties{}
	for k, v := range createProperties {
		props[k] = v
	}
	opts := []catalog.CreateTableOpt{
		catalog.WithPartitionSpec(&spec),
		catalog.WithProperties(props),
	}
	if warehouse != "" && cat.CatalogType() != catalog.REST {
		loc, err := url.JoinPath(warehouse, strings.Join(catalog.NamespaceFromIdent(ident), ".")+".db", catalog.TableNameFromIdent(ident))
		if err != nil {
			return nil, fmt.Errorf("table location under %s: %w", warehouse, err)
		}
		opts = append(opts, catalog.WithLocation(loc))
	}
	return cat.CreateTable(ctx, ident, schema.IcebergSchema(), opts...)
}

// evolution is what EnsureTable changes on a compatible table.
type evolution struct {
	addColumns []schema.Column
	props      iceberggo.Properties
}

func (e evolution) empty() bool { return len(e.addColumns) == 0 && len(e.props) == 0 }

func (e evolution) apply(ctx context.Context, tbl *table.Table) error {
	txn := tbl.NewTransaction()
	if len(e.addColumns) > 0 {
		upd := txn.UpdateSchema(true, false)
		for _, c := range e.addColumns {
			upd = upd.AddColumn([]string{c.Name}, eventField(c.Name).Type, c.Doc, false, nil)
		}
		if err := upd.Commit(); err != nil {
			return err
		}
	}
	if len(e.props) > 0 {
		if err := txn.SetProperties(e.props); err != nil {
			return err
		}
	}
	_, err := txn.Commit(ctx)
	return err
}

// checkCompatible compares an existing table with the event schema.
func checkCompatible(tbl *table.Table) (evolution, error) {
	var (
		problems []string
		plan     evolution
		sc       = tbl.Schema()
	)
	if v := tbl.Metadata().Version(); v < 2 {
		problems = append(problems, fmt.Sprintf("format version is %d; paystream needs 2 (row-level operations, Athena)", v))
	}
	ours := map[string]bool{}
	for _, c := range schema.Columns {
		ours[c.Name] = true
		f, ok := sc.FindFieldByName(c.Name)
		if !ok {
			if c.Required {
				problems = append(problems, fmt.Sprintf("column %s is missing and is required (cannot be added to a table with rows)", c.Name))
				continue
			}
			plan.addColumns = append(plan.addColumns, c)
			continue
		}
		if want := eventField(c.Name).Type; !f.Type.Equals(want) {
			problems = append(problems, fmt.Sprintf("column %s is %s in the table; paystream writes %s", c.Name, f.Type, want))
		}
		if f.Required && !c.Required {
			problems = append(problems, fmt.Sprintf("column %s is required in the table; paystream may leave it empty (make it optional)", c.Name))
		}
	}
	for _, f := range sc.Fields() {
		if !ours[f.Name] && f.Required {
			problems = append(problems, fmt.Sprintf("column %s (%s) is required in the table but paystream does not write it", f.Name, f.Type))
		}
	}
	if len(problems) > 0 {
		return evolution{}, fmt.Errorf("%w:\n  - %s", ErrIncompatibleTable, strings.Join(problems, "\n  - "))
	}
	props := tbl.Properties()
	for _, k := range maintenanceProperties {
		if _, ok := props[k]; !ok {
			if plan.props == nil {
				plan.props = iceberggo.Properties{}
			}
			plan.props[k] = createProperties[k]
		}
	}
	return plan, nil
}

// eventField returns the event schema's field called name.
func eventField(name string) iceberggo.NestedField {
	f, _ := eventSchema.FindFieldByName(name)
	return f
}

var eventSchema = schema.IcebergSchema()
