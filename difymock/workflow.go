package difymock

import (
	"time"
)

// Node catalog of the two chatflows.
type node struct {
	id, typ, title string
	elapsed        float64
}

func (c *chat) nodes() []node {
	switch c.a.kind {
	case appWorkflow:
		return []node{{"1711528708197", "start", "Start", 0.0018}, {"llm", "llm", "LLM", 0}, {"end", "end", "End", 0.0009}}
	case appHuman:
		return []node{{"1711528708197", "start", "Start", 0.0021}, {"human", "human-input", "Approval", 0}}
	}
	if c.a.kind == appSimple || c.a.kind == appRequired {
		return []node{{"1711528708197", "start", "Start", 0.0021}, {"answer", "answer", "Answer", 0.0105}}
	}
	return []node{
		{"1711528708197", "start", "Start", 0.0019},
		{"1711528710001", "if-else", "IF/ELSE", 0.0007},
		{"1711528712345", "tool", "Current Time", 0.0356},
		{"1711528714567", "knowledge-retrieval", "Knowledge Retrieval", 0.2143},
		{"llm", "llm", "LLM", 0},
		{"answer", "answer", "Answer", 0.0012},
	}
}

// streamWorkflow emits a chatflow run. It returns whether the stream was
// completed (false for faults that cut it and for a gone client).
func (c *chat) streamWorkflow() bool {
	nodes := c.nodes()
	streamer := len(nodes) - 1 // simple: the answer node streams the answer
	if c.a.kind == appComplex {
		streamer = 4 // the LLM node
	}
	execID, started, ok := c.runToAnswer(nodes, streamer)
	if !ok {
		return false
	}
	if c.a.kind == appComplex {
		if !c.llmFinished(nodes, streamer, execID, started) || !c.passNode(nodes, 5) {
			return false
		}
	} else if !c.nodeFinished(nodes, streamer, execID, "succeeded") {
		return false
	}
	steps := len(nodes)
	switch {
	case c.fault == fTerminalSwap:
		c.fired = true
		return c.messageEnd() && c.workflowFinished("succeeded", steps)
	case c.relay && c.s.ver.meFirst:
		// 1.13.1 on: message_end, then workflow_finished, where the relay stops
		// (core/app/apps/advanced_chat/generate_task_pipeline.py:501-546).
		return c.messageEnd() && c.workflowFinished("succeeded", steps)
	case c.relay:
		// 1.13.0: message_end is queued after workflow_finished, and the relay stops at
		// workflow_finished (core/app/apps/streaming_utils.py:53-63): it never arrives.
		return c.workflowFinished("succeeded", steps)
	}
	return c.workflowFinished("succeeded", steps) && c.messageEnd()
}

// streamWorkflowApp emits a workflow app's run (Start → LLM → End): text_chunk answer,
// terminal workflow_finished, no message events.
func (c *chat) streamWorkflowApp() bool {
	nodes := c.nodes()
	execID, started, ok := c.runToAnswer(nodes, 1)
	if !ok || !c.llmFinished(nodes, 1, execID, started) || !c.passNode(nodes, 2) {
		return false
	}
	if c.fault == fTerminalSwap {
		c.fired = true // a workflow app has one terminal event: nothing to swap
	}
	return c.workflowFinished("succeeded", len(nodes))
}

// runToAnswer emits a run up to the end of its answer: workflow_started, the nodes before
// node streamer (each started and finished), node streamer started, then the answer
// chunks. It returns the streaming node's execution id and start (clock time), and ok=false
// when the stream is over (a workflow_failed fault ends the run with failRun).
func (c *chat) runToAnswer(nodes []node, streamer int) (execID string, started time.Time, ok bool) {
	if !c.workflowStarted() {
		return "", started, false
	}
	for i := range streamer {
		if !c.passNode(nodes, i) {
			return "", started, false
		}
	}
	execID = c.id()
	started = c.s.clock()
	if !c.nodeStarted(nodes, streamer, execID) {
		return execID, started, false
	}
	ok = c.answer(func() { c.failRun(nodes, streamer, execID, started) })
	return execID, started, ok
}

// passNode emits node i's node_started and node_finished (succeeded).
func (c *chat) passNode(nodes []node, i int) bool {
	execID := c.id()
	return c.nodeStarted(nodes, i, execID) && c.nodeFinished(nodes, i, execID, "succeeded")
}

// failRun ends a failed run: node_finished(failed), workflow_finished(failed), then the error
// event, which a 1.13 relay cuts (it stops at workflow_finished).
func (c *chat) failRun(nodes []node, i int, execID string, started time.Time) {
	c.nodeFinishedFailed(nodes, i, execID, started)
	c.workflowFinished("failed", len(nodes))
	if c.relay {
		return
	}
	e := c.begin("error", pError)
	e.kstr("code", "invalid_param").kint("status", 400).kstr("message", "Run failed: Node "+nodes[i].title+" run failed: [mock] injected failure")
	c.send()
}

// streamHumanInput emits a chatflow that reaches a human-input node: Start, then
// human_input_required and workflow_paused, where the stream ends (the relay stops at
// workflow_paused, core/app/apps/streaming_utils.py:53-63). The two events' data is
// illustrative; clients read only their names.
func (c *chat) streamHumanInput() {
	nodes := c.nodes()
	c.out = oClientGone
	if !c.workflowStarted() || !c.passNode(nodes, 0) {
		return
	}
	human := c.id()
	if !c.nodeStarted(nodes, 1, human) {
		return
	}
	if !c.waitUntil(c.next, true) {
		return
	}
	e := c.begin("human_input_required", pRun)
	e.key("data").obj().kstr("node_id", "human").kstr("node_title", "Approval").kstr("form_content", "Approve the request?").
		key("actions").arr().elem().obj().kstr("id", "approve").kstr("title", "Approve").close().endArr().close()
	if !c.send() {
		return
	}
	e = c.begin("workflow_paused", pRun)
	e.key("data").obj().kstr("workflow_run_id", c.run).key("paused_nodes").arr().elem().str("human").endArr().
		key("outputs").emptyObj().kstr("status", "paused").key("elapsed_time").float(secs(c.s.clock().Sub(time.Unix(0, c.rec.Received)))).
		kint("total_tokens", 0).kint("total_steps", 2).kint("created_at", c.created).close()
	if c.sendTerminal() {
		c.out = oPaused
	}
}
