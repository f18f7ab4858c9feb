package difymock

import (
	"net/http"
	"time"
)

func (c *chat) serveBlocking() {
	defer c.stop()
	// Blocking answers arrive after the whole generation.
	n := c.set.tokens
	due := c.recv.Add(c.jitter(c.set.ttft))
	for i := 1; i < n; i++ {
		due = due.Add(c.jitter(c.set.tokenDelay))
	}
	switch c.fault {
	case fStall:
		due = due.Add(c.set.stall)
	case fErrorEvent, fWorkflowFailed, fReset:
	default:
		c.fault = fNone // stream-only faults do not apply
	}
	if !c.waitUntil(due, false) {
		c.out = oClientGone
		return
	}
	c.sent = n
	c.firstTok = c.s.clock()
	c.lastTok = c.firstTok
	switch c.fault {
	case fErrorEvent, fWorkflowFailed, fReset:
		c.fired = true
		switch c.fault {
		case fErrorEvent:
			c.fail(http.StatusBadRequest, "completion_request_error", "[mock] Rate Limit Error: injected error_event")
		case fWorkflowFailed:
			c.fail(http.StatusBadRequest, "invalid_param", "Run failed: [mock] injected failure")
		default:
			resetConn(c.w)
		}
		c.out = faultOutcome(c.fault)
		return
	}
	c.firstTok = time.Time{} // Dify reports null TTFT for blocking
	e := enc{b: make([]byte, 0, 1024), dumps: true}
	switch c.a.wire {
	case wireWorkflow:
		// {"task_id","workflow_run_id","data":{id,workflow_id,status,outputs,error,…}} (docs/dify-wire.md, "Workflow and completion apps")
		now := c.s.clock()
		e.open().kstr("task_id", c.task).kstr("workflow_run_id", c.run).key("data").obj().kstr("id", c.run).
			kstr("workflow_id", c.a.wfID).kstr("status", "succeeded").key("outputs").obj().key("text")
		c.answerString(&e)
		e.close().knull("error").key("elapsed_time").float(secs(now.Sub(time.Unix(0, c.rec.Received)))).
			kint("total_tokens", c.promptTokens()+int64(c.sent)).kint("total_steps", 3).
			kint("created_at", c.created).kint("finished_at", now.Unix()).close().close()
	default:
		e.open().kstr("event", "message").kstr("task_id", c.task).kstr("id", c.msg).kstr("message_id", c.msg)
		if c.a.wire != wireCompletion {
			e.kstr("conversation_id", c.conv)
		}
		e.kstr("mode", c.a.mode).key("answer")
		c.answerString(&e)
		e.key("metadata")
		c.metadata(&e)
		e.kint("created_at", c.created).close()
	}
	if err := writeJSON(c.w, http.StatusOK, "application/json; charset=utf-8", e.b); err != nil {
		c.out = oClientGone
		return
	}
	c.rec.Tokens = n
	c.rec.Terminal = c.s.clock().UnixNano()
	if c.fault == fStall {
		c.out = faultOutcome(fStall)
	} else {
		c.out = oOK
	}
}
