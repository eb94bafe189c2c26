//go:build unix

package schema

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used. With
// GOMAXPROCS=1 it measures the benchmark's one core even when other
// processes share the machine and stretch wall-clock time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
