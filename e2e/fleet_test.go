//go:build goczmq

package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestMixedFleet runs one Python worker (locustfile.py) and two Go workers on the newest
// master (with two workers and two classes Locust's dispatcher gives each worker one
// class; with three, every worker runs both): both report the same rows and failure texts, so the master shows one row per
// (Type, Name) and one failure row per text, and the totals equal the mock's counts.
// Debian's 2.12.1 cannot run its own Python worker (its version string is empty), so only
// the newest master is tested.
func TestMixedFleet(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, "--ttft", "40ms", "--token-delay", "5ms", "--tokens", "5",
		"--retrieval-latency", "10ms", "--faults", "429=0.1,error_event=0.1")
	m := e.startMaster(t, masterOpts{version: "latest", headless: true, users: 12, rate: 12, runTime: "12s", expect: 3, host: mk.URL})
	e.startWorker(t, m, "--chat-wait", "0.1-0.3", "--retrieve-wait", "0.1-0.3")
	e.startWorker(t, m, "--chat-wait", "0.1-0.3", "--retrieve-wait", "0.1-0.3")
	e.startPythonWorker(t, "latest", m)
	m.wait(t, 120*time.Second)

	tr := mk.truth(t)
	chatTotal, chat := outcomes(tr.Counts, "chat-messages")
	_, retr := outcomes(tr.Counts, "retrieve")
	rows := csvRows(t, filepath.Join(m.dir, "run_stats.csv"))
	seen := map[string]int{}
	for _, r := range rows {
		seen[r["Type"]+" "+r["Name"]]++
	}
	for _, k := range []string{"POST /v1/chat-messages", "SSE TTFB", "SSE Full Response", "POST /v1/datasets/[id]/retrieve"} {
		if seen[k] != 1 {
			t.Errorf("row %q appears %d times, want exactly 1 (rows: %v)", k, seen[k], seen)
		}
	}
	// Python users write their own Dify "user" ids; both kinds must have sent load.
	var goUsers, pyUsers bool
	for _, rec := range mk.truthRecords(t) {
		switch {
		case len(rec.User) > 12 && rec.User[:12] == "difyload-py-":
			pyUsers = true
		case len(rec.User) > 9 && rec.User[:9] == "difyload-":
			goUsers = true
		}
	}
	if !goUsers || !pyUsers {
		t.Fatalf("load from Go workers: %v, from Python workers: %v — both must run", goUsers, pyUsers)
	}
	if chat["client_gone"]+retr["client_gone"] > 0 {
		t.Logf("streams abandoned at quit (mock client_gone): chat %d retrieve %d — counts compared without them", chat["client_gone"], retr["client_gone"])
	}
	r := statsRow(rows, "POST", "/v1/chat-messages")
	if r == nil {
		t.Fatal("no chat row")
	}
	gone := chat["client_gone"]
	if got := atoi(t, r["Request Count"]); got < chatTotal-gone || got > chatTotal {
		t.Errorf("chat requests: master %d, mock %d (client_gone %d)", got, chatTotal, gone)
	}
	fails := failureCounts(t, filepath.Join(m.dir, "run_failures.csv"))
	if got, want := fails["POST /v1/chat-messages: HTTP 429 too_many_requests"], chat["http_429"]; got != want {
		t.Errorf("429 failures: master %d (one merged row), mock %d; failures: %v", got, want, fails)
	}
	if got, want := fails["SSE Full Response: stream error: completion_request_error"], chat["error_event"]; got < want-gone || got > want {
		t.Errorf("error_event failures: master %d, mock %d; failures: %v", got, want, fails)
	}
}
