//go:build goczmq

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
)

// Locust parity (issue 14): what a team that swaps Python workers for difyload's Go workers
// would notice. Every test runs against real masters and fails on the behaviour it fixes.

// aggregated returns the master's Aggregated row from /stats/requests.
func (s uiStats) aggregated() (req, fail int64) {
	for _, r := range s.Stats {
		if r.Name == "Aggregated" {
			return r.NumRequests, r.NumFailures
		}
	}
	return -1, -1
}

// rowSums sums the rows other than Aggregated: all of them, and the request rows only
// (Type other than SSE).
func (s uiStats) rowSums() (all, requests int64) {
	for _, r := range s.Stats {
		if r.Name == "Aggregated" {
			continue
		}
		all += r.NumRequests
		if r.Method != "SSE" {
			requests += r.NumRequests
		}
	}
	return all, requests
}

func servedByMock(t *testing.T, mk *mock) (total int64) {
	t.Helper()
	for _, by := range mk.truth(t).Counts {
		for _, n := range by {
			total += n
		}
	}
	return total
}

// Point 1, headless: the Aggregated line of the master's CSV (the header RPS and the Charts
// tab come from the same entry) counts the requests the mock served, failures included once
// per failed request, on both masters.
func TestParityAggregatedHeadless(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "40ms", "--token-delay", "5ms", "--tokens", "6",
				"--retrieval-latency", "10ms", "--faults", "429=0.08,error_event=0.05,no_terminal=0.04")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 6, rate: 6, runTime: "8s", expect: 2, host: mk.URL})
			for range 2 {
				e.startWorker(t, m, "--chat-wait", "0.05-0.2", "--retrieve-wait", "0.05-0.2")
			}
			m.wait(t, 90*time.Second)

			tr := mk.truth(t)
			chatTotal, chat := outcomes(tr.Counts, "chat-messages")
			retrTotal, retr := outcomes(tr.Counts, "retrieve")
			if chatTotal < 20 || retrTotal < 5 {
				t.Fatalf("too little load to judge: %v", tr.Counts)
			}
			rows := csvRows(t, filepath.Join(m.dir, "run_stats.csv"))
			agg := statsRow(rows, "", "Aggregated")
			if agg == nil {
				t.Fatal("no Aggregated row in the master's CSV")
			}
			served := chatTotal + retrTotal
			failed := chat["http_429"] + chat["error_event"] + chat["no_terminal"] + retr["http_429"]
			if got := atoi(t, agg["Request Count"]); got != served {
				t.Errorf("Aggregated counts %d requests, the mock served %d (chat %d + retrieve %d)", got, served, chatTotal, retrTotal)
			}
			if got := atoi(t, agg["Failure Count"]); got != failed {
				t.Errorf("Aggregated counts %d failures, the mock failed %d requests", got, failed)
			}
			var allRows int64
			for _, r := range rows {
				if r["Name"] != "Aggregated" {
					allRows += atoi(t, r["Request Count"])
				}
			}
			if allRows <= served {
				t.Errorf("the rows sum to %d, want more than the %d requests (the SSE rows are still reported)", allRows, served)
			}
		})
	}
}

// Point 1, mixed fleet: a Go and a Python worker on one 2.46 master, stopped with a stop
// timeout so every stream finishes: Aggregated equals what the mock served; with
// --dify-aggregate-all it is the plain sum of every row again, on both kinds of worker.
func TestParityAggregatedMixedFleet(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("aggregate-all=%v", all), func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "40ms", "--token-delay", "5ms", "--tokens", "6", "--retrieval-latency", "10ms")
			o := masterOpts{version: "latest", host: mk.URL, stopTO: 5}
			if all {
				o.extraArgs = []string{"--dify-aggregate-all"}
			}
			m := e.startMaster(t, o)
			w := m.web()
			waitFor(t, 60*time.Second, "the master's web UI", func() bool { _, ok := w.stats(t); return ok })
			e.startWorker(t, m, "--node-id", "agg-go", "--chat-wait", "0.05-0.2", "--retrieve-wait", "0.05-0.2")
			e.startPythonWorker(t, "latest", m)
			waitFor(t, 30*time.Second, "two ready workers", func() bool {
				s, ok := w.stats(t)
				return ok && len(s.Workers) == 2
			})
			w.swarm(t, 6, 6, "")
			waitFor(t, 30*time.Second, "traffic from both workers", func() bool {
				s, _ := w.stats(t)
				n, _ := s.aggregated()
				return n > 60
			})
			w.stop(t)
			mk.waitIdle(t, 20*time.Second)
			var s uiStats
			waitForInfo(t, 20*time.Second, "the final reports", func() bool {
				s, _ = w.stats(t)
				agg, _ := s.aggregated()
				sum, requests := s.rowSums()
				if all {
					return agg == sum && requests == servedByMock(t, mk)
				}
				return agg == requests && agg == servedByMock(t, mk)
			}, func() string {
				agg, _ := s.aggregated()
				sum, requests := s.rowSums()
				return fmt.Sprintf("Aggregated %d, rows %d, request rows %d, mock served %d", agg, sum, requests, servedByMock(t, mk))
			})
		})
	}
}

// Point 2 (Logs tab) and point 7 (difyload_llm only where registered). A 2.46 master shows
// the Go worker's log lines in its Logs tab; a 2.12.1 master (no Logs tab) never sees a
// logs message. A master running some other locustfile never logs "Unknown message type"
// for the worker's difyload_llm, while the project's locustfile still gets it (LLM tab).
func TestParityLogsAndCustomMessages(t *testing.T) {
	for _, version := range masterVersions() {
		for _, foreign := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/foreign-locustfile=%v", version, foreign), func(t *testing.T) {
				e := testEnv
				mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "4", "--retrieval-latency", "5ms")
				var m *master
				if foreign {
					m = e.startMasterWithLocustfile(t, version, mk.URL, foreignLocustfile)
				} else {
					m = e.startMaster(t, masterOpts{version: version, host: mk.URL})
				}
				w := m.web()
				waitFor(t, 60*time.Second, "the master's web UI", func() bool { _, ok := w.stats(t); return ok })
				wk := e.startWorker(t, m, "--node-id", "logs-go", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "info")
				w.waitReady(t, 30*time.Second, "logs-go")
				w.swarm(t, 2, 2, "")
				if version == "latest" {
					var logs struct {
						Workers map[string][]string `json:"workers"`
					}
					waitForInfo(t, 30*time.Second, "the Go worker's lines in the Logs tab", func() bool {
						if httpGetJSON(w.base+"/logs", &logs) != nil {
							return false
						}
						for _, l := range logs.Workers["logs-go"] {
							if strings.Contains(l, "msg=spawned") {
								return true
							}
						}
						return false
					}, func() string { return fmt.Sprintf("GET /logs workers: %v", logs.Workers) })
				} else {
					time.Sleep(13 * time.Second) // more than one logs interval after spawning
				}
				if !foreign {
					var llm llmStats
					waitFor(t, 20*time.Second, "LLM data from the Go worker", func() bool {
						l, ok := w.llm(t)
						llm = l
						return ok && llm.activeWorkers() > 0
					})
				}
				if out := m.Output(); strings.Contains(out, "Unknown message type") {
					t.Errorf("the master logged an unknown message type:\n%s", grepLines(out, "Unknown message type", 5))
				}
				if out := wk.Output(); strings.Contains(out, "level=ERROR") {
					t.Errorf("worker errors:\n%s", grepLines(out, "level=ERROR", 5))
				}
			})
		}
	}
}

// foreignLocustfile is a locustfile that is not the project's: the same class names, no
// custom messages, no custom options.
const foreignLocustfile = `
from locust import User, task, constant

class ChatUser(User):
    wait_time = constant(1)

    @task
    def chat(self):
        pass

class RetrieveUser(User):
    wait_time = constant(1)

    @task
    def retrieve(self):
        pass
`

// startMasterWithLocustfile starts a web-UI master running src instead of the project's
// locustfile.py.
func (e *env) startMasterWithLocustfile(t *testing.T, version, host, src string) *master {
	t.Helper()
	return e.launchMaster(t, "f-", "foreign.py", map[string]string{"foreign.py": src},
		locusttest.MasterOptions{Version: version, Args: []string{"--host", host}})
}

func grepLines(s, needle string, max int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, l)
			if len(out) == max {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// readyCount counts the master's "reported as ready" lines for a node id.
func readyCount(masterLog, id string) int {
	n := 0
	for _, l := range strings.Split(masterLog, "\n") {
		if strings.Contains(l, id) && strings.Contains(l, "reported as ready") {
			n++
		}
	}
	return n
}

// resetAll breaks every connection through the proxy with a TCP reset; new ones are
// accepted as before.
func (p *countingProxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		hardClose(c)
	}
}

// Point 3: a 10 s master stall (SIGSTOP) and a TCP reset between worker and master keep the
// users and their streams running and lose no sample; the worker registers once. (A
// restarted master still gets a fresh client_ready within 10 s: TestMasterQuit here and
// worker.TestIntegrationMasterRestart, for both masters.)
func TestParityStallAndTCPReset(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			// Streams of about 1.2 s, so some are always in flight during the disruptions.
			mk := e.startMock(t, "--ttft", "200ms", "--token-delay", "50ms", "--tokens", "20", "--retrieval-latency", "20ms")
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 10})
			w := m.web()
			waitFor(t, 60*time.Second, "the master's web UI", func() bool { _, ok := w.stats(t); return ok })
			proxy := startProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)))
			_, pport, _ := net.SplitHostPort(proxy.ln.Addr().String())
			wk := start(t, "worker", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", pport,
				"--node-id", "steady-go", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "debug"})
			w.waitReady(t, 30*time.Second, "steady-go")
			w.swarm(t, 4, 4, "")
			running := func(what string) {
				t.Helper()
				waitForInfo(t, 10*time.Second, what, func() bool {
					s, ok := w.stats(t)
					st, _ := s.worker("steady-go")
					return ok && s.UserCount == 4 && st == "running"
				}, func() string { s, _ := w.stats(t); return fmt.Sprintf("%+v", s.Workers) })
			}
			running("4 users running")
			time.Sleep(2 * time.Second)
			// Registrations from here on (the start may show two client_ready: the worker
			// re-sends one when the connection comes up).
			logFrom := len(m.Output())

			proxy.resetAll()
			time.Sleep(4 * time.Second)
			running("4 users still running after a TCP reset")

			_ = m.SignalGroup(syscall.SIGSTOP)
			time.Sleep(10 * time.Second)
			_ = m.SignalGroup(syscall.SIGCONT)
			time.Sleep(3 * time.Second)
			running("4 users still running after a 10 s master stall")

			if n := readyCount(m.Output()[logFrom:], "steady-go"); n != 0 {
				t.Errorf("the worker registered again %d times during the disruptions, want never:\n%s", n, grepLines(m.Output(), "reported as ready", 5))
			}
			if out := wk.Output(); strings.Contains(out, "master lost: stopping") || !strings.Contains(out, "reconnected to the same master") {
				t.Errorf("worker log: want a reconnect to the same master and no master loss:\n%s", grepLines(out, "master", 10))
			}
			w.stop(t)
			mk.waitIdle(t, 20*time.Second)
			tr := mk.truth(t)
			if _, chat := outcomes(tr.Counts, "chat-messages"); chat["client_gone"] > 0 {
				t.Errorf("%d streams were abandoned: %v", chat["client_gone"], tr.Counts)
			}
			var s uiStats
			waitForInfo(t, 20*time.Second, "Aggregated equal to what the mock served (no sample lost)", func() bool {
				s, _ = w.stats(t)
				agg, _ := s.aggregated()
				return agg == servedByMock(t, mk) && agg > 0
			}, func() string {
				agg, _ := s.aggregated()
				return fmt.Sprintf("Aggregated %d, mock served %d", agg, servedByMock(t, mk))
			})
		})
	}
}

// Point 4: the master stops the test, then quits (--autoquit 1, shorter than the 5 s stop
// timeout). A stream under way at the stop, with 3.6 s to go (more than one 3 s stats
// interval), finishes and is counted: users still finishing count as running, so the
// master waits for them before it quits.
func TestParityStopThenQuit(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "100ms", "--token-delay", "100ms", "--tokens", "45") // 4.6 s streams
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 5, extraArgs: []string{
				"--autostart", "--autoquit", "1", "-u", "1", "-r", "1", "-t", "1s", "--expect-workers", "1", "ChatUser"}})
			e.startWorker(t, m, "--node-id", "slow-go", "--chat-wait", "0")
			m.wait(t, 90*time.Second)
			tr := mk.truth(t)
			_, chat := outcomes(tr.Counts, "chat-messages")
			if chat["ok"] < 1 || chat["client_gone"] != 0 {
				t.Fatalf("the mock finished %d streams and lost %d to a cut connection; want the stream under way at the stop finished", chat["ok"], chat["client_gone"])
			}
			rows := csvRows(t, filepath.Join(m.dir, "run_stats.csv"))
			full := statsRow(rows, "SSE", "Full Response")
			if full == nil || atoi(t, full["Request Count"]) != chat["ok"] || atoi(t, full["Failure Count"]) != 0 {
				t.Errorf("Full Response row %v, want %d streams without failures", full, chat["ok"])
			}
		})
	}
}

var masterLogTime = regexp.MustCompile(`(?m)^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\][^\n]*Resetting stats`)

// Point 5: with --reset-stats, the master's numbers after the ramp-up count only what
// finished after the reset: the worker drops what the ramp-up recorded and had not yet
// reported (at each spawn; 2.29+ also at the spawning_complete broadcast).
func TestParityResetStats(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--retrieval-latency", "10ms")
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 3, extraArgs: []string{
				"--autostart", "-u", "4", "-r", "1", "-t", "9s", "--expect-workers", "1", "--reset-stats", "RetrieveUser"}})
			e.startWorker(t, m, "--node-id", "reset-go", "--retrieve-wait", "0.01-0.02")
			w := m.web()
			var at time.Time
			waitForInfo(t, 60*time.Second, "the master's reset at the end of the ramp-up", func() bool {
				mm := masterLogTime.FindStringSubmatch(m.Output())
				if mm == nil {
					return false
				}
				var err error
				at, err = time.ParseInLocation("2006-01-02 15:04:05,000", mm[1], time.Local)
				return err == nil
			}, func() string { return m.Tail(20) })
			waitFor(t, 30*time.Second, "the run to stop", func() bool {
				s, ok := w.stats(t)
				return ok && s.State == "stopped"
			})
			mk.waitIdle(t, 10*time.Second)
			time.Sleep(4 * time.Second) // the last report
			recs := mk.truthRecords(t)
			var before, after int64
			for _, r := range recs {
				if time.Unix(0, r.Terminal).Before(at) {
					before++
				} else {
					after++
				}
			}
			s, _ := w.stats(t)
			agg, _ := s.aggregated()
			// The master's log time has millisecond resolution and the worker drops at the
			// moment the spawn or broadcast arrives: allow what ~0.3 s of traffic makes.
			rate := float64(after) / 6
			slack := int64(rate*0.3) + 2
			if before < 20 {
				t.Fatalf("only %d requests during the ramp-up: too little to judge", before)
			}
			if agg < after-slack || agg > after+slack {
				t.Errorf("after the reset the master counts %d requests; the mock finished %d after it (±%d) and %d before it", agg, after, slack, before)
			}
		})
	}
}

// Point 6: Locust's flags: -L with Locust's level names, --logfile, user class names as
// arguments. The worker runs only the named class; the log goes to the file only.
func TestParityLocustFlags(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "4", "--retrieval-latency", "5ms")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 4, rate: 4, runTime: "5s", expect: 1, host: mk.URL})
			logfile := filepath.Join(m.dir, "worker.log")
			wk := start(t, "worker", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", strconv.Itoa(m.port),
				"-L", "WARNING", "--logfile", logfile, "--chat-wait", "0.05-0.1", "ChatUser"}, "LOCUST_LOGLEVEL=DEBUG")
			m.wait(t, 60*time.Second)
			wk.wait(t, 15*time.Second)
			tr := mk.truth(t)
			chat, _ := outcomes(tr.Counts, "chat-messages")
			retr, _ := outcomes(tr.Counts, "retrieve")
			if chat == 0 || retr != 0 {
				t.Errorf("mock saw %d chats and %d retrieves; want only ChatUser traffic", chat, retr)
			}
			b, err := os.ReadFile(logfile)
			if err != nil {
				t.Fatal(err)
			}
			log := string(b)
			if !strings.Contains(log, "RetrieveUser") || !strings.Contains(log, "level=WARN") {
				t.Errorf("--logfile lacks the warning about RetrieveUser:\n%s", log)
			}
			if strings.Contains(log, "level=INFO") || strings.Contains(log, "level=DEBUG") {
				t.Errorf("-L WARNING (over LOCUST_LOGLEVEL=DEBUG) logged below WARNING:\n%s", log)
			}
			if out := wk.Output(); strings.Contains(out, "level=") {
				t.Errorf("with --logfile the log went to stderr too:\n%s", out)
			}
		})
	}
}

// Point 8: the CPU figure in heartbeats is a share of the CPU the worker may use
// (GOMAXPROCS cores), so the master's 90 % warning means saturated. With GOMAXPROCS=2
// the master's figure is about half the worker's per-core CPU use.
func TestParityCPUFigure(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, "--ttft", "0s", "--token-delay", "0s", "--tokens", "200", "--retrieval-latency", "0s")
	m := e.startMaster(t, masterOpts{version: "latest", host: mk.URL})
	w := m.web()
	waitFor(t, 60*time.Second, "the master's web UI", func() bool { _, ok := w.stats(t); return ok })
	wk := start(t, "worker", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", strconv.Itoa(m.port),
		"--node-id", "cpu-go", "--chat-wait", "0", "--retrieve-wait", "0"}, "GOMAXPROCS=2")
	w.waitReady(t, 30*time.Second, "cpu-go")
	w.swarm(t, 60, 30, "")
	time.Sleep(3 * time.Second)
	var shown []float64
	cpu0, t0 := procCPU(t, wk.PID()), time.Now()
	for range 8 {
		time.Sleep(time.Second)
		var body struct {
			Workers []struct {
				ID       string  `json:"id"`
				CPUUsage float64 `json:"cpu_usage"`
			} `json:"workers"`
		}
		if httpGetJSON(w.base+"/stats/requests", &body) == nil {
			for _, x := range body.Workers {
				if x.ID == "cpu-go" {
					shown = append(shown, x.CPUUsage)
				}
			}
		}
	}
	perCore := float64(procCPU(t, wk.PID())-cpu0) / float64(time.Since(t0)) * 100
	w.stop(t)
	var mean float64
	for _, v := range shown {
		mean += v
	}
	mean /= float64(max(len(shown), 1))
	t.Logf("worker CPU %.0f %% of one core; the master shows %.0f %% (samples %v)", perCore, mean, shown)
	if perCore < 5 {
		t.Fatalf("the worker used only %.0f %% of a core: too little load to judge", perCore)
	}
	if ratio := mean / (perCore / 2); ratio < 0.5 || ratio > 1.5 {
		t.Errorf("the master shows %.0f %%, want about half the per-core figure %.0f %% (GOMAXPROCS=2)", mean, perCore)
	}
}

// procCPU is the user+system CPU time of pid from /proc/pid/stat.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// Point 9: the master's worker index reaches the users: the Dify user ids of two workers
// carry "-w0-" and "-w1-". Only ChatUser runs (retrievals carry no Dify user), so both
// workers get chat users.
func TestParityWorkerIndex(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "4", "--retrieval-latency", "5ms")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 4, rate: 4, runTime: "4s", expect: 2, host: mk.URL,
				extraArgs: []string{"ChatUser"}})
			for range 2 {
				e.startWorker(t, m, "--chat-wait", "0.05-0.1")
			}
			m.wait(t, 60*time.Second)
			seen := map[string]bool{}
			idx := regexp.MustCompile(`-w(\d+)-`)
			for _, r := range mk.truthRecords(t) {
				if mm := idx.FindStringSubmatch(r.User); mm != nil {
					seen[mm[1]] = true
				}
			}
			if !seen["0"] || !seen["1"] {
				t.Errorf("worker indexes in the Dify user ids: %v, want 0 and 1", seen)
			}
		})
	}
}
