//go:build goczmq

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWorkerSignals stops two loaded workers, one with SIGTERM and one with SIGINT, on both
// masters. Each must stop new work at once, give streams under way --stop-grace to finish,
// cancel the rest, flush its final stats, send quit and exit 0 within grace + 2 s. The
// master then shows exactly the streams the mock completed (the ones that finished within
// the grace included), no failure (a cancelled stream is not one), logs both quits and
// drops both workers from its list.
func TestWorkerSignals(t *testing.T) {
	const grace = time.Second
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			// Streams of about 3 s started 0.5 s apart, so that at the signal every user is
			// mid-stream: some finish within the grace, the others are cancelled.
			mk := e.startMock(t, "--ttft", "50ms", "--token-delay", "50ms", "--tokens", "60")
			// Only ChatUser (a class named on the master's command line), so each worker
			// runs streams whatever the dispatcher does.
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, extraArgs: []string{"ChatUser"}})
			args := []string{"--stop-grace", grace.String(), "--chat-wait", "0.05-0.1", "--log-level", "info"}
			workers := map[string]*proc{
				"term-worker": e.startWorker(t, m, append([]string{"--node-id", "term-worker"}, args...)...),
				"int-worker":  e.startWorker(t, m, append([]string{"--node-id", "int-worker"}, args...)...),
			}
			signals := map[string]syscall.Signal{"term-worker": syscall.SIGTERM, "int-worker": syscall.SIGINT}
			w := m.web()
			for id := range workers {
				w.waitReady(t, 60*time.Second, id)
			}
			w.swarm(t, 8, 2, "")
			waitFor(t, 30*time.Second, "8 users running", func() bool {
				s, ok := w.stats(t)
				return ok && s.UserCount == 8
			})
			time.Sleep(2 * time.Second)

			signalled := time.Now()
			for id, p := range workers {
				p.signal(signals[id])
			}
			for id, p := range workers {
				code := p.exitCode(t, 30*time.Second)
				took := time.Since(signalled)
				t.Logf("%s: exit %d %v after %v", id, code, signals[id], took.Round(time.Millisecond))
				if code != 0 {
					t.Errorf("%s: exit code %d after %v, want 0:\n%s", id, code, signals[id], p.Tail(20))
				}
				if took > grace+2*time.Second {
					t.Errorf("%s: exited %v after %v, want within grace %v + 2s", id, took.Round(time.Millisecond), signals[id], grace)
				}
				out := p.Output()
				for _, want := range []string{"shutting down: stopping users", "stopped; quit sent"} {
					if !strings.Contains(out, want) {
						t.Errorf("%s: log lacks %q", id, want)
					}
				}
			}

			mk.waitIdle(t, 10*time.Second)
			tr := mk.truth(t)
			chat := tr.Counts["chat-messages"]
			var inFlightAtSignal, finishedInGrace int64
			for _, r := range mk.truthRecords(t) {
				if r.Outcome == "ok" && r.Terminal > signalled.UnixNano() {
					finishedInGrace++
				}
			}
			inFlightAtSignal = finishedInGrace + chat["client_gone"]
			t.Logf("mock: %v; streams under way at the signal: %d finished within the grace, %d cancelled",
				chat, finishedInGrace, chat["client_gone"])
			if inFlightAtSignal == 0 {
				t.Errorf("no stream was under way at the signal: the test proves nothing")
			}
			for o, n := range chat {
				if o != "ok" && o != "client_gone" {
					t.Errorf("unexpected mock outcome %s ×%d", o, n)
				}
			}
			// Final stats: every completed stream is at the master, cancelled ones are not
			// failures. (A stream whose message_end arrived just as the grace ran out can be
			// a success for the worker and client_gone for the mock, if the cancel closed the
			// connection before the mock's handler returned: the master may show up to
			// client_gone more, never fewer.)
			var s uiStats
			waitForInfo(t, 10*time.Second, "the master's Full Response count to reach the mock's", func() bool {
				var ok bool
				s, ok = w.stats(t)
				full, _ := s.row("SSE", "Full Response")
				return ok && full >= chat["ok"] && full <= chat["ok"]+chat["client_gone"]
			}, func() string { return fmt.Sprintf("master rows %+v, mock %v", s.Stats, chat) })
			if full, _ := s.row("SSE", "Full Response"); full != chat["ok"] {
				t.Logf("master Full Response %d, mock ok %d: %d stream(s) ended at the grace's edge", full, chat["ok"], full-chat["ok"])
			}
			post, postFail := s.row("POST", "/v1/chat-messages")
			if post < chat["ok"] || post > chat["ok"]+chat["client_gone"] || postFail != 0 {
				t.Errorf("POST row %d requests / %d failures; mock ok %d, client_gone %d", post, postFail, chat["ok"], chat["client_gone"])
			}
			if f := s.failures(); len(f) != 0 {
				t.Errorf("failures after a clean stop: %v", f)
			}
			// Quit seen by the master: both workers are gone and its log says so.
			waitFor(t, 10*time.Second, "both workers gone from the master's list", func() bool {
				s, ok := w.stats(t)
				_, a := s.worker("term-worker")
				_, b := s.worker("int-worker")
				return ok && !a && !b
			})
			log := m.Output()
			for id := range workers {
				found := false
				for _, line := range strings.Split(log, "\n") {
					if strings.Contains(line, id) && strings.Contains(line, "quit") {
						found = true
					}
				}
				if !found {
					t.Errorf("master log has no quit line for %s:\n%s", id, tail(log, 30))
				}
			}
		})
	}
}
