package difymock

// streamMessages emits a run without workflow events: the agent-chat run (docs/dify-wire.md, "Agent app"), or a basic
// chat or completion app's message chunks and message_end.
func (c *chat) streamMessages() bool {
	if c.a.agent {
		// The agent calls its tool first: one thought as it starts, one with the observation.
		th := c.id()
		if !c.agentThought(th, 1, "", "", "current_time", `{"current_time": {}}`) ||
			!c.agentThought(th, 1, "", `{"current_time": "2026-01-07 07:06:40"}`, "current_time", `{"current_time": {}}`) {
			return false
		}
	}
	if !c.answer(c.sendRunFailed) {
		return false
	}
	if c.fault == fTerminalSwap {
		c.fired = true // one terminal event: nothing to swap
	}
	if c.a.agent && !c.finalThought() {
		return false
	}
	return c.messageEnd()
}

// finalThought is the agent's last thought: the answer it gave.
func (c *chat) finalThought() bool {
	id := c.id()
	e := c.begin("agent_thought", pChat)
	e.kstr("id", id).kint("position", 2).key("thought")
	c.answerString(e)
	e.kstr("observation", "").kstr("tool", "").key("tool_labels").emptyObj().kstr("tool_input", "").key("message_files").emptyArr()
	return c.send()
}

// agentThought is a thought of the agent's tool call.
func (c *chat) agentThought(id string, pos int64, thought, observation, tool, toolInput string) bool {
	e := c.begin("agent_thought", pChat)
	e.kstr("id", id).kint("position", pos).kstr("thought", thought).kstr("observation", observation).kstr("tool", tool).
		key("tool_labels").obj().key("current_time").obj().kstr("en_US", "Current Time").kstr("zh_Hans", "获取当前时间").close().close().
		kstr("tool_input", toolInput).key("message_files").emptyArr()
	return c.send()
}

// messageEnd is the terminal event of a chat, agent or completion run and of a chatflow.
func (c *chat) messageEnd() bool {
	e := c.begin("message_end", pChat)
	e.kstr("id", c.msg).key("metadata")
	c.metadata(e)
	e.key("files").emptyArr()
	return c.sendTerminal()
}

// metadata writes message_end's metadata: retriever resources (complex chatflow) and usage.
func (c *chat) metadata(e *enc) {
	e.obj().knull("annotation_reply").key("retriever_resources").arr()
	if c.a.kind == appComplex {
		e.elem().obj().kint("position", 1).kstr("dataset_id", DefaultDatasetID).kstr("dataset_name", "KB").
			kstr("document_id", "0b7c5d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e").kstr("document_name", "guide.txt").
			kstr("data_source_type", "upload_file").kstr("segment_id", "1c8d6e2f-3a4b-4c7d-9e0f-1a2b3c4d5e6f").
			kstr("retriever_from", "workflow").key("score").float(0.82).kint("hit_count", 3).kint("word_count", 120).
			kint("segment_position", 1).kstr("index_node_hash", "9f86d081884c7d659a2feaa0c55ad015").
			kstr("content", "Dify is an open-source platform for building LLM apps.").knull("page").knull("doc_metadata").
			kstr("title", "guide.txt").knull("files").close()
	}
	e.endArr().key("usage")
	c.usage(e)
	e.close()
}

// sendRunFailed writes, for the workflow_failed fault on an app without workflow events
// (agent, basic chat, completion), the `error` event that ends the failed run.
func (c *chat) sendRunFailed() {
	e := c.begin("error", pError)
	e.kstr("code", "invalid_param").kint("status", 400).kstr("message", "Run failed: [mock] injected failure")
	c.send()
}
