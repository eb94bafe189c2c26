//go:build race

package iceberg

// raceEnabled reports a -race build, where each commit costs ~6× the CPU.
const raceEnabled = true
