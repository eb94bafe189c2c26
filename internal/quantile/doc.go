// Package quantile estimates quantiles (p50, p99) the three ways paystream
// needs them, each implemented once:
//
//   - Buckets, from cumulative histogram buckets the way PromQL's
//     histogram_quantile does (linear interpolation inside the bucket), so
//     the consumer's log line and the demo's report match what the Grafana
//     dashboard shows. SubBuckets turns two readings of a histogram into the
//     observations made between them.
//   - LogHistogram, a fixed log-bucketed histogram with 2% wide buckets that
//     a long run can feed forever in bounded memory (the producer's
//     PutRecords latency).
//   - Sorted, the nearest-rank quantile of a sorted sample (benchmarks).
//
// LogHistogram and Sorted share the nearest-rank definition: the q-quantile
// of n observations is the ⌈q·n⌉-th smallest.
//
// Nothing here starts goroutines. The functions are safe for concurrent
// use; a LogHistogram is not (its owner locks).
package quantile
