package worker

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procSampler measures this process like psutil's Process.cpu_percent()
// (CPU time used since the previous call ÷ wall time × 100, so it can
// exceed 100 on several cores) and memory_info().rss.
type procSampler struct {
	lastWall time.Time
	lastCPU  time.Duration
}

// cpuTime is user + system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPercent returns the CPU usage since the previous call (0 on the first).
func (p *procSampler) cpuPercent(now time.Time) float64 {
	cpu := cpuTime()
	var pct float64
	if !p.lastWall.IsZero() {
		if wall := now.Sub(p.lastWall); wall > 0 {
			pct = float64(cpu-p.lastCPU) / float64(wall) * 100
		}
	}
	if pct < 0 {
		pct = 0
	}
	p.lastWall, p.lastCPU = now, cpu
	return pct
}

// rssBytes returns the resident set size from /proc/self/statm (0 if
// unavailable).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
