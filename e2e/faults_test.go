//go:build goczmq

package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
)

// The rows a Go worker reports (tasks/doc.go).
const (
	rowChat     = "POST /v1/chat-messages"
	rowTTFB     = "SSE TTFB"
	rowFull     = "SSE Full Response"
	rowRetrieve = "POST /v1/datasets/[id]/retrieve"
)

// expectation is what the master must show for the mock's counts.
type expectation struct {
	requests map[string]int64 // row → requests
	failures map[string]int64 // row → failures
	errors   map[string]int64 // "row: failure text" → occurrences
}

func (x *expectation) add(row string, n int64, failure string) {
	x.requests[row] += n
	if failure != "" {
		x.failures[row] += n
		x.errors[row+": "+failure] += n
	}
}

// expectFromMock turns the mock's outcome counts into the rows and failure texts the master
// must show, following the counting rules of tasks/doc.go and the fault table of
// difymock/doc.go (idle is the worker's --idle-timeout). Outcomes the rules do not allow
// (client_gone: a request nobody reported) are returned as problems.
func expectFromMock(counts map[string]map[string]int64, idle time.Duration) (expectation, []string) {
	x := expectation{requests: map[string]int64{}, failures: map[string]int64{}, errors: map[string]int64{}}
	var problems []string
	idleText := "timeout: no event for " + idle.String()
	streamFailures := map[string]string{
		difymock.FaultErrorEvent:     "stream error: completion_request_error",
		difymock.FaultWorkflowFailed: "workflow failed",
		difymock.FaultNoTerminal:     "stream ended before message_end",
		difymock.FaultMalformedJSON:  "malformed event JSON",
		difymock.FaultOversized:      "event too large",
		difymock.FaultHugeEvent:      "event too large",
		difymock.FaultStall:          idleText,
		difymock.FaultReset:          "connection reset during stream",
		difymock.FaultResetMidEvent:  "connection reset during stream",
		difymock.FaultPartialLine:    idleText,
	}
	httpFailures := map[string]string{
		"http_401": "HTTP 401 unauthorized",
		"http_429": "HTTP 429 too_many_requests",
		"http_500": "HTTP 500 internal_server_error",
	}
	for outcome, n := range counts[difymock.EndpointChat] {
		switch outcome {
		case difymock.OutcomeOK, difymock.FaultBigEvent, difymock.FaultInvalidUTF8, difymock.FaultTerminalSwap:
			x.add(rowChat, n, "")
			x.add(rowTTFB, n, "")
			x.add(rowFull, n, "")
		default:
			if f, ok := httpFailures[outcome]; ok {
				x.add(rowChat, n, f)
			} else if f, ok := streamFailures[outcome]; ok {
				// Every stream fault comes after a few tokens: the TTFB row has them.
				x.add(rowChat, n, "")
				x.add(rowTTFB, n, "")
				x.add(rowFull, n, f)
			} else {
				problems = append(problems, fmt.Sprintf("chat outcome %q ×%d has no row", outcome, n))
			}
		}
	}
	for outcome, n := range counts[difymock.EndpointRetrieve] {
		switch outcome {
		case difymock.OutcomeOK:
			x.add(rowRetrieve, n, "")
		case difymock.FaultStall: // the answer is delayed by the stall: Post's idle timeout
			x.add(rowRetrieve, n, idleText)
		case difymock.FaultReset: // reset before any response byte
			x.add(rowRetrieve, n, "connect: connection reset")
		default:
			if f, ok := httpFailures[outcome]; ok {
				x.add(rowRetrieve, n, f)
			} else {
				problems = append(problems, fmt.Sprintf("retrieve outcome %q ×%d has no row", outcome, n))
			}
		}
	}
	for ep, by := range counts {
		if ep != difymock.EndpointChat && ep != difymock.EndpointRetrieve {
			problems = append(problems, fmt.Sprintf("unexpected endpoint %q: %v", ep, by))
		}
	}
	return x, problems
}

// rowCounts reads the master's four rows.
func rowCounts(s uiStats) (req, fail map[string]int64) {
	req, fail = map[string]int64{}, map[string]int64{}
	for _, r := range s.Stats {
		if r.Name == "Aggregated" {
			continue
		}
		req[r.Method+" "+r.Name] += r.NumRequests
		fail[r.Method+" "+r.Name] += r.NumFailures
	}
	return req, fail
}

func equalCounts(a, b map[string]int64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func diffCounts(what string, got, want map[string]int64) []string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if got[k] != want[k] {
			out = append(out, fmt.Sprintf("%s %q: master %d, mock %d", what, k, got[k], want[k]))
		}
	}
	sort.Strings(out)
	return out
}

// allFaults is every mock fault at probability p.
func allFaults(p float64) string {
	var parts []string
	for _, f := range difymock.FaultNames() {
		parts = append(parts, f+"="+strconv.FormatFloat(p, 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}

// TestFaultMatrix runs every fault of the mock at once (each at a fixed probability per
// request) through a real master and one Go worker, at low concurrency (4 users, through a
// TCP proxy that counts connections) and high concurrency (200 users, no wait), on both
// masters. After a stop (whose stop_timeout lets every stream end: each wait of the client
// has a timeout shorter than it), the master's rows and failure texts must equal what the
// mock says it served, request for request: no stream abandoned (client_gone), none left
// open (mock in_flight 0), none counted twice. Low concurrency also checks HTTP/1.1
// keep-alive reuse after failures: only the faults that must close the connection (reset,
// too-large events, timeouts) cost a new one. At the end the master quits and the worker
// exits 0.
func TestFaultMatrix(t *testing.T) {
	const (
		idle  = time.Second     // worker --idle-timeout
		stall = 2 * time.Second // X-Mock-Stall: stall and partial_line hold longer than idle
	)
	type level struct {
		name         string
		users        int
		wait         string
		run          time.Duration
		prob         float64
		proxy        bool
		ttft, tokDel string
		retrLatency  string
	}
	levels := []level{
		{name: "low", users: 4, wait: "0.01-0.03", run: 15 * time.Second, prob: 0.035, proxy: true, ttft: "20ms", tokDel: "2ms", retrLatency: "5ms"},
		{name: "high", users: 200, wait: "0", run: 8 * time.Second, prob: 0.02, ttft: "60ms", tokDel: "5ms", retrLatency: "30ms"},
	}
	for _, version := range masterVersions() {
		for _, lv := range levels {
			t.Run(version+"/"+lv.name, func(t *testing.T) {
				e := testEnv
				mk := e.startMock(t, "--ttft", lv.ttft, "--token-delay", lv.tokDel, "--tokens", "6",
					"--retrieval-latency", lv.retrLatency, "--faults", allFaults(lv.prob))
				target := mk.URL
				var px *countingProxy
				if lv.proxy {
					px = startProxy(t, strings.TrimPrefix(mk.URL, "http://"))
					target = px.URL()
				}
				m := e.startMaster(t, masterOpts{version: version, host: target, stopTO: 3})
				wk := e.startWorker(t, m, "--node-id", "faults-"+lv.name, "--chat-wait", lv.wait, "--retrieve-wait", lv.wait,
					"--idle-timeout", idle.String(), "--header", "X-Mock-Stall: "+stall.String(), "--log-level", "info")
				w := m.web()
				w.waitReady(t, 60*time.Second, "faults-")

				w.swarm(t, lv.users, float64(lv.users), "")
				waitFor(t, 30*time.Second, fmt.Sprintf("%d users running", lv.users), func() bool {
					s, ok := w.stats(t)
					return ok && s.UserCount == lv.users
				})
				time.Sleep(lv.run)
				w.stop(t)
				waitFor(t, 30*time.Second, "the master to stop", func() bool {
					s, ok := w.stats(t)
					return ok && s.State == "stopped"
				})
				mk.waitIdle(t, 30*time.Second)

				tr := mk.truth(t)
				want, problems := expectFromMock(tr.Counts, idle)
				for _, p := range problems {
					t.Error(p)
				}
				// The worker's last report follows client_stopped: wait for the master's
				// numbers to reach the mock's, then demand equality.
				var s uiStats
				var req, fail map[string]int64
				deadline := time.Now().Add(15 * time.Second)
				for {
					s, _ = w.stats(t)
					req, fail = rowCounts(s)
					if equalCounts(req, want.requests) && equalCounts(s.failures(), want.errors) || time.Now().After(deadline) {
						break
					}
					time.Sleep(250 * time.Millisecond)
				}
				for _, d := range diffCounts("requests", req, want.requests) {
					t.Error(d)
				}
				for _, d := range diffCounts("failures", fail, want.failures) {
					t.Error(d)
				}
				for _, d := range diffCounts("failure text", s.failures(), want.errors) {
					t.Error(d)
				}
				// Every fault kind must have happened, at this concurrency, for the test
				// to mean anything.
				seen := map[string]int64{}
				for _, by := range tr.Counts {
					for o, n := range by {
						seen[o] += n
					}
				}
				for _, f := range difymock.FaultNames() {
					o := f
					switch f {
					case "401", "429", "500", difymock.FaultRetrieve500:
						o = "http_" + strings.TrimPrefix(f, "retrieve_")
					}
					if seen[o] == 0 {
						t.Errorf("fault %s never happened (mock counts %v): too little load to judge", f, tr.Counts)
					}
				}
				t.Logf("mock: %v", tr.Counts)

				if px != nil {
					// Keep-alive: a connection is closed only by a fault that must close it.
					closing := int64(0)
					for _, o := range []string{difymock.FaultOversized, difymock.FaultHugeEvent, difymock.FaultStall,
						difymock.FaultReset, difymock.FaultResetMidEvent, difymock.FaultPartialLine} {
						closing += tr.Counts[difymock.EndpointChat][o]
					}
					closing += tr.Counts[difymock.EndpointRetrieve][difymock.FaultStall] + tr.Counts[difymock.EndpointRetrieve][difymock.FaultReset]
					total := want.requests[rowChat] + want.requests[rowRetrieve]
					conns := px.conns.Load()
					t.Logf("keep-alive: %d requests over %d connections; %d faults had to close theirs", total, conns, closing)
					if limit := closing + 2*int64(lv.users) + 2; conns > limit {
						t.Errorf("%d connections for %d requests: more than the %d that close on a fault + 2 per user (%d): connections are not reused after failures",
							conns, total, closing, limit)
					}
				}

				// The master quits: the worker flushes and exits 0.
				w.waitReady(t, 30*time.Second, "faults-")
				m.StopWith(syscall.SIGTERM, 20*time.Second)
				if code := wk.exitCode(t, 20*time.Second); code != 0 {
					t.Errorf("worker exit code %d after the master quit, want 0", code)
				}
				if out := wk.Output(); strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
					t.Errorf("worker output mentions a panic:\n%s", tail(out, 40))
				}
			})
		}
	}
}

// TestUnreachableTargets points two workers at targets that cannot answer: a name that does
// not resolve and a loopback port nobody listens on. Every request is one failure on its
// POST row with its stable text, no SSE row appears, and a stop ends both workers' users
// at once (nothing hangs).
func TestUnreachableTargets(t *testing.T) {
	e := testEnv
	mk := e.startMock(t)
	m := e.startMaster(t, masterOpts{version: "2.12.1", host: mk.URL, stopTO: 3})
	refused := fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))
	e.startWorker(t, m, "--node-id", "dns-worker", "--host", "http://nonexistent.invalid:5001", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "info")
	e.startWorker(t, m, "--node-id", "refused-worker", "--host", refused, "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "info")
	w := m.web()
	w.waitReady(t, 60*time.Second, "dns-worker")
	w.waitReady(t, 60*time.Second, "refused-worker")
	// Four users per worker, so each runs both classes whatever the dispatcher does.
	w.swarm(t, 8, 8, "")
	waitFor(t, 30*time.Second, "8 users running", func() bool {
		s, ok := w.stats(t)
		return ok && s.UserCount == 8
	})
	time.Sleep(4 * time.Second)
	w.stop(t)
	waitFor(t, 20*time.Second, "the master to stop", func() bool {
		s, ok := w.stats(t)
		return ok && s.State == "stopped"
	})
	var s uiStats
	waitFor(t, 15*time.Second, "both failure texts at the master", func() bool {
		s, _ = w.stats(t)
		f := s.failures()
		var dns, ref bool
		for k := range f {
			dns = dns || strings.HasSuffix(k, ": connect: dns lookup failed")
			ref = ref || strings.HasSuffix(k, ": connect: connection refused")
		}
		return dns && ref
	})
	if n := mk.truth(t).Counts; len(n) != 0 {
		t.Errorf("the mock was reached: %v", n)
	}
	req, fail := rowCounts(s)
	for row, n := range req {
		if row != rowChat && row != rowRetrieve {
			t.Errorf("unexpected row %q (%d requests): a connect failure belongs to the POST row only", row, n)
		}
		if n == 0 || fail[row] != n {
			t.Errorf("row %q: %d requests, %d failures; every request must fail", row, n, fail[row])
		}
	}
	var sum int64
	for k, n := range s.failures() {
		if !strings.HasSuffix(k, ": connect: dns lookup failed") && !strings.HasSuffix(k, ": connect: connection refused") {
			t.Errorf("unexpected failure %q ×%d", k, n)
		}
		sum += n
	}
	if sum != req[rowChat]+req[rowRetrieve] {
		t.Errorf("failure rows sum to %d, requests %d", sum, req[rowChat]+req[rowRetrieve])
	}
	t.Logf("failures: %v", s.failures())
}
