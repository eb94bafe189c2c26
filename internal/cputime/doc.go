// Package cputime reads the process's CPU time, for benchmarks that report
// CPU seconds beside wall time: with GOMAXPROCS=1 it measures the one core
// a benchmark uses even when other processes share the machine and stretch
// its wall-clock time.
package cputime
