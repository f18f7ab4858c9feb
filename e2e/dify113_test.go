//go:build goczmq

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
)

// Real Dify 1.13 behaviour, served by the mock in that version's mode, through a real master
// and a Go worker: each case gets the outcome a real server would deserve (difymock/doc.go,
// "Dify versions"; docs/failures.md).

// headlessRun starts a mock (mockArgs), a headless master and one Go worker (workerArgs)
// and waits for the master to quit; it returns the mock, the master's stats and failures.
// Only ChatUser runs (the chat cases; RetrieveUser would take half the users).
func headlessRun(t *testing.T, version string, users int, runTime string, mockArgs, workerArgs []string, masterArgs ...string) (*mock, []map[string]string, map[string]int64) {
	mk, rows, fails, _ := headlessRunWorker(t, version, users, runTime, mockArgs, workerArgs, masterArgs...)
	return mk, rows, fails
}

// headlessRunWorker is headlessRun that also returns the worker process (for its log).
func headlessRunWorker(t *testing.T, version string, users int, runTime string, mockArgs, workerArgs []string, masterArgs ...string) (*mock, []map[string]string, map[string]int64, *proc) {
	t.Helper()
	e := testEnv
	mk := e.startMock(t, mockArgs...)
	m := e.startMaster(t, masterOpts{version: version, headless: true, users: users, rate: float64(users), runTime: runTime, expect: 1, host: mk.URL,
		extraArgs: append(masterArgs, "ChatUser")})
	w := e.startWorker(t, m, append([]string{"--retrieve-wait", "0.5-1"}, workerArgs...)...)
	limit, err := time.ParseDuration(runTime)
	if err != nil {
		t.Fatal(err)
	}
	m.wait(t, limit+90*time.Second)
	mk.waitIdle(t, 30*time.Second)
	return mk, csvRows(t, filepath.Join(m.dir, "run_stats.csv")), failureCounts(t, filepath.Join(m.dir, "run_failures.csv")), w
}

func csvRowCounts(t *testing.T, rows []map[string]string, typ, name string) (requests, failures int64) {
	t.Helper()
	r := statsRow(rows, typ, name)
	if r == nil {
		t.Fatalf("no row %s %s in the master's CSV", typ, name)
	}
	return atoi(t, r["Request Count"]), atoi(t, r["Failure Count"])
}

func onlyFailures(t *testing.T, got, want map[string]int64) {
	t.Helper()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("failures %q = %d, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected failure %q ×%d", k, n)
		}
	}
}

// TestDify1130ChatflowWithoutMessageEnd: Dify 1.13.0's relay stops at workflow_finished
// and never sends message_end; every such chatflow is a success, not a truncation.
func TestDify1130ChatflowWithoutMessageEnd(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			mk, rows, fails := headlessRun(t, version, 4, "8s",
				[]string{"--dify-version", "1.13.0", "--ttft", "30ms", "--token-delay", "5ms", "--tokens", "5"},
				[]string{"--chat-wait", "0.05-0.2"})
			tr := mk.truth(t)
			ok := tr.Counts[difymock.EndpointChat][difymock.OutcomeOK]
			if ok < 10 || tr.DifyVersion != "1.13.0" {
				t.Fatalf("too little load or wrong version: %d ok, version %s (%v)", ok, tr.DifyVersion, tr.Counts)
			}
			if req, fail := csvRowCounts(t, rows, "SSE", "Full Response"); req != ok || fail != 0 {
				t.Errorf("Full Response %d requests / %d failures, the mock served %d successful chatflows", req, fail, ok)
			}
			if req, _ := csvRowCounts(t, rows, "SSE", "TTFB"); req != ok {
				t.Errorf("TTFB %d, want %d", req, ok)
			}
			onlyFailures(t, fails, map[string]int64{})
		})
	}
}

// TestDify113SilentSetupAndPause: a chatflow whose required input is missing gets 200, a
// ping and silence from a 1.13 relay (a named failure pointing at required inputs, not an
// idle timeout); a human-input chatflow pauses (its own failure name, not a truncation).
func TestDify113SilentSetupAndPause(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			const users = 4
			mk, rows, fails, w := headlessRunWorker(t, version, users, "10s",
				[]string{"--ttft", "30ms", "--token-delay", "5ms", "--tokens", "5"},
				[]string{"--chat-wait", "0.05-0.2", "--first-token-timeout", "2s", "--idle-timeout", "1s",
					"--simple-app-key", difymock.RequiredInputsChatKey, "--complex-app-key", difymock.HumanInputChatKey})
			tr := mk.truth(t)
			silent := tr.Apps[difymock.AppRequiredChatflow].Outcomes[difymock.OutcomeSetupSilent]
			paused := tr.Apps[difymock.AppHumanInput].Outcomes[difymock.OutcomePaused]
			if silent < 2 || paused < 2 {
				t.Fatalf("too little load: %d silent, %d paused (%+v)", silent, paused, tr.Apps)
			}
			silentName := "SSE Full Response: timeout: only a ping in 2s (queued, or missing required inputs)"
			pausedName := "SSE Full Response: workflow paused"
			// A silent request still open when the test stops is cancelled, not reported,
			// but the mock counts it: at most one per user.
			if n := fails[silentName]; n > silent || n < silent-users {
				t.Errorf("%q = %d, the mock held %d silent streams", silentName, n, silent)
			}
			if n := fails[pausedName]; n > paused || n < paused-users {
				t.Errorf("%q = %d, the mock paused %d runs", pausedName, n, paused)
			}
			for k, n := range fails {
				if k != silentName && k != pausedName {
					t.Errorf("unexpected failure %q ×%d (an idle timeout or a truncation?)", k, n)
				}
			}
			if _, fail := csvRowCounts(t, rows, "POST", "/v1/chat-messages"); fail != 0 {
				t.Errorf("POST row has %d failures: the 200s are not HTTP errors", fail)
			}
			// The worker's log points at the likely cause.
			if log := w.Output(); !strings.Contains(log, "check the app's required inputs") {
				t.Errorf("the worker logged no hint about required inputs:\n%s", tail(log, 20))
			}
		})
	}
}

// TestDify113ConcurrencyLimit: past the app's concurrency limit Dify answers 400
// invalid_param "Too many requests. …"; the failure name says it is the limit.
func TestDify113ConcurrencyLimit(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			_, rows, fails := headlessRun(t, version, 8, "8s",
				[]string{"--max-active-requests", "1", "--ttft", "200ms", "--token-delay", "20ms", "--tokens", "5"},
				[]string{"--chat-wait", "0.01-0.05", "--flow-weights", "SimpleChatFlow=1,ComplexChatFlow=0"})
			name := "POST /v1/chat-messages: HTTP 400 too_many_requests"
			if fails[name] < 3 {
				t.Fatalf("%q = %d, want several (failures %v)", name, fails[name], fails)
			}
			onlyFailures(t, fails, map[string]int64{name: fails[name]})
			if _, fail := csvRowCounts(t, rows, "POST", "/v1/chat-messages"); fail != fails[name] {
				t.Errorf("POST failures %d, want %d", fail, fails[name])
			}
		})
	}
}

// TestDify113QueuedRunIsSuccess: with the job workers busy and default client timeouts, a
// chatflow run queued ≈ 45 s (in silence after the relay's ping, longer than the 30 s idle
// timeout), then answered, is a success with TTFT ≈ 45 s, on a Go worker and on a Python
// worker of the same fleet (two Go workers on 2.12.1); the mock's truth shows the queue wait,
// the LLM data the time to first event.
func TestDify113QueuedRunIsSuccess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test queues runs for 45 s")
	}
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			e := testEnv
			// Two job workers, both held by two runs of ≈ 47 s the test sends itself
			// (200 ms + 234 × 200 ms): the first run of each worker's user queues behind
			// them. The users' own runs are short.
			mk := e.startMock(t, "--job-workers", "2", "--ttft", "200ms", "--token-delay", "20ms", "--tokens", "5")
			report := filepath.Join(reportDir(t, e), "llm")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 2, rate: 2, runTime: "60s", expect: 2, host: mk.URL,
				extraArgs: []string{"--llm-report", report, "ChatUser"}})
			e.startWorker(t, m, "--chat-wait", "0", "--retrieve-wait", "0.5-1")
			holdJobWorkers(t, mk.URL, 2, 47*time.Second)
			// The run starts when the second worker connects: Python on the newest Locust
			// (Debian's 2.12.1 cannot run its own Python worker, see TestMixedFleet), else Go.
			kinds := []string{"go", "python"}
			if version == "2.12.1" {
				kinds = []string{"go"}
				e.startWorker(t, m, "--chat-wait", "0", "--retrieve-wait", "0.5-1")
			} else {
				e.startPythonWorker(t, version, m)
			}
			m.wait(t, 150*time.Second)
			mk.waitIdle(t, 30*time.Second)
			rows, fails := csvRows(t, filepath.Join(m.dir, "run_stats.csv")), failureCounts(t, filepath.Join(m.dir, "run_failures.csv"))
			onlyFailures(t, fails, map[string]int64{})
			r := statsRow(rows, "SSE", "TTFB")
			if r == nil {
				t.Fatal("no TTFB row")
			}
			maxMS, _ := strconv.ParseFloat(r["Max Response Time"], 64)
			minMS, _ := strconv.ParseFloat(r["Min Response Time"], 64)
			if atoi(t, r["Request Count"]) < 4 || maxMS < 35000 || maxMS > 55000 || minMS > 2000 {
				t.Errorf("TTFB row %v: want short runs and queued ones at ≈45 s", r)
			}
			if req, fail := csvRowCounts(t, rows, "SSE", "Full Response"); req < 4 || fail != 0 {
				t.Errorf("Full Response %d / %d failures", req, fail)
			}
			// Each worker's user had a successful run that waited in the queue past the
			// idle timeout.
			queued := map[string]time.Duration{}
			for _, rec := range mk.truthRecords(t) {
				if rec.Outcome != difymock.OutcomeOK || !strings.HasPrefix(rec.User, "difyload-") {
					continue
				}
				who := "go"
				if strings.HasPrefix(rec.User, "difyload-py-") {
					who = "python"
				}
				queued[who] = max(queued[who], time.Duration(rec.QueueWait))
			}
			for _, who := range kinds {
				if q := queued[who]; q < 35*time.Second || q > 55*time.Second {
					t.Errorf("%s worker: longest queue wait of a successful run %v, want ≈ 45 s (%v)", who, q, queued)
				}
			}
			// The LLM data shows the wait as time to first event (TTFE), beside TTFT.
			llm, _ := readReport(t, report)
			ttfe, ttft := llm.Metrics["ttfe"], llm.Metrics["ttft"]
			if ttfe.Count < 4 || ttfe.Max == nil || *ttfe.Max < 35000 || ttft.Max == nil || *ttft.Max < *ttfe.Max {
				t.Errorf("LLM report ttfe %+v ttft %+v: want a TTFE max ≈ 45 s, below the TTFT max", ttfe, ttft)
			}
		})
	}
}

// TestDify113SilentSetupPython: a chatflow whose required input is missing, on Dify 1.13's
// relay (200, a ping, silence), fails after the default 60 s first-token timeout with the
// same name on a Python worker as on a Go worker of the same fleet (not an idle timeout at
// 30 s, the per-read timeout Python workers had); on 2.12.1 the same with Go workers and
// default timeouts.
func TestDify113SilentSetupPython(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test waits out the 60 s first-token timeout")
	}
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			e := testEnv
			mk := e.startMock(t, "--ttft", "30ms", "--token-delay", "5ms", "--tokens", "5")
			key := difymock.RequiredInputsChatKey
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 2, rate: 2, runTime: "80s", expect: 2, host: mk.URL,
				extraArgs: []string{"--dify-simple-app-key", key, "--dify-complex-app-key", key, "ChatUser"}})
			goArgs := []string{"--chat-wait", "0", "--retrieve-wait", "0.5-1", "--flow-weights", "SimpleChatFlow=1,ComplexChatFlow=0",
				"--simple-app-key", key, "--complex-app-key", key}
			e.startWorker(t, m, goArgs...)
			// Debian's 2.12.1 cannot run its own Python worker (TestMixedFleet): two Go
			// workers there.
			wantPy := version != "2.12.1"
			if wantPy {
				e.startPythonWorker(t, version, m)
			} else {
				e.startWorker(t, m, goArgs...)
			}
			m.wait(t, 150*time.Second)
			mk.waitIdle(t, 30*time.Second)
			rows, fails := csvRows(t, filepath.Join(m.dir, "run_stats.csv")), failureCounts(t, filepath.Join(m.dir, "run_failures.csv"))
			// One user per worker. The Go users run only the simple chatflow; a Python user
			// picks it or the complex one (which sends dept and succeeds) at random, so its
			// first simple run starts within 20 s but for a 2^-10 chance. Each user's first
			// simple run fails at 60 s; a second one is still silent when the run stops
			// (cancelled, not reported).
			name := "SSE Full Response: timeout: only a ping in 60s (queued, or missing required inputs)"
			onlyFailures(t, fails, map[string]int64{name: 2})
			// The complex chatflow sends its required input: those runs succeed.
			if req, fail := csvRowCounts(t, rows, "SSE", "Full Response"); req < 2 || fail != 2 {
				t.Errorf("Full Response %d requests / %d failures, want 2 failures", req, fail)
			}
			if _, fail := csvRowCounts(t, rows, "POST", "/v1/chat-messages"); fail != 0 {
				t.Errorf("POST row has %d failures: the 200s are not HTTP errors", fail)
			}
			users := map[string]int{}
			for _, rec := range mk.truthRecords(t) {
				if rec.App == difymock.AppRequiredChatflow && rec.Outcome == difymock.OutcomeSetupSilent {
					users[strings.SplitN(rec.User, "-", 3)[1]]++
				}
			}
			if wantPy && (users["py"] < 1 || len(users) < 2) {
				t.Errorf("silent runs per worker kind %v: want both a Go and a Python user", users)
			}
		})
	}
}

// holdJobWorkers sends n streaming chatflow requests of about d each (X-Mock-* timings) and
// returns once every one is running (its first answer chunk arrived), so the mock's job
// workers are busy for d. The streams are read to their end on goroutines the test waits for.
func holdJobWorkers(t *testing.T, url string, n int, d time.Duration) {
	t.Helper()
	const delay = 200 * time.Millisecond
	tokens := int((d - 200*time.Millisecond) / delay)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	running := make(chan error, n)
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"inputs":{},"query":"hold","user":"e2e-hold-%d","response_mode":"streaming"}`, i)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/chat-messages", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+difymock.SimpleChatKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Mock-TTFT", "200ms")
		req.Header.Set("X-Mock-Token-Delay", delay.String())
		req.Header.Set("X-Mock-Tokens", strconv.Itoa(tokens))
		resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the goroutine below, which reads the stream
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sent := false
			for sc.Scan() {
				if !sent && strings.Contains(sc.Text(), `"event": "message"`) || !sent && strings.Contains(sc.Text(), `"event":"message"`) {
					running <- nil
					sent = true
				}
			}
			if !sent {
				running <- fmt.Errorf("hold stream ended before its first chunk (status %d, %w)", resp.StatusCode, sc.Err())
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-running:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the hold streams did not start within 10 s")
		}
	}
}

// TestDify113UnknownConversationInWorkload: a workload's 2-turn chatflow conversations whose
// second turn names a conversation Dify no longer knows (the mock remembers one conversation,
// so another user's first turn makes it forget): a 1.13 relay answers 200, a ping and silence,
// and each such turn fails with the name that points at setup errors, on the Full Response
// row; first turns succeed.
func TestDify113UnknownConversationInWorkload(t *testing.T) {
	const w = `
[[apps]]
name = "flow"
type = "chatflow"
key_env = "E2E_FLOW_KEY"
queries = ["first", "second"]
conversation = { turns = 2, think_time = 0.2 }

[[users]]
name = "Talker"
wait_time = { constant = 0.05 }
tasks = [{ app = "flow" }]
`
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			e := testEnv
			mk := e.startMock(t, "--max-conversations", "1", "--ttft", "30ms", "--token-delay", "5ms", "--tokens", "5")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 4, rate: 4, runTime: "10s", expect: 1, host: mk.URL,
				files: map[string]string{"w.toml": w}, env: workloadKeys(), extraArgs: []string{"--dify-workload", "{dir}/w.toml"}})
			e.startWorker(t, m, "--first-token-timeout", "2s", "--idle-timeout", "1s")
			m.wait(t, 100*time.Second)
			mk.waitIdle(t, 30*time.Second)
			tr := mk.truth(t)
			silent := tr.Apps[difymock.AppSimpleChatflow].Outcomes[difymock.OutcomeSetupSilent]
			ok := tr.Apps[difymock.AppSimpleChatflow].Outcomes[difymock.OutcomeOK]
			if silent < 3 || ok < 3 {
				t.Fatalf("too little load: %d silent later turns, %d ok (%+v)", silent, ok, tr.Apps)
			}
			fails := failureCounts(t, filepath.Join(m.dir, "run_failures.csv"))
			name := "SSE Full Response: timeout: only a ping in 2s (queued, or missing required inputs)"
			// A silent turn still open when the run stops is cancelled, not reported, but
			// the mock counts it: at most one per user.
			if n := fails[name]; n > silent || n < silent-4 {
				t.Errorf("%q = %d, the mock held %d silent turns", name, n, silent)
			}
			for k, n := range fails {
				if k != name {
					t.Errorf("unexpected failure %q ×%d", k, n)
				}
			}
			// Every silent run is a later turn: its user's first turn (a new conversation)
			// succeeded just before it.
			firsts := map[string]int{}
			for _, rec := range mk.truthRecords(t) {
				if rec.Outcome == difymock.OutcomeOK && rec.Turn == 1 {
					firsts[rec.User]++
				}
			}
			for _, rec := range mk.truthRecords(t) {
				if rec.Outcome == difymock.OutcomeSetupSilent && firsts[rec.User] == 0 {
					t.Errorf("a silent run of %s, which never had a first turn", rec.User)
				}
			}
			if silent > ok {
				t.Errorf("%d silent later turns for %d successful first turns", silent, ok)
			}
		})
	}
}
