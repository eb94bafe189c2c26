// Package sqlview runs SQL over the tables of an Iceberg catalog with an
// embedded DuckDB. It is the engine behind cmd/query and the only package of
// paystream that uses cgo.
//
// DuckDB's iceberg and httpfs extensions are not available offline, so the
// package does the Iceberg part itself: for every table of the catalog it
// plans the selected snapshot with iceberg-go (Scan.PlanFiles), and creates
// a DuckDB view "namespace"."table" over read_parquet of the live data files.
// Columns are bound by Iceberg field id (read_parquet's schema parameter), so
// renamed columns read correctly and columns a data file lacks read as NULL.
// A table with no snapshot, or none at the requested time, is a view with the
// table's columns and zero rows. A table whose snapshot holds delete files
// (positional, equality or deletion vectors) cannot be read correctly from
// its data files alone: it gets no view, a query naming it fails with
// ErrDeleteFiles and a message naming the table, Tables reports it, and
// queries over other tables still work. A table that cannot be loaded or
// planned is treated the same way (ErrUnreadable). Data files that are not
// on the local filesystem (s3://) are copied into a temporary directory
// first, removed by Close.
//
// DuckDB is opened in memory with autoinstall_known_extensions=false and
// autoload_known_extensions=false: it never reaches the network.
//
// Time travel: Options.AsOf selects, for every table, the snapshot current at
// that time; Options.SnapshotID selects one snapshot of Options.SnapshotTable.
//
// Results are printed by Format (table, csv, json). Decimals are printed
// exactly with their scale (SUM(amount_usd) → 1234.50), never through a float;
// timestamps with a time zone in RFC 3339 UTC.
//
// An Engine is used by one goroutine: Open, any number of Query calls, Close.
package sqlview
