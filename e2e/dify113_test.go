//go:build goczmq

package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
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
	for _, version := range masterVersions {
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
	for _, version := range masterVersions {
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
			if log := w.out.String(); !strings.Contains(log, "check the app's required inputs") {
				t.Errorf("the worker logged no hint about required inputs:\n%s", tail(log, 20))
			}
		})
	}
}

// TestDify113ConcurrencyLimit: past the app's concurrency limit Dify answers 400
// invalid_param "Too many requests. …"; the failure name says it is the limit.
func TestDify113ConcurrencyLimit(t *testing.T) {
	for _, version := range masterVersions {
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

// TestDify113QueuedRunIsSuccess: with one job worker and default client timeouts, a chatflow
// run queued 45 s behind another, then answered, is a success with TTFT ≈ 45 s; the mock's
// truth shows the queue wait.
func TestDify113QueuedRunIsSuccess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test queues a run for 45 s")
	}
	for _, version := range masterVersions {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			// A run lasts 200 ms + 225 × 200 ms = 45.2 s; two users, one job worker: the
			// second user's first run waits one whole run in the queue, in silence.
			report := filepath.Join(reportDir(t, testEnv), "llm")
			mk, rows, fails := headlessRun(t, version, 2, "95s",
				[]string{"--job-workers", "1", "--ttft", "200ms", "--token-delay", "200ms", "--tokens", "226"},
				[]string{"--chat-wait", "0", "--flow-weights", "SimpleChatFlow=1,ComplexChatFlow=0"},
				"--llm-report", report)
			onlyFailures(t, fails, map[string]int64{})
			r := statsRow(rows, "SSE", "TTFB")
			if r == nil {
				t.Fatal("no TTFB row")
			}
			maxMS, _ := strconv.ParseFloat(r["Max Response Time"], 64)
			minMS, _ := strconv.ParseFloat(r["Min Response Time"], 64)
			if atoi(t, r["Request Count"]) < 2 || maxMS < 43000 || maxMS > 50000 || minMS > 2000 {
				t.Errorf("TTFB row %v: want one run at ≈0.2 s and a queued one at ≈45 s", r)
			}
			if req, fail := csvRowCounts(t, rows, "SSE", "Full Response"); req < 2 || fail != 0 {
				t.Errorf("Full Response %d / %d failures", req, fail)
			}
			var queued int
			for _, rec := range mk.truthRecords(t) {
				if rec.Outcome == difymock.OutcomeOK && time.Duration(rec.QueueWait) > 43*time.Second {
					queued++
				}
			}
			if queued == 0 {
				t.Errorf("the mock shows no successful run that queued ≥ 43 s")
			}
			// The LLM data shows the wait as time to first event (TTFE), beside TTFT.
			llm, _ := readReport(t, report)
			ttfe, ttft := llm.Metrics["ttfe"], llm.Metrics["ttft"]
			if ttfe.Count < 2 || ttfe.Max == nil || *ttfe.Max < 43000 || ttft.Max == nil || *ttft.Max < *ttfe.Max {
				t.Errorf("LLM report ttfe %+v ttft %+v: want a TTFE max ≈ 45 s, below the TTFT max", ttfe, ttft)
			}
		})
	}
}
