package difymock

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// Stop endpoints (see doc.go, "Stopping a run"): POST /v1/chat-messages/{task_id}/stop and
// POST /v1/workflows/tasks/{task_id}/stop.

// tasks are the streaming runs that can be stopped right now, by task id.
type tasks struct {
	mu  sync.Mutex
	run map[string]*task
}

// task is one running stream's stop handle.
type task struct {
	kind appKind
	user string
	once sync.Once
	ch   chan struct{} // closed by the first valid stop
}

func (t *tasks) add(id string, kind appKind, user string) *task {
	tk := &task{kind: kind, user: user, ch: make(chan struct{})}
	t.mu.Lock()
	if t.run == nil {
		t.run = map[string]*task{}
	}
	t.run[id] = tk
	t.mu.Unlock()
	return tk
}

func (t *tasks) remove(id string) {
	t.mu.Lock()
	delete(t.run, id)
	t.mu.Unlock()
}

// stop sets the stop flag of a running task owned by user of app kind. Like Dify's
// AppQueueManager.set_stop_flag it does nothing (and says nothing) when the task is unknown,
// over, or another user's; it reports whether it stopped one.
func (t *tasks) stop(id string, kind appKind, user string) bool {
	t.mu.Lock()
	tk := t.run[id]
	t.mu.Unlock()
	if tk == nil || tk.kind != kind || tk.user != user {
		return false
	}
	tk.once.Do(func() { close(tk.ch) })
	return true
}

// stopTaskID returns the task id of a stop path and which route it is ("" when path is not
// a stop route).
func stopTaskID(path string) (id, route string) {
	for _, r := range []struct{ prefix, route string }{
		{"/v1/chat-messages/", EndpointChat},
		{"/v1/workflows/tasks/", EndpointWorkflow},
	} {
		if rest, ok := strings.CutPrefix(path, r.prefix); ok {
			if id, ok := strings.CutSuffix(rest, "/stop"); ok && id != "" && !strings.Contains(id, "/") {
				return id, r.route
			}
		}
	}
	return "", ""
}

// serveStop answers a stop request: the app key, a JSON body with the user, the app mode
// against the route (400 not_chat_app / not_workflow_app), then {"result": "success"}
// whether or not a task was stopped.
func (s *Server) serveStop(rq *req, id, route string) {
	a := rq.appAuth()
	if a == nil {
		return
	}
	if !rq.requireJSON() {
		return
	}
	var body struct {
		User json.RawMessage `json:"user"`
	}
	if !rq.readObject(1<<20, &body) {
		return
	}
	user, ok := rq.requireUser(body.User)
	if !ok {
		return
	}
	if a.endpoint != route {
		code := map[string]string{EndpointChat: "not_chat_app", EndpointWorkflow: "not_workflow_app"}[route]
		rq.fail(http.StatusBadRequest, code, "Please check if your app mode matches the right API route.")
		return
	}
	// The answer is buffered until the handler returns, so the client still gets it after the
	// flag is set; recording it first puts this request's clock reading before any of the
	// stopped stream's (the golden transcripts of stopped runs depend on that order).
	rq.w.Header().Set("Content-Type", "application/json")
	_, _ = rq.w.Write([]byte("{\"result\":\"success\"}\n"))
	rq.rec.Terminal = rq.s.clock().UnixNano()
	rq.out = oStopIgnored
	if s.tasks.stop(id, a.kind, user) {
		rq.out = oOK
	}
}

// stopTail ends a stream whose task was stopped the way Dify's pipeline for its mode does:
// a workflow app sends workflow_finished (stopped); a chatflow sends workflow_finished
// (stopped) then message_end, and a 1.13 relay, which stops at workflow_finished, cuts the
// message_end; chat and agent apps send message_end.
func (c *chat) stopTail() {
	ok := false
	switch {
	case c.a.wire == wireWorkflow:
		ok = c.workflowFinished("stopped", c.steps)
	case c.a.nodes:
		ok = c.workflowFinished("stopped", c.steps) && (c.relay || c.messageEnd())
	default:
		ok = c.messageEnd()
	}
	c.out = oClientGone
	if ok {
		c.out = oStopped
	}
}
