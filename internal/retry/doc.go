// Package retry holds what every AWS caller in paystream needs to retry a
// call: whether an error is worth retrying (Retryable) and whether it was
// throttling (Throttled), a jittered exponential Backoff schedule, and a
// Sleep that ends early when its context does.
//
// It decides nothing about how often to retry or what a retry may
// duplicate: callers own their attempt limits and their accounting of an
// unknown outcome (the producer's PutRecords, the Iceberg sink's commit).
//
// Everything here is safe for concurrent use and starts no goroutines.
package retry
