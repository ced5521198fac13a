//go:build !unix

package workers

import "time"

func cpuTime() time.Duration { return 0 }
