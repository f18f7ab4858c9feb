package difymock

import (
	"time"
)

// workflowStarted emits a run's first event.
func (c *chat) workflowStarted() bool {
	e := c.begin("workflow_started", pRun)
	e.key("data").obj().kstr("id", c.run).kstr("workflow_id", c.a.wfID).key("inputs")
	c.sysInputs(e)
	e.kint("created_at", c.created).close()
	return c.send()
}

// sysInputs writes the run's inputs: the sys.* variables of the app's mode, then the user's.
func (c *chat) sysInputs(e *enc) {
	if c.a.wire == wireWorkflow {
		e.obj().key("sys.files").emptyArr().kstr("sys.user_id", c.endUser)
	} else {
		e.obj().kstr("sys.query", c.query).key("sys.files").emptyArr().kstr("sys.conversation_id", c.conv).
			kstr("sys.user_id", c.endUser).kint("sys.dialogue_count", max(c.turn, 1))
	}
	e.kstr("sys.app_id", c.a.id).kstr("sys.workflow_id", c.a.wfID).kstr("sys.workflow_run_id", c.run)
	for _, in := range c.inputs {
		e.ukey(in.k).raw(in.v)
	}
	e.close()
}

func (c *chat) nodeStarted(nodes []node, i int, execID string) bool {
	n := nodes[i]
	c.steps++
	e := c.begin("node_started", pRun)
	e.key("data").obj().kstr("id", execID).kstr("node_id", n.id).kstr("node_type", n.typ).kstr("title", n.title).
		kint("index", int64(i+1)).knull("predecessor_node_id").knull("inputs").kbool("inputs_truncated", false).
		kint("created_at", c.s.clock().Unix()).key("extras")
	if n.typ == "tool" {
		e.obj().kstr("icon", "/console/api/workspaces/current/tool-provider/builtin/time/icon").close()
	} else {
		e.emptyObj()
	}
	e.knull("iteration_id").knull("loop_id").knull("agent_strategy").close()
	return c.send()
}

// finishedHead writes the node_finished data fields up to "inputs".
func (c *chat) finishedHead(nodes []node, i int, execID string) *enc {
	n := nodes[i]
	e := c.begin("node_finished", pRun)
	e.key("data").obj().kstr("id", execID).kstr("node_id", n.id).kstr("node_type", n.typ).kstr("title", n.title).
		kint("index", int64(i+1))
	if i == 0 {
		e.knull("predecessor_node_id")
	} else {
		e.kstr("predecessor_node_id", nodes[i-1].id)
	}
	return e
}

// finishedTail writes the node_finished data fields from "created_at" and sends the event.
func (c *chat) finishedTail(e *enc, created, finished int64) bool {
	e.kint("created_at", created).kint("finished_at", finished).key("files").emptyArr().knull("iteration_id").knull("loop_id").close()
	return c.send()
}

func (c *chat) nodeFinished(nodes []node, i int, execID, status string) bool {
	n := nodes[i]
	e := c.finishedHead(nodes, i, execID)
	e.key("inputs")
	switch n.typ {
	case "start":
		c.sysInputs(e)
	case "if-else":
		e.obj().key("conditions").arr().elem().obj().kstr("actual_value", "sys.query").kstr("expected_value", "").kstr("comparison_operator", "not empty").kbool("result", true).close().endArr().close()
	case "tool":
		e.obj().kstr("timezone", "UTC").close()
	case "knowledge-retrieval":
		e.obj().kstr("query", c.query).close()
	default:
		e.emptyObj()
	}
	e.kbool("inputs_truncated", false).knull("process_data").kbool("process_data_truncated", false).key("outputs")
	switch n.typ {
	case "start":
		c.sysInputs(e)
	case "if-else":
		e.obj().kbool("result", true).kstr("selected_case_id", "true").close()
	case "tool":
		e.obj().kstr("text", "07:06").key("files").emptyArr().key("json").emptyArr().close()
	case "knowledge-retrieval":
		e.obj().key("result").arr().elem().obj().key("metadata").obj().
			kstr("_source", "knowledge").kint("position", 1).kstr("dataset_id", DefaultDatasetID).kstr("dataset_name", "KB").
			kstr("document_id", "0b7c5d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e").kstr("document_name", "guide.txt").
			kstr("data_source_type", "upload_file").kstr("segment_id", "1c8d6e2f-3a4b-4c7d-9e0f-1a2b3c4d5e6f").
			kstr("retriever_from", "workflow").key("score").float(0.82).kint("segment_hit_count", 3).
			kint("segment_word_count", 120).kint("segment_position", 1).kstr("segment_index_node_hash", "9f86d081884c7d659a2feaa0c55ad015").
			close().kstr("title", "guide.txt").kstr("content", "Dify is an open-source platform for building LLM apps.").close().endArr().close()
	case "answer":
		e.obj().key("answer")
		c.answerString(e)
		e.key("files").emptyArr().close()
	case "end":
		e.obj().key("text")
		c.answerString(e)
		e.close()
	}
	e.kbool("outputs_truncated", false).kstr("status", status).knull("error").key("elapsed_time").float(n.elapsed)
	if n.typ == "tool" {
		e.key("execution_metadata").obj().key("tool_info").obj().kstr("provider_type", "builtin").kstr("provider_id", "time").
			kstr("plugin_unique_identifier", "langgenius/time:0.0.1").close().close()
	} else {
		e.knull("execution_metadata")
	}
	now := c.s.clock().Unix()
	return c.finishedTail(e, now, now)
}

func (c *chat) nodeFinishedFailed(nodes []node, i int, execID string, started time.Time) bool {
	e := c.finishedHead(nodes, i, execID)
	e.key("inputs").emptyObj().kbool("inputs_truncated", false).knull("process_data").kbool("process_data_truncated", false).
		knull("outputs").kbool("outputs_truncated", false).kstr("status", "failed").kstr("error", "[mock] injected failure").
		key("elapsed_time").float(secs(c.s.clock().Sub(started))).knull("execution_metadata")
	return c.finishedTail(e, started.Unix(), c.s.clock().Unix())
}

func (c *chat) llmFinished(nodes []node, i int, execID string, started time.Time) bool {
	e := c.finishedHead(nodes, i, execID)
	e.key("inputs").emptyObj().kbool("inputs_truncated", false).key("process_data").obj().
		kstr("model_mode", "chat").key("prompts").arr().elem().obj().kstr("role", "user").kstr("text", c.query).key("files").emptyArr().close().endArr().
		key("usage")
	c.usage(e)
	e.kstr("finish_reason", "stop").kstr("model_provider", "langgenius/openai/openai").kstr("model_name", "gpt-4o-mini").close().
		kbool("process_data_truncated", false).key("outputs").obj().key("text")
	c.answerString(e)
	e.kstr("reasoning_content", "").key("usage")
	c.usage(e)
	e.kstr("finish_reason", "stop").close().kbool("outputs_truncated", false).kstr("status", "succeeded").knull("error").
		key("elapsed_time").float(secs(c.s.clock().Sub(started)))
	pt, ct := c.promptTokens(), int64(c.sent)
	e.key("execution_metadata").obj().kint("total_tokens", pt+ct).kstr("total_price", price(pt*15+ct*60)).kstr("currency", "USD").close()
	return c.finishedTail(e, started.Unix(), c.s.clock().Unix())
}

func (c *chat) workflowFinished(status string, steps int) bool {
	e := c.begin("workflow_finished", pRun)
	now := c.s.clock()
	e.key("data").obj().kstr("id", c.run).kstr("workflow_id", c.a.wfID).kstr("status", status).key("outputs")
	switch {
	case status == "succeeded" && c.a.wire == wireWorkflow:
		e.obj().key("text")
		c.answerString(e)
		e.close()
		e.knull("error")
	case status == "succeeded":
		e.obj().key("answer")
		c.answerString(e)
		e.key("files").emptyArr().close()
		e.knull("error")
	case status == "stopped":
		e.emptyObj().kstr("error", "Stopped by user.") // QueueStopEvent's reason for a manual stop
	default:
		e.emptyObj().kstr("error", "[mock] injected failure")
	}
	total := c.promptTokens() + int64(c.sent)
	e.key("elapsed_time").float(secs(now.Sub(time.Unix(0, c.rec.Received)))).kint("total_tokens", total).kint("total_steps", int64(steps)).
		key("created_by").obj().kstr("id", c.endUser).kstr("user", c.user).close().
		kint("created_at", c.created).kint("finished_at", now.Unix()).kint("exceptions_count", 0).key("files").emptyArr().close()
	return c.sendTerminal()
}
