//go:build goczmq

package worker

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
)

// TestIntegrationIdleNoPolling: a worker registered with a real master and
// no users wakes only for the protocol's own traffic (heartbeats both ways,
// stats), not on a poll timer, and an idle owner still hands a master
// message on at once: users start after /swarm.
//
// Bounds are generous (a 5 ms poll woke the owner 200 times a second); the
// speed itself is measured in bench/.
func TestIntegrationIdleNoPolling(t *testing.T) {
	for _, v := range masterVersions() {
		t.Run(v, func(t *testing.T) {
			m := webMaster(t, v, locusttest.MasterOptions{})
			base, port := m.WebURL(), m.Port

			var mu sync.Mutex
			var conns []*zmqConn
			dial := func(ctx context.Context, ep endpoint, id string, log *slog.Logger) (conn, error) {
				c, err := zmqDial(ctx, ep, id, log)
				if err == nil {
					mu.Lock()
					conns = append(conns, c.(*zmqConn))
					mu.Unlock()
				}
				return c, err
			}
			wakes := func() (n int64) {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					n += c.wakes.Load()
				}
				return n
			}
			quiet := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			cfg := Config{MasterPort: port, ConnectTimeout: time.Minute, Logger: quiet}
			w, err := newWorker(cfg, twoClasses(), emptyStats{}, dial)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- w.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				select {
				case <-errc:
				case <-time.After(30 * time.Second):
					t.Error("worker Run did not return within 30s of cancel")
				}
			})
			id := w.NodeID()
			waitFor(t, base, 60*time.Second, "worker ready", func(s webStats) bool { return workerState(s, id) == "ready" })
			time.Sleep(time.Second) // let registration traffic settle

			const window = 4 * time.Second
			w0, cpu0, cs0 := wakes(), processCPU(t), contextSwitches(t)
			time.Sleep(window)
			w1, cpu1, cs1 := wakes(), processCPU(t), contextSwitches(t)
			secs := window.Seconds()
			wps := float64(w1-w0) / secs
			cpuPct := 100 * (cpu1 - cpu0).Seconds() / secs
			csps := float64(cs1-cs0) / secs
			t.Logf("idle for %v: owner wake-ups %.1f/s, process CPU %.3f %% of a core, context switches %.1f/s",
				window, wps, cpuPct, csps)
			// Heartbeats out (1/s), heartbeats in (1/s on 2.19+), stats (1/3 s).
			if wps > 10 {
				t.Errorf("owner woke %.1f times a second while idle; want ≤ 10 (protocol traffic only)", wps)
			}
			if cpuPct > 2 {
				t.Errorf("idle worker used %.3f %% of a core; want ≤ 2 %% (generous: target is 0.1 %%)", cpuPct)
			}
			if csps > 150 {
				t.Errorf("%.1f context switches a second while idle; want ≤ 150", csps)
			}

			post(t, base, "/swarm", url.Values{"user_count": {"2"}, "spawn_rate": {"2"}, "host": {"http://127.0.0.1:9"}})
			waitFor(t, base, 20*time.Second, "2 users running after /swarm on an idle worker", func(s webStats) bool {
				return s.UserCount == 2 && workerState(s, id) == "running"
			})
		})
	}
}

// processCPU is user+system time of this process.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// contextSwitches sums voluntary and involuntary switches of every thread.
func contextSwitches(t *testing.T) (n int64) {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no /proc/self/task: %v", err)
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // thread exited
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, val, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				x, _ := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
				n += x
			}
		}
	}
	return n
}
