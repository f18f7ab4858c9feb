//go:build goczmq

package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
)

// activeChatUsers counts the distinct Dify users of chat requests that reached the mock in
// the last window: the worker's real ChatUser count, seen from the server side. (Dify's
// retrieve API carries no user, so RetrieveUsers are seen only through their requests.)
func activeChatUsers(t *testing.T, mk *mock, window time.Duration) (chatUsers int, retrieves int) {
	t.Helper()
	since := time.Now().Add(-window).UnixNano()
	seen := map[string]bool{}
	for _, r := range mk.truthRecords(t) {
		if r.Received < since {
			continue
		}
		if r.Endpoint == "retrieve" {
			retrieves++
		}
		if seen[r.User] || !strings.Contains(r.User, "-ChatUser-") {
			continue
		}
		seen[r.User] = true
		chatUsers++
	}
	return chatUsers, retrieves
}

// classCounts reads the per-class user counts the master holds from the workers' reports
// (GET /tasks gives each class's share of the users).
func (w web) classCounts(t *testing.T, total int) map[string]int {
	t.Helper()
	resp, err := locusttest.Get(w.base + "/tasks")
	if err != nil {
		t.Fatalf("GET /tasks: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Total map[string]struct {
			Ratio float64 `json:"ratio"`
		} `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /tasks: %v", err)
	}
	out := map[string]int{}
	for name, c := range body.Total {
		out[name] = int(math.Round(c.Ratio * float64(total)))
	}
	return out
}

// TestPerClassSpawnAndRampDown checks that the worker runs exactly the per-class counts
// the master assigns, on the way up and on the way down.
func TestPerClassSpawnAndRampDown(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "3", "--retrieval-latency", "5ms")
			m := e.startMaster(t, masterOpts{version: version, host: mk.URL, stopTO: 5})
			e.startWorker(t, m, "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1")
			w := m.web()
			w.waitOneReady(t)
			for _, step := range []struct {
				users        int
				chat, retrie int
			}{{6, 3, 3}, {2, 1, 1}, {4, 2, 2}} {
				w.swarm(t, step.users, 10, "")
				waitFor(t, 20*time.Second, "the user count to settle", func() bool {
					s, ok := w.stats(t)
					return ok && s.UserCount == step.users && len(s.Workers) == 1 && s.Workers[0].UserCount == step.users
				})
				time.Sleep(3 * time.Second) // let users that were stopped finish and leave the window
				if got := w.classCounts(t, step.users); got["ChatUser"] != step.chat || got["RetrieveUser"] != step.retrie {
					t.Errorf("after swarm %d: the master holds %v, want ChatUser %d, RetrieveUser %d", step.users, got, step.chat, step.retrie)
				}
				chatUsers, retrieves := activeChatUsers(t, mk, 1500*time.Millisecond)
				if chatUsers != step.chat {
					t.Errorf("after swarm %d: %d distinct ChatUsers reached the mock in the last 1.5 s, want %d", step.users, chatUsers, step.chat)
				}
				if retrieves == 0 {
					t.Errorf("after swarm %d: no retrievals reached the mock in the last 1.5 s", step.users)
				}
			}
			w.stop(t)
		})
	}
}
