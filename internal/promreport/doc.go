// Package promreport reads the consumer's Prometheus metrics — a text
// exposition scraped from /metrics, or families gathered in process — and
// turns them into the short report `make demo` prints at its end: events per
// second, freshness p50/p99, rejects and duplicates, so a new user sees the
// numbers without setting up Prometheus and Grafana.
//
// A Snapshot is one or more scrapes merged (several consumer tasks are
// summed). Build compares two snapshots taken elapsed apart for rates, or
// reads one snapshot alone for totals and averages since the consumer
// started. Freshness quantiles come from the histogram's buckets through
// internal/quantile, the way PromQL's histogram_quantile computes them, so
// the numbers match what the Grafana dashboard shows.
//
// Nothing here starts goroutines or keeps state; every function is safe for
// concurrent use.
package promreport
