//go:build goczmq

package e2e

import (
	"testing"
	"time"
)

// TestWebUIStopStart drives a master in web-UI mode: start, stop, start again. The worker
// must finish in-flight streams at stop, go back to ready, take the second swarm, and the
// master's totals must equal the mock's counts once the load has stopped.
func TestWebUIStopStart(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "30ms", "--token-delay", "5ms", "--tokens", "5", "--retrieval-latency", "10ms")
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 10})
			e.startWorker(t, m, "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1")
			w := m.web()
			w.waitOneReady(t)

			// The master clears its stats at every new start, so each round is compared
			// with what the mock served during that round.
			var prevChat, prevRetr int64
			for round := 1; round <= 2; round++ {
				w.swarm(t, 4, 4, "")
				waitFor(t, 20*time.Second, "4 running users", func() bool {
					s, ok := w.stats(t)
					return ok && s.UserCount == 4 && len(s.Workers) == 1 && s.Workers[0].State == "running"
				})
				time.Sleep(3 * time.Second)
				w.stop(t)
				waitFor(t, 30*time.Second, "the worker to be ready again after stop", func() bool {
					s, ok := w.stats(t)
					return ok && s.State == "stopped" && len(s.Workers) == 1 && s.Workers[0].State == "ready"
				})
				// The worker's last stats report follows client_stopped; wait for the
				// master's totals to reach the mock's, then demand equality.
				tr := mk.truth(t)
				allChat, chat := outcomes(tr.Counts, "chat-messages")
				allRetr, _ := outcomes(tr.Counts, "retrieve")
				chatTotal, retrTotal := allChat-prevChat, allRetr-prevRetr
				prevChat, prevRetr = allChat, allRetr
				if chatTotal == 0 || retrTotal == 0 {
					t.Fatalf("round %d: no new requests reached the mock (%v)", round, tr.Counts)
				}
				if chat["client_gone"] > 0 {
					t.Errorf("round %d: %d streams were abandoned at stop despite stop_timeout", round, chat["client_gone"])
				}
				var s uiStats
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					s, _ = w.stats(t)
					got, _ := s.row("POST", "/v1/chat-messages")
					gotR, _ := s.row("POST", "/v1/datasets/[id]/retrieve")
					if got == chatTotal && gotR == retrTotal {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				got, _ := s.row("POST", "/v1/chat-messages")
				full, _ := s.row("SSE", "Full Response")
				gotR, _ := s.row("POST", "/v1/datasets/[id]/retrieve")
				if got != chatTotal || full != chatTotal || gotR != retrTotal {
					t.Errorf("round %d: master shows chat %d, full response %d, retrieve %d; mock served chat %d, retrieve %d",
						round, got, full, gotR, chatTotal, retrTotal)
				}
			}
		})
	}
}
