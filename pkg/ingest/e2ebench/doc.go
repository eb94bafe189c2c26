// Package e2ebench holds the consumer's end-to-end benchmark: Kinesis and
// DynamoDB served by kumo in-process, a SQLite catalog and a local
// warehouse. It lives apart from package ingest because kumo's in-process
// services keep goroutines that the ingest tests' leak check would report.
package e2ebench
