package difymock

import (
	"net"
	"net/http"
)

// prefix picks the leading fields of an event (see begin).
type prefix uint8

const (
	pChat  prefix = iota // event,conversation_id,message_id,created_at,task_id
	pRun                 // pChat + workflow_run_id
	pError               // event,conversation_id,message_id,created_at (no task_id)
)

// begin starts a `data: {...` frame in a pooled buffer, with the prefix of the app's mode
// (docs/dify-wire.md, "SSE framing"): chat apps event, conversation_id, message_id, created_at, task_id
// (and workflow_run_id for node events); completion apps without conversation_id; workflow
// apps event, workflow_run_id, task_id. An error event has no task_id.
func (c *chat) begin(event string, p prefix) *enc {
	c.buf = c.s.bufs.get()
	c.e = enc{b: append(*c.buf, "data: "...)}
	e := &c.e
	e.obj().kstr("event", event)
	switch c.a.wire {
	case wireWorkflow:
		e.kstr("workflow_run_id", c.run)
		if p != pError {
			e.kstr("task_id", c.task)
		}
		return e
	case wireCompletion:
		e.kstr("message_id", c.msg).kint("created_at", c.created)
	default:
		e.kstr("conversation_id", c.conv).kstr("message_id", c.msg).kint("created_at", c.created)
	}
	if p != pError {
		e.kstr("task_id", c.task)
	}
	if p == pRun {
		e.kstr("workflow_run_id", c.run)
	}
	return e
}

// chunkOpen starts an answer chunk frame up to its answer value, which the caller writes:
// message/agent_message "answer", or a workflow app's text_chunk data.text.
func (c *chat) chunkOpen() *enc {
	if c.a.wire == wireWorkflow {
		e := c.begin("text_chunk", pChat)
		e.key("data").obj().key("text")
		return e
	}
	e := c.begin(c.answerEvent(), pChat)
	e.kstr("id", c.msg).key("answer")
	return e
}

// chunkClose writes what follows chunk i's answer value.
func (c *chat) chunkClose(e *enc, i int) {
	switch {
	case c.a.wire == wireWorkflow:
		e.key("from_variable_selector").arr().elem().str("llm").elem().str("text").endArr().close()
	case c.answerEvent() == "message":
		c.selector(e, i)
	}
}

// send closes the frame, writes and flushes it, and recycles the buffer.
func (c *chat) send() bool {
	c.e.close()
	c.e.b = append(c.e.b, '\n', '\n')
	ok := c.write(c.e.b)
	c.recycle()
	return ok
}

// recycle returns the frame's buffer to the pool.
func (c *chat) recycle() {
	*c.buf = c.e.b[:0]
	c.s.bufs.put(c.buf)
	c.buf, c.e = nil, enc{}
}

// sendTerminal sends the frame of a terminal event and records when it went out.
func (c *chat) sendTerminal() bool {
	ok := c.send()
	if ok {
		c.rec.Terminal = c.s.clock().UnixNano()
	}
	return ok
}

// write writes b and flushes; a failure marks the client gone.
func (c *chat) write(b []byte) bool {
	if c.broken {
		return false
	}
	if _, err := c.w.Write(b); err != nil {
		c.broken = true
		return false
	}
	if err := c.flush(); err != nil {
		c.broken = true
		return false
	}
	return true
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so the
// peer gets a TCP RST.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
