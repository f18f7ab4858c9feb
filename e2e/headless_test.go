//go:build goczmq

package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// outcomes sums the mock's counts for an endpoint.
func outcomes(counts map[string]map[string]int64, endpoint string) (total int64, by map[string]int64) {
	by = counts[endpoint]
	for _, n := range by {
		total += n
	}
	return total, by
}

// TestHeadlessCountsMatchMock runs a headless master with two Go workers against a mock
// that injects faults, and checks the master's CSV against the mock's own counts: every
// request the mock served is one row entry, every injected fault one failure with its
// stable text, nothing counted twice.
func TestHeadlessCountsMatchMock(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "40ms", "--token-delay", "5ms", "--tokens", "6",
				"--retrieval-latency", "10ms", "--faults", "429=0.08,error_event=0.05,workflow_failed=0.05,no_terminal=0.04")
			m := e.startMaster(t, masterOpts{version: version, headless: true, users: 8, rate: 8, runTime: "10s", expect: 2, host: mk.URL})
			for i := 0; i < 2; i++ {
				e.startWorker(t, m, "--chat-wait", "0.05-0.2", "--retrieve-wait", "0.05-0.2")
			}
			m.wait(t, 90*time.Second)

			tr := mk.truth(t)
			rows := csvRows(t, filepath.Join(m.dir, "run_stats.csv"))
			chatTotal, chat := outcomes(tr.Counts, "chat-messages")
			retrTotal, retr := outcomes(tr.Counts, "retrieve")
			if chatTotal < 20 || retrTotal < 5 {
				t.Fatalf("too little load to judge: chat %d, retrieve %d (mock counts %v)", chatTotal, retrTotal, tr.Counts)
			}
			if chat["client_gone"]+retr["client_gone"] > 0 {
				t.Errorf("the worker abandoned streams at quit: mock client_gone chat=%d retrieve=%d", chat["client_gone"], retr["client_gone"])
			}
			check := func(typ, name string, wantReq, wantFail int64) {
				t.Helper()
				r := statsRow(rows, typ, name)
				if r == nil {
					t.Errorf("no row %s %s in the master's CSV", typ, name)
					return
				}
				gotReq, gotFail := atoi(t, r["Request Count"]), atoi(t, r["Failure Count"])
				if gotReq != wantReq || gotFail != wantFail {
					t.Errorf("%s %s: master counted %d requests / %d failures, the mock served %d / injected %d",
						typ, name, gotReq, gotFail, wantReq, wantFail)
				}
			}
			streams := chatTotal - chat["http_429"]
			check("POST", "/v1/chat-messages", chatTotal, chat["http_429"])
			check("SSE", "Full Response", streams, chat["error_event"]+chat["workflow_failed"]+chat["no_terminal"])
			check("SSE", "TTFB", chat["ok"]+chat["error_event"]+chat["workflow_failed"]+chat["no_terminal"], 0)
			check("POST", "/v1/datasets/[id]/retrieve", retrTotal, retr["http_429"])

			fails := failureCounts(t, filepath.Join(m.dir, "run_failures.csv"))
			want := map[string]int64{
				"POST /v1/chat-messages: HTTP 429 too_many_requests":          chat["http_429"],
				"SSE Full Response: stream error: completion_request_error":   chat["error_event"],
				"SSE Full Response: workflow failed":                          chat["workflow_failed"],
				"SSE Full Response: stream ended before message_end":          chat["no_terminal"],
				"POST /v1/datasets/[id]/retrieve: HTTP 429 too_many_requests": retr["http_429"],
			}
			for k, n := range want {
				if fails[k] != n {
					t.Errorf("failures CSV %q = %d, mock says %d", k, fails[k], n)
				}
			}
			for k := range fails {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected failure row %q (%d)", k, fails[k])
				}
			}
		})
	}
}
