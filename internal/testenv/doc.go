// Package testenv starts the real servers integration tests talk to.
//
// Moto starts moto_server (the Python AWS emulator serving Kinesis,
// DynamoDB, S3 and Glue on one port) on a free loopback port for one test
// and stops it when the test ends. When moto_server is not installed the test
// is skipped with a message saying how to install it, except under CI (env CI
// set), where a missing server is a failure: CI installs it.
//
// # Glue compare-and-swap
//
// moto 5.x's Glue UpdateTable ignores VersionId, so on plain moto two
// writers never conflict and the second silently overwrites the first. The
// moto started here loads the patch in motopatch (sitecustomize.py on
// PYTHONPATH, switched on by PAYSTREAM_MOTO_GLUE_VERSIONID=1; the start
// fails if it did not load), which makes UpdateTable enforce VersionId like
// AWS Glue: an UpdateTable carrying a VersionId other than the table's
// current one fails with ConcurrentModificationException (HTTP 400; the Go
// SDK returns *types.ConcurrentModificationException) and leaves the table
// unchanged; every applied UpdateTable makes a new current version, which
// GetTable returns as VersionId (moto counts "1", "2", … per table; treat
// it as opaque); the check and the update happen under one lock, so of
// concurrent UpdateTables carrying the same VersionId exactly one applies;
// without VersionId an update applies unconditionally; with
// SkipArchive=true the superseded version is not kept for GetTableVersions.
// Every Glue test in the repository runs against this. Kinesis calls on a
// shard's records are made atomic with respect to each other (moto's
// GetRecords otherwise fails with HTTP 500 under concurrent PutRecords);
// resharding is plain moto here; the chaos harness also loads motopatch's
// Kinesis resharding patch.
package testenv
