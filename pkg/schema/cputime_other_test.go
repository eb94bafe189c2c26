//go:build !unix

package schema

import "time"

// cpuTime is not measured here; the cpu-* benchmark metrics read 0.
func cpuTime() time.Duration { return 0 }
