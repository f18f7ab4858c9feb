//go:build goczmq

package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
	"github.com/difyload/difyload/runner"
)

// masterException is one row of a master's GET /exceptions (the Exceptions tab).
type masterException struct {
	Count     int64  `json:"count"`
	Msg       string `json:"msg"`
	Traceback string `json:"traceback"`
	Nodes     any    `json:"nodes"` // ", "-joined str on every version tested; a list is accepted too
}

func getExceptions(t *testing.T, base string) []masterException {
	t.Helper()
	resp, err := locusttest.Get(base + "/exceptions")
	if err != nil {
		t.Fatalf("GET /exceptions: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Exceptions []masterException `json:"exceptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /exceptions: %v", err)
	}
	for i := range body.Exceptions { // 2.12.1 HTML-escapes them
		body.Exceptions[i].Msg = html.UnescapeString(body.Exceptions[i].Msg)
		body.Exceptions[i].Traceback = html.UnescapeString(body.Exceptions[i].Traceback)
	}
	return body.Exceptions
}

// panickingTask panics with a fixed message; its name must appear in the traceback.
func panickingTask() { panic("difyload test panic: user code blew up") }

var errTaskFailed = errors.New("difyload test error: task could not run")

// TestIntegrationPanicsInExceptionsTab: panics in user code are recovered (the users carry
// on), counted exactly, and shown in the master's Exceptions tab with a Python-style
// traceback naming the panicking function and this node; an error returned by a task is
// a row of its own.
func TestIntegrationPanicsInExceptionsTab(t *testing.T) {
	const panicsPerUser, errorsPerUser = 3, 2
	for _, v := range masterVersions() {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			m := webMaster(t, v, locusttest.MasterOptions{})
			base, port := m.WebURL(), m.Port

			var panics, errs, tasksAfter atomic.Int64
			chat := &testClass{name: "ChatUser", weight: 3, wait: 20 * time.Millisecond}
			iter := make(map[int]*atomic.Int64)
			for i := range 64 {
				iter[i] = &atomic.Int64{}
			}
			chat.task = func(ctx context.Context, id int, env runner.Env) error {
				n := iter[id%64].Add(1)
				switch {
				case n <= panicsPerUser:
					panics.Add(1)
					panickingTask()
				case n <= panicsPerUser+errorsPerUser:
					errs.Add(1)
					return fmt.Errorf("wrapped: %w", errTaskFailed)
				}
				tasksAfter.Add(1)
				return nil
			}
			classes := []runner.UserClass{chat, &testClass{name: "RetrieveUser", weight: 1, wait: 50 * time.Millisecond}}
			w, _, _ := runWorker(t, Config{MasterPort: port, ConnectTimeout: time.Minute, StatsInterval: time.Second, Logger: testLogger(t)}, classes, emptyStats{})
			id := w.NodeID()
			waitFor(t, base, 60*time.Second, "worker ready", func(s webStats) bool { return workerState(s, id) == "ready" })
			post(t, base, "/swarm", url.Values{"user_count": {"4"}, "spawn_rate": {"4"}, "host": {"http://127.0.0.1:9"}})
			waitFor(t, base, 20*time.Second, "4 users running", func(s webStats) bool { return s.UserCount == 4 && workerState(s, id) == "running" })

			// Three ChatUsers (weights 3:1): each panics 3 times, then fails twice, then
			// keeps running: the panics did not kill the users.
			deadline := time.Now().Add(20 * time.Second)
			for tasksAfter.Load() < 3*5 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if tasksAfter.Load() < 3*5 {
				t.Fatalf("users did not carry on after their panics: %d tasks after", tasksAfter.Load())
			}
			wantPanics, wantErrs := panics.Load(), errs.Load()
			if wantPanics != 3*panicsPerUser || wantErrs != 3*errorsPerUser {
				t.Fatalf("test users made %d panics and %d errors, want %d and %d", wantPanics, wantErrs, 3*panicsPerUser, 3*errorsPerUser)
			}
			// Repeats are sent at the end of a stats interval; wait for the counts.
			var rows []masterException
			var gotPanic, gotErr *masterException
			deadline = time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				rows = getExceptions(t, base)
				gotPanic, gotErr = nil, nil
				for i := range rows {
					switch {
					case strings.Contains(rows[i].Msg, "difyload test panic"):
						gotPanic = &rows[i]
					case strings.Contains(rows[i].Msg, "difyload test error"):
						gotErr = &rows[i]
					}
				}
				if gotPanic != nil && gotErr != nil && gotPanic.Count >= wantPanics && gotErr.Count >= wantErrs {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if gotPanic == nil || gotErr == nil {
				t.Fatalf("the master's Exceptions tab lacks the panic or the error: %+v", rows)
			}
			if gotPanic.Count != wantPanics {
				t.Errorf("panic row count %d, the users panicked %d times", gotPanic.Count, wantPanics)
			}
			if gotErr.Count != wantErrs {
				t.Errorf("error row count %d, the tasks returned %d errors", gotErr.Count, wantErrs)
			}
			if !strings.Contains(gotPanic.Traceback, "panickingTask") || !strings.Contains(gotPanic.Traceback, `File "`) {
				t.Errorf("panic traceback does not name the panicking function in Python's format:\n%s", gotPanic.Traceback)
			}
			if gotErr.Msg != "wrapped: "+errTaskFailed.Error() {
				t.Errorf("error row msg %q", gotErr.Msg)
			}
			for _, r := range []*masterException{gotPanic, gotErr} {
				if !strings.Contains(fmt.Sprint(r.Nodes), id) {
					t.Errorf("exception row %q: nodes %v lack this worker %s", r.Msg, r.Nodes, id)
				}
			}
			if len(rows) != 2 {
				t.Errorf("want exactly 2 exception rows (identical panics group under one), got %d: %+v", len(rows), rows)
			}
			get(t, base, "/stop")
		})
	}
}
