//go:build goczmq

package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locustbin"
	"github.com/difyload/difyload/internal/locusttest"
	"github.com/difyload/difyload/runner"
)

// Integration tests against real Locust masters on 127.0.0.1.

// masterVersions are the masters every integration test runs against; a
// missing one skips its subtest (fails it in CI, see internal/locustbin).
func masterVersions() []string { return []string{locustbin.V2_12, locustbin.Latest} }

const testLocustfile = `
from locust import User, task, constant

class ChatUser(User):
    weight = 3
    wait_time = constant(1)

    @task
    def chat(self):
        raise RuntimeError("Python never runs this: the Go worker does")

class RetrieveUser(User):
    weight = 1
    wait_time = constant(1)

    @task
    def retrieve(self):
        raise RuntimeError("Python never runs this: the Go worker does")
`

// startMaster starts a master of version running testLocustfile.
func startMaster(t *testing.T, version string, o locusttest.MasterOptions) *locusttest.Master {
	t.Helper()
	o.Version = version
	o.Files = map[string]string{"locustfile.py": testLocustfile}
	return locusttest.StartMasterT(t, o)
}

// webMaster starts a master whose web UI runs the test (debug log).
func webMaster(t *testing.T, version string, o locusttest.MasterOptions) *locusttest.Master {
	t.Helper()
	o.LogLevel = "DEBUG"
	return startMaster(t, version, o)
}

// waitExit waits up to d for the master to exit on its own, else fails t and kills it.
func waitExit(t *testing.T, m *locusttest.Master, d time.Duration) {
	t.Helper()
	if _, err := m.Wait(d); err != nil {
		t.Error(err)
		m.Kill()
	}
}

// runWorker runs a worker in the background; the returned func waits for Run.
func runWorker(t *testing.T, cfg Config, classes []runner.UserClass, st StatsSource) (w *Worker, cancel context.CancelFunc, wait func(time.Duration) error) {
	t.Helper()
	w, err := New(cfg, classes, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	wait = func(d time.Duration) error {
		once.Do(func() {
			select {
			case runErr = <-errc:
			case <-time.After(d):
				t.Errorf("worker Run did not return within %v; cancelling", d)
				cancel()
				runErr = <-errc
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		cancel()
		_ = wait(30 * time.Second)
	})
	return w, cancel, wait
}

func csvRows(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i, r := range locusttest.ReadCSV(t, path) {
		if i == 0 || len(r) < 4 {
			continue
		}
		out[r[0]+" "+r[1]] = r
	}
	return out
}

func TestIntegrationHeadless(t *testing.T) {
	for _, v := range masterVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := startMaster(t, v, locusttest.MasterOptions{Headless: &locusttest.Headless{Users: 4, SpawnRate: 2, RunTime: "6s"},
				CSV: "x", LogLevel: "DEBUG"})

			tap := newTapStats()
			classes := []runner.UserClass{
				recordingClass("ChatUser", tap.st, 100*time.Millisecond),
				recordingClass("RetrieveUser", tap.st, 100*time.Millisecond),
			}
			_, _, wait := runWorker(t, Config{MasterPort: m.Port, ConnectTimeout: time.Minute, Logger: testLogger(t)}, classes, tap)
			if err := wait(90 * time.Second); err != nil {
				t.Fatalf("Run: %v", err)
			}
			waitExit(t, m, 30*time.Second)
			out := m.Output()
			if !strings.Contains(out, "quit") {
				t.Errorf("master log does not mention our quit")
			}

			rows := csvRows(t, m.Path("x_stats.csv"))
			want := tap.cum.Rows()
			if len(want) < 3 {
				t.Fatalf("worker recorded only %d rows", len(want))
			}
			for _, r := range want {
				key := r.Method + " " + r.Name
				got, ok := rows[key]
				if !ok {
					t.Errorf("CSV has no row %q; rows: %v", key, rows)
					continue
				}
				if got[2] != strconv.FormatInt(r.NumRequests, 10) || got[3] != strconv.FormatInt(r.NumFailures, 10) {
					t.Errorf("row %q: CSV requests/failures %s/%s, worker sent %d/%d", key, got[2], got[3], r.NumRequests, r.NumFailures)
				}
			}
			frows := csvRows(t, m.Path("x_failures.csv"))
			if len(frows) == 0 {
				t.Errorf("no failures in x_failures.csv")
			}
		})
	}
}

// webStats is the part of /stats/requests the tests read.
type webStats struct {
	State     string `json:"state"`
	UserCount int    `json:"user_count"`
	Workers   []struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		UserCount int    `json:"user_count"`
	} `json:"workers"`
	Stats []struct {
		Name        string `json:"name"`
		Method      string `json:"method"`
		NumRequests int    `json:"num_requests"`
	} `json:"stats"`
}

func getStats(base string) (webStats, error) {
	var s webStats
	resp, err := locusttest.Get(base + "/stats/requests")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /stats/requests: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitFor polls /stats/requests until ok returns true.
func waitFor(t *testing.T, base string, d time.Duration, what string, ok func(webStats) bool) webStats {
	t.Helper()
	deadline := time.Now().Add(d)
	var last webStats
	var lastErr error
	for time.Now().Before(deadline) {
		s, err := getStats(base)
		if err == nil && ok(s) {
			return s
		}
		last, lastErr = s, err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last state %+v err %v", d, what, last, lastErr)
	return last
}

func workerState(s webStats, id string) string {
	for _, w := range s.Workers {
		if w.ID == id {
			return w.State
		}
	}
	return ""
}

func post(t *testing.T, base, path string, form url.Values) {
	t.Helper()
	resp, err := locusttest.PostForm(base+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

func get(t *testing.T, base, path string) {
	t.Helper()
	resp, err := locusttest.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
}

func TestIntegrationStopStartCycle(t *testing.T) {
	for _, v := range masterVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := webMaster(t, v, locusttest.MasterOptions{})
			base := m.WebURL()

			tap := newTapStats()
			classes := []runner.UserClass{
				recordingClass("ChatUser", tap.st, 100*time.Millisecond),
				recordingClass("RetrieveUser", tap.st, 100*time.Millisecond),
			}
			w, _, wait := runWorker(t, Config{MasterPort: m.Port, ConnectTimeout: time.Minute, StatsInterval: time.Second, Logger: testLogger(t)}, classes, tap)
			id := w.NodeID()

			waitFor(t, base, 60*time.Second, "worker ready", func(s webStats) bool { return workerState(s, id) == "ready" })
			for cycle := 1; cycle <= 2; cycle++ {
				post(t, base, "/swarm", url.Values{"user_count": {"4"}, "spawn_rate": {"4"}, "host": {"http://127.0.0.1:9"}})
				waitFor(t, base, 20*time.Second, fmt.Sprintf("cycle %d: 4 users running", cycle), func(s webStats) bool {
					return s.UserCount == 4 && workerState(s, id) == "running"
				})
				waitFor(t, base, 20*time.Second, fmt.Sprintf("cycle %d: requests counted", cycle), func(s webStats) bool {
					for _, e := range s.Stats {
						if e.Name == "/ChatUser" && e.NumRequests > 0 {
							return true
						}
					}
					return false
				})
				get(t, base, "/stop")
				waitFor(t, base, 20*time.Second, fmt.Sprintf("cycle %d: stopped and worker ready again", cycle), func(s webStats) bool {
					return s.State == "stopped" && workerState(s, id) == "ready" && s.UserCount == 0
				})
			}
			_ = m.Signal(syscall.SIGTERM)
			if err := wait(30 * time.Second); err != nil {
				t.Errorf("Run after master quit: %v", err)
			}
			waitExit(t, m, 30*time.Second)
		})
	}
}

func TestIntegrationMasterRestart(t *testing.T) {
	for _, v := range masterVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m1 := webMaster(t, v, locusttest.MasterOptions{})
			base := m1.WebURL()

			classes := []runner.UserClass{
				&testClass{name: "ChatUser", weight: 3, wait: 50 * time.Millisecond},
				&testClass{name: "RetrieveUser", weight: 1, wait: 50 * time.Millisecond},
			}
			w, cancel, wait := runWorker(t, Config{MasterPort: m1.Port, ConnectTimeout: time.Minute, Logger: testLogger(t)}, classes, emptyStats{})
			id := w.NodeID()
			waitFor(t, base, 60*time.Second, "worker registered with the first master", func(s webStats) bool { return workerState(s, id) == "ready" })
			post(t, base, "/swarm", url.Values{"user_count": {"2"}, "spawn_rate": {"2"}, "host": {"http://127.0.0.1:9"}})
			waitFor(t, base, 20*time.Second, "2 users running", func(s webStats) bool { return s.UserCount == 2 })

			m1.Kill()
			m2 := webMaster(t, v, locusttest.MasterOptions{Dir: m1.Dir, Port: m1.Port, WebPort: m1.WebPort})
			// The new master needs a moment to start; the worker then has to
			// notice and re-register within 10 s of the master being up.
			waitFor(t, base, 60*time.Second, "second master's web UI up", func(webStats) bool { return true })
			start := time.Now()
			waitFor(t, base, 10*time.Second, "worker re-registered with the restarted master", func(s webStats) bool {
				return workerState(s, id) == "ready"
			})
			t.Logf("re-registered %v after the new master's UI came up", time.Since(start).Round(time.Millisecond))
			// And it is usable.
			post(t, base, "/swarm", url.Values{"user_count": {"2"}, "spawn_rate": {"2"}, "host": {"http://127.0.0.1:9"}})
			waitFor(t, base, 20*time.Second, "2 users running on the new master", func(s webStats) bool { return s.UserCount == 2 && workerState(s, id) == "running" })

			// Two-stage stop via ctx: Run returns nil and sends quit.
			cancel()
			if err := wait(30 * time.Second); err != nil {
				t.Errorf("Run after cancel: %v", err)
			}
			waitFor(t, base, 10*time.Second, "worker gone after quit", func(s webStats) bool { return workerState(s, id) == "" })
			m2.Kill()
		})
	}
}

// TestIntegrationIPv6 connects over [::1] (ZMQ_IPV6); only 2.32+ masters
// can bind IPv6, so 2.12.1 is skipped.
func TestIntegrationIPv6(t *testing.T) {
	for _, v := range masterVersions() {
		if v == locustbin.V2_12 {
			continue
		}
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			var lc net.ListenConfig
			if l, err := lc.Listen(t.Context(), "tcp", "[::1]:0"); err != nil {
				t.Skipf("no IPv6 loopback: %v", err)
			} else {
				l.Close()
			}
			m := startMaster(t, v, locusttest.MasterOptions{BindHost: "::1", Headless: &locusttest.Headless{Users: 2, SpawnRate: 2, RunTime: "3s"}})
			_, _, wait := runWorker(t, Config{MasterHost: "::1", MasterPort: m.Port, ConnectTimeout: time.Minute, Logger: testLogger(t)}, twoClasses(), emptyStats{})
			if err := wait(60 * time.Second); err != nil {
				t.Fatalf("Run over IPv6: %v", err)
			}
			waitExit(t, m, 30*time.Second)
			if out := m.Output(); !strings.Contains(out, "quit") {
				t.Errorf("master never saw our quit:\n%s", out)
			}
		})
	}
}
