package worker

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// procSampler measures this process's CPU use and memory_info().rss.
//
// The CPU figure is a share of the CPU the process can use: CPU time used
// since the previous call ÷ (wall time × GOMAXPROCS) × 100, so 100 means every
// core the Go runtime may run on was busy. psutil's Process.cpu_percent(),
// which a Python worker sends, is per core (it reaches 100 when the worker's
// single thread fills one core, which is when a Python worker is saturated);
// sending Go's multi-core use on that scale would make the master's 90 %
// warning fire at about one core of a multi-core worker.
type procSampler struct {
	lastWall time.Time
	lastCPU  time.Duration
	cores    int                  // 0 → runtime.GOMAXPROCS(0)
	cpu      func() time.Duration // nil → cpuTime (tests inject one)
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
	read := p.cpu
	if read == nil {
		read = cpuTime
	}
	cpu := read()
	var pct float64
	if !p.lastWall.IsZero() {
		if wall := now.Sub(p.lastWall); wall > 0 {
			cores := p.cores
			if cores <= 0 {
				cores = runtime.GOMAXPROCS(0)
			}
			pct = float64(cpu-p.lastCPU) / float64(wall) / float64(max(cores, 1)) * 100
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
