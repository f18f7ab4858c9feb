package difymock

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// kv is one user input, in request order, with its value compacted.
type kv struct {
	k string
	v []byte
}

// chat is the state of one /v1/chat-messages request.
type chat struct {
	*req
	a       *app
	query   string
	user    string
	inputs  []kv
	conv    string
	msg     string
	task    string
	run     string
	endUser string
	created int64 // unix seconds (injected clock)
	newConv bool
	turn    int64

	relay    bool      // a 1.13 relayed run: first ping, job queue, relay cuts
	setupErr bool      // a setup error the relay does not report (silence)
	start    time.Time // real time the run started (after the job queue)
	holding  bool      // the run holds a job worker

	flush    func() error
	timer    *time.Timer
	nextPing time.Time // real time of the next ping; zero = no pings
	next     time.Time // real time the next answer chunk is due
	sent     int       // answer chunks sent
	firstTok time.Time // clock time of the first/last answer chunk
	lastTok  time.Time
	broken   bool            // a write failed: the client is gone
	stopCh   <-chan struct{} // closed when a stop endpoint stops this task (nil: never)
	stopped  bool            // the task was stopped: end with the stop tail
	steps    int             // nodes started (a stopped run's total_steps)
	fired    bool            // the injected fault happened

	e   enc
	buf *[]byte
}

// faultAfter is how many answer chunks are sent before the mid-stream
// faults (error_event, workflow_failed, no_terminal, malformed_json) and
// which chunk the big-chunk faults replace.
func (c *chat) faultAfter() int { return min(3, c.set.tokens) }

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return i
		}
	}
	return 0
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// orderedObject splits a JSON object into its members in order, each value
// compacted.
func orderedObject(raw json.RawMessage) ([]kv, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var out []kv
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		var cb bytes.Buffer
		if err := json.Compact(&cb, v); err != nil {
			return nil, err
		}
		out = append(out, kv{k, cb.Bytes()})
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Writing frames.

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
	*c.buf = c.e.b[:0]
	c.s.bufs.put(c.buf)
	c.buf, c.e = nil, enc{}
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

// waitUntil sleeps until t (real time) or ctx end, sending `event: ping`
// frames when they fall due (if pings). It returns false if the request
// is over.
func (c *chat) waitUntil(t time.Time, pings bool) bool {
	ctx := c.r.Context()
	for {
		if c.broken || c.stopped || ctx.Err() != nil {
			return false
		}
		select {
		case <-c.stopCh:
			c.stopped = true
			return false
		default:
		}
		target, ping := t, false
		if pings && !c.nextPing.IsZero() && c.nextPing.Before(t) {
			target, ping = c.nextPing, true
		}
		if d := time.Until(target); d > 0 {
			if c.timer == nil {
				c.timer = time.NewTimer(d)
			} else {
				c.timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				c.timer.Stop()
				return false
			case <-c.stopCh:
				c.timer.Stop()
				c.stopped = true
				return false
			case <-c.timer.C:
			}
		}
		if !ping {
			return true
		}
		if !c.write([]byte("event: ping\n\n")) {
			return false
		}
		c.nextPing = c.nextPing.Add(c.set.ping)
	}
}

func (c *chat) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

// ---------------------------------------------------------------------------
// Streaming.

func (c *chat) serveStream() {
	defer c.stop()
	h := c.w.Header()
	h["Content-Type"] = []string{"text/event-stream; charset=utf-8"}
	if fe, ok := c.w.(interface{ FlushError() error }); ok {
		c.flush = fe.FlushError
	} else if f, ok := c.w.(http.Flusher); ok {
		c.flush = func() error { f.Flush(); return nil }
	} else {
		c.flush = func() error { return nil }
	}
	c.start = c.recv
	c.w.WriteHeader(http.StatusOK)
	if c.relay {
		// 1.13 relays the run from a job worker: one ping as soon as the subscription is
		// live, then nothing until a worker runs the job (services/app_generate_service.py
		// :146-228, core/app/apps/streaming_utils.py:13-70).
		if !c.write([]byte("event: ping\n\n")) {
			c.settle(false)
			return
		}
		if c.setupErr {
			c.holdSilent()
			return
		}
		if !c.queue() {
			c.settle(false)
			return
		}
		defer c.releaseJob()
	}
	if c.set.ping > 0 {
		// Pings come when the run time crosses a multiple of the interval
		// (core/app/apps/base_app_queue_manager.py:55-84): from the run's start.
		c.nextPing = c.start.Add(c.set.ping)
	}
	c.next = c.start.Add(c.jitter(c.set.ttft))
	// From here the task can be stopped (POST …/{task_id}/stop by the same user).
	c.stopCh = c.s.tasks.add(c.task, c.a.kind, c.user).ch
	defer c.s.tasks.remove(c.task)

	var done bool
	switch {
	case c.a.kind == appHuman:
		c.streamHumanInput()
		if c.stopped && !c.broken && c.r.Context().Err() == nil {
			c.stopTail()
		}
		return
	case c.a.wire == wireWorkflow:
		done = c.streamWorkflowApp()
	case c.a.nodes:
		done = c.streamWorkflow()
	default:
		done = c.streamMessages()
	}
	if c.stopped && !c.broken && c.r.Context().Err() == nil {
		c.stopTail()
		return
	}
	c.settle(done)
}

// runTime is a run's own duration: TTFT, then one token delay per further chunk.
func (c *chat) runTime() time.Duration {
	return c.set.ttft + time.Duration(max(c.set.tokens-1, 0))*c.set.tokenDelay
}

// queue waits (in silence) for a job worker. It returns false when the client left first;
// the job then still runs when its turn comes (an orphan job).
func (c *chat) queue() bool {
	from := time.Now()
	ok := c.s.jobs.acquire(c.r.Context(), c.runTime())
	c.rec.QueueWait = time.Since(from).Nanoseconds()
	if !ok {
		return false
	}
	c.holding = true
	c.start = time.Now()
	c.rec.RunStart = c.s.clock().UnixNano()
	return true
}

// releaseJob frees the job worker when the run is over; a run whose client left keeps its
// worker until its own end, as a Celery job does.
func (c *chat) releaseJob() {
	if !c.holding {
		return
	}
	c.holding = false
	if c.broken || c.r.Context().Err() != nil {
		c.s.jobs.holdFor(time.Until(c.start.Add(c.runTime())))
		return
	}
	c.s.jobs.release()
}

// silentHold bounds how long a relayed run that failed its setup keeps the body open.
const silentHold = 20 * time.Minute

// holdSilent keeps a relayed stream open with nothing more to say: the job failed its setup
// and published nothing.
func (c *chat) holdSilent() {
	c.waitUntil(time.Now().Add(silentHold), false)
	c.out = oSetupSilent
}

// settle turns how the stream went into the outcome.
func (c *chat) settle(completed bool) {
	switch {
	case c.fired && failureFault(c.fault):
		c.out = faultOutcome(c.fault)
	case !completed || c.broken || c.r.Context().Err() != nil:
		c.out = oClientGone
	case c.fault != fNone:
		c.out = faultOutcome(c.fault)
	default:
		c.out = oOK
	}
}

// failureFault: faults after which the client must fail (so the outcome is
// the fault even if the client then disconnects).
func failureFault(f faultID) bool {
	switch f {
	case fBigEvent, fTerminalSwap, fInvalidUTF8, fNone:
		return false
	}
	return true
}

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
	execIDs := make([]string, len(nodes))
	e := c.begin("workflow_started", pRun)
	e.key("data").obj().kstr("id", c.run).kstr("workflow_id", c.a.wfID).key("inputs")
	c.sysInputs(e)
	e.kint("created_at", c.created).close()
	if !c.send() {
		return false
	}
	// Nodes before the one that streams the answer.
	streamer := len(nodes) - 1 // simple: the answer node
	if c.a.kind == appComplex {
		streamer = 4 // the LLM node
	}
	for i := 0; i < streamer; i++ {
		execIDs[i] = c.id()
		if !c.nodeStarted(nodes, i, execIDs[i]) || !c.nodeFinished(nodes, i, execIDs[i], "succeeded") {
			return false
		}
	}
	execIDs[streamer] = c.id()
	streamStart := c.s.clock()
	if !c.nodeStarted(nodes, streamer, execIDs[streamer]) {
		return false
	}
	ok, stop := c.streamTokens()
	if !ok {
		return false
	}
	if stop {
		if c.fault == fWorkflowFailed {
			c.failRun(nodes, streamer, execIDs[streamer], streamStart)
		}
		return false
	}
	if c.a.kind == appComplex {
		c.llmFinished(nodes, streamer, execIDs[streamer], streamStart)
		execIDs[5] = c.id()
		if !c.nodeStarted(nodes, 5, execIDs[5]) || !c.nodeFinished(nodes, 5, execIDs[5], "succeeded") {
			return false
		}
	} else if !c.nodeFinished(nodes, streamer, execIDs[streamer], "succeeded") {
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

// streamWorkflowApp emits a workflow app's run (Start → LLM → End): text_chunk answer,
// terminal workflow_finished, no message events.
func (c *chat) streamWorkflowApp() bool {
	nodes := c.nodes()
	e := c.begin("workflow_started", pRun)
	e.key("data").obj().kstr("id", c.run).kstr("workflow_id", c.a.wfID).key("inputs")
	c.sysInputs(e)
	e.kint("created_at", c.created).close()
	if !c.send() {
		return false
	}
	start := c.id()
	if !c.nodeStarted(nodes, 0, start) || !c.nodeFinished(nodes, 0, start, "succeeded") {
		return false
	}
	llm := c.id()
	streamStart := c.s.clock()
	if !c.nodeStarted(nodes, 1, llm) {
		return false
	}
	ok, stop := c.streamTokens()
	if !ok {
		return false
	}
	if stop {
		if c.fault == fWorkflowFailed {
			c.failRun(nodes, 1, llm, streamStart)
		}
		return false
	}
	if !c.llmFinished(nodes, 1, llm, streamStart) {
		return false
	}
	end := c.id()
	if !c.nodeStarted(nodes, 2, end) || !c.nodeFinished(nodes, 2, end, "succeeded") {
		return false
	}
	if c.fault == fTerminalSwap {
		c.fired = true // a workflow app has one terminal event: nothing to swap
	}
	return c.workflowFinished("succeeded", len(nodes))
}

// streamHumanInput emits a chatflow that reaches a human-input node: Start, then
// human_input_required and workflow_paused, where the stream ends (the relay stops at
// workflow_paused, core/app/apps/streaming_utils.py:53-63). The two events' data is
// illustrative; clients read only their names.
func (c *chat) streamHumanInput() {
	nodes := c.nodes()
	c.out = oClientGone
	e := c.begin("workflow_started", pRun)
	e.key("data").obj().kstr("id", c.run).kstr("workflow_id", c.a.wfID).key("inputs")
	c.sysInputs(e)
	e.kint("created_at", c.created).close()
	if !c.send() {
		return
	}
	start := c.id()
	if !c.nodeStarted(nodes, 0, start) || !c.nodeFinished(nodes, 0, start, "succeeded") {
		return
	}
	human := c.id()
	if !c.nodeStarted(nodes, 1, human) {
		return
	}
	if !c.waitUntil(c.next, true) {
		return
	}
	e = c.begin("human_input_required", pRun)
	e.key("data").obj().kstr("node_id", "human").kstr("node_title", "Approval").kstr("form_content", "Approve the request?").
		key("actions").arr().elem().obj().kstr("id", "approve").kstr("title", "Approve").close().endArr().close()
	if !c.send() {
		return
	}
	e = c.begin("workflow_paused", pRun)
	e.key("data").obj().kstr("workflow_run_id", c.run).key("paused_nodes").arr().elem().str("human").endArr().
		key("outputs").emptyObj().kstr("status", "paused").key("elapsed_time").float(secs(c.s.clock().Sub(time.Unix(0, c.rec.Received)))).
		kint("total_tokens", 0).kint("total_steps", 2).kint("created_at", c.created).close()
	if c.send() {
		c.rec.Terminal = c.s.clock().UnixNano()
		c.out = oPaused
	}
}

// streamMessages emits a run without workflow events: the agent-chat run (docs/dify-wire.md, "Agent app"), or a basic
// chat or completion app's message chunks and message_end.
func (c *chat) streamMessages() bool {
	if !c.a.agent {
		ok, stop := c.streamTokens()
		if !ok {
			return false
		}
		if stop {
			c.sendRunFailed()
			return false
		}
		if c.fault == fTerminalSwap {
			c.fired = true // one terminal event: nothing to swap
		}
		return c.messageEnd()
	}
	th1 := c.id()
	if !c.agentThought(th1, 1, "", "", "current_time", `{"current_time": {}}`) {
		return false
	}
	if !c.agentThought(th1, 1, "", `{"current_time": "2026-01-07 07:06:40"}`, "current_time", `{"current_time": {}}`) {
		return false
	}
	ok, stop := c.streamTokens()
	if !ok {
		return false
	}
	if stop {
		c.sendRunFailed()
		return false
	}
	th2 := c.id()
	if c.fault == fTerminalSwap {
		c.fired = true
	}
	e := c.begin("agent_thought", pChat)
	e.kstr("id", th2).kint("position", 2).key("thought")
	c.answerString(e)
	e.kstr("observation", "").kstr("tool", "").key("tool_labels").emptyObj().kstr("tool_input", "").key("message_files").emptyArr()
	return c.send() && c.messageEnd()
}

func (c *chat) agentThought(id string, pos int64, thought, observation, tool, toolInput string) bool {
	e := c.begin("agent_thought", pChat)
	e.kstr("id", id).kint("position", pos).kstr("thought", thought).kstr("observation", observation).kstr("tool", tool).
		key("tool_labels").obj().key("current_time").obj().kstr("en_US", "Current Time").kstr("zh_Hans", "获取当前时间").close().close().
		kstr("tool_input", toolInput).key("message_files").emptyArr()
	return c.send()
}

// tokenText is answer chunk i.
func (c *chat) tokenText(i int) string {
	if c.a.kind == appSimple || c.a.kind == appRequired {
		switch i {
		case 0:
			return "You said: "
		case 1:
			return c.query
		}
	}
	if i == 0 {
		return "Mock"
	}
	switch (i - 1) % 7 {
	case 0:
		return " answer"
	case 1:
		return " token"
	case 2:
		return " from"
	case 3:
		return " the"
	case 4:
		return " difymock"
	case 5:
		return " server"
	}
	return "."
}

// answerString writes the full answer (the first c.sent chunks; big-chunk
// filler and invalid bytes are left out) as one JSON string.
func (c *chat) answerString(e *enc) {
	e.b = append(e.b, '"')
	for i := range c.sent {
		e.b = appendEscaped(e.b, c.tokenText(i), e.dumps)
	}
	e.b = append(e.b, '"')
}

func (c *chat) selector(e *enc, i int) {
	switch {
	case (c.a.kind == appSimple || c.a.kind == appRequired) && i == 1:
		e.key("from_variable_selector").arr().elem().str("sys").elem().str("query").endArr()
	case c.a.kind == appComplex:
		e.key("from_variable_selector").arr().elem().str("llm").elem().str("text").endArr()
	default:
		e.knull("from_variable_selector")
	}
}

// streamTokens sends the answer chunks on schedule and injects the
// mid-stream faults. ok=false: the request is over (client gone, reset,
// or a fault that ends the stream by itself). stop=true: the caller must
// end the stream after its fault-specific tail (error_event and
// no_terminal need no tail; workflow_failed has one).
func (c *chat) streamTokens() (ok, stop bool) {
	n := c.set.tokens
	at := c.faultAfter()
	bigAt := min(at, n-1)
	for i := 0; i < n; i++ {
		if i == at {
			switch c.fault {
			case fErrorEvent:
				c.fired = true
				c.sendErrorEvent()
				return false, false
			case fWorkflowFailed:
				c.fired = true
				return true, true
			case fNoTerminal:
				c.fired = true
				return false, false
			case fMalformedJSON:
				c.fired = true
				e := c.chunkOpen()
				e.b = append(e.b, `"broken`...)
				c.write(append(e.b, "\n\n"...)) // no closing quote or brace: invalid JSON
				*c.buf = e.b[:0]
				c.s.bufs.put(c.buf)
				c.buf, c.e = nil, enc{}
				return false, false
			}
		}
		if i > 0 {
			c.next = c.next.Add(c.jitter(c.set.tokenDelay))
		}
		if !c.waitUntil(c.next, true) {
			return false, false
		}
		var sent bool
		switch {
		case i == bigAt && (c.fault == fBigEvent || c.fault == fOversized || c.fault == fHugeEvent):
			c.fired = true
			size := 1 << 20 // big_event: 1 MiB, under the client's 8 MiB limit
			switch c.fault {
			case fOversized:
				size = 9 << 20
			case fHugeEvent:
				size = 16 << 20
			}
			sent = c.bigChunk(i, size)
		case i == bigAt && c.fault == fInvalidUTF8:
			c.fired = true
			e := c.chunkOpen()
			e.b = append(e.b, "\"bad \xff\xfe bytes\""...)
			c.chunkClose(e, i)
			sent = c.send()
		default:
			e := c.chunkOpen()
			e.str(c.tokenText(i))
			c.chunkClose(e, i)
			sent = c.send()
		}
		if !sent {
			return false, false
		}
		c.sent++
		now := c.s.clock()
		if i == 0 {
			c.firstTok = now
			c.rec.FirstToken = now.UnixNano()
		}
		c.lastTok = now
		c.rec.Tokens = c.sent
		if i == 0 {
			if ok := c.afterFirstToken(); !ok {
				return false, false
			}
		}
	}
	if c.fault == fErrorEvent || c.fault == fNoTerminal || c.fault == fMalformedJSON || c.fault == fWorkflowFailed {
		// Fewer chunks than faultAfter cannot happen (at <= n), but keep
		// the fault honest when at == n.
		switch c.fault {
		case fWorkflowFailed:
			c.fired = true
			return true, true
		case fNoTerminal:
			c.fired = true
			return false, false
		case fErrorEvent:
			c.fired = true
			c.sendErrorEvent()
			return false, false
		case fMalformedJSON:
			c.fired = true
			c.write([]byte(`data: {"event":"message","answer":"broken` + "\n\n"))
			return false, false
		}
	}
	return true, false
}

func (c *chat) answerEvent() string {
	if c.a.agent {
		return "agent_message"
	}
	return "message"
}

// afterFirstToken injects the faults that hit right after the first chunk.
func (c *chat) afterFirstToken() bool {
	switch c.fault {
	case fStall:
		c.fired = true
		// No bytes at all, not even pings, then carry on normally.
		if !c.waitUntil(time.Now().Add(c.set.stall), false) {
			return false
		}
		// Keep the remaining schedule relative to the resume.
		c.next = time.Now()
		if c.set.ping > 0 {
			c.nextPing = c.next.Add(c.set.ping)
		}
	case fReset:
		c.fired = true
		c.resetConn()
		return false
	case fResetMidEvent:
		c.fired = true
		frame := []byte(`data: {"event":"` + c.answerEvent() + `","conversation_id":"` + c.conv + `","message_id":"` + c.msg + `","created_at":` + strconv.FormatInt(c.created, 10) + `,"task_id":"` + c.task + `","id":"` + c.msg + `","answer":"cut here"}` + "\n\n")
		c.write(frame[:len(frame)/2])
		c.resetConn()
		return false
	case fPartialLine:
		c.fired = true
		if c.write([]byte(`data: {"event":"message"`)) {
			c.waitUntil(time.Now().Add(c.set.stall), false)
		}
		return false
	}
	return true
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so the
// peer gets a TCP RST.
func (c *chat) resetConn() { resetConn(c.w) }

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

// bigChunk sends answer chunk i with an answer of size filler bytes,
// streamed in pieces so that no big buffer is held.
func (c *chat) bigChunk(i, size int) bool {
	e := c.chunkOpen()
	e.b = append(e.b, '"')
	if _, err := c.w.Write(e.b); err != nil {
		c.broken = true
	}
	// Reuse the frame buffer as a block of filler.
	blk := e.b[:0]
	for range 16 << 10 {
		blk = append(blk, 'x')
	}
	for left := size; left > 0 && !c.broken; {
		n := min(left, len(blk))
		if _, err := c.w.Write(blk[:n]); err != nil {
			c.broken = true
		}
		left -= n
	}
	e.b = append(blk[:0], '"')
	c.chunkClose(e, i)
	return c.send()
}

// ---------------------------------------------------------------------------
// Event bodies.

func (c *chat) sysInputs(e *enc) {
	if c.a.wire == wireWorkflow {
		e.obj().key("sys.files").emptyArr().kstr("sys.user_id", c.endUser).kstr("sys.app_id", c.a.id).
			kstr("sys.workflow_id", c.a.wfID).kstr("sys.workflow_run_id", c.run)
		for _, in := range c.inputs {
			e.ukey(in.k).raw(in.v)
		}
		e.close()
		return
	}
	e.obj().kstr("sys.query", c.query).key("sys.files").emptyArr().kstr("sys.conversation_id", c.conv).
		kstr("sys.user_id", c.endUser).kint("sys.dialogue_count", max(c.turn, 1)).kstr("sys.app_id", c.a.id).
		kstr("sys.workflow_id", c.a.wfID).kstr("sys.workflow_run_id", c.run)
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
	e.kint("created_at", now).kint("finished_at", now).key("files").emptyArr().knull("iteration_id").knull("loop_id").close()
	return c.send()
}

func (c *chat) nodeFinishedFailed(nodes []node, i int, execID string, started time.Time) bool {
	e := c.finishedHead(nodes, i, execID)
	e.key("inputs").emptyObj().kbool("inputs_truncated", false).knull("process_data").kbool("process_data_truncated", false).
		knull("outputs").kbool("outputs_truncated", false).kstr("status", "failed").kstr("error", "[mock] injected failure").
		key("elapsed_time").float(secs(c.s.clock().Sub(started))).knull("execution_metadata")
	now := c.s.clock().Unix()
	e.kint("created_at", started.Unix()).kint("finished_at", now).key("files").emptyArr().knull("iteration_id").knull("loop_id").close()
	return c.send()
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
	now := c.s.clock().Unix()
	e.kint("created_at", started.Unix()).kint("finished_at", now).key("files").emptyArr().knull("iteration_id").knull("loop_id").close()
	return c.send()
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
	ok := c.send()
	if ok {
		c.rec.Terminal = c.s.clock().UnixNano()
	}
	return ok
}

func (c *chat) messageEnd() bool {
	e := c.begin("message_end", pChat)
	e.kstr("id", c.msg).key("metadata")
	c.metadata(e)
	e.key("files").emptyArr()
	ok := c.send()
	if ok {
		c.rec.Terminal = c.s.clock().UnixNano()
	}
	return ok
}

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

func (c *chat) promptTokens() int64 { return 10 + int64(len(c.query)/4) }

// usage writes the usage object: completion_tokens is the number of answer
// chunks sent; prices are decimal strings; latency, time_to_first_token and
// time_to_generate are float seconds (null when no token was sent).
func (c *chat) usage(e *enc) {
	pt, ct := c.promptTokens(), int64(c.sent)
	now := c.s.clock()
	e.obj().kint("prompt_tokens", pt).kstr("prompt_unit_price", "0.15").kstr("prompt_price_unit", "0.000001").
		kstr("prompt_price", price(pt*15)).kint("completion_tokens", ct).kstr("completion_unit_price", "0.6").
		kstr("completion_price_unit", "0.000001").kstr("completion_price", price(ct*60)).kint("total_tokens", pt+ct).
		kstr("total_price", price(pt*15+ct*60)).kstr("currency", "USD").
		key("latency").float(secs(now.Sub(time.Unix(0, c.rec.Received))))
	if c.firstTok.IsZero() {
		e.knull("time_to_first_token").knull("time_to_generate")
	} else {
		e.key("time_to_first_token").float(secs(c.firstTok.Sub(time.Unix(0, c.rec.Received)))).
			key("time_to_generate").float(secs(c.lastTok.Sub(c.firstTok)))
	}
	e.close()
}

// price formats an amount in units of 1e-8 USD as Dify does (Decimal
// quantized to 7 places, half up).
func price(units int64) string {
	if units == 0 {
		return "0"
	}
	q := (units + 5) / 10
	frac := strconv.FormatInt(q%10_000_000, 10)
	for len(frac) < 7 {
		frac = "0" + frac
	}
	return strconv.FormatInt(q/10_000_000, 10) + "." + frac
}

// secs is d in seconds, rounded to microseconds.
func secs(d time.Duration) float64 {
	return float64(d.Round(time.Microsecond)) / 1e9
}

// ---------------------------------------------------------------------------
// Blocking.

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
	case fErrorEvent:
		c.fired = true
		c.fail(http.StatusBadRequest, "completion_request_error", "[mock] Rate Limit Error: injected error_event")
		c.out = faultOutcome(c.fault)
		return
	case fWorkflowFailed:
		c.fired = true
		c.fail(http.StatusBadRequest, "invalid_param", "Run failed: [mock] injected failure")
		c.out = faultOutcome(c.fault)
		return
	case fReset:
		c.fired = true
		resetConn(c.w)
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
	h := c.w.Header()
	h["Content-Type"] = []string{"application/json; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(e.b))}
	c.w.WriteHeader(http.StatusOK)
	if _, err := c.w.Write(e.b); err != nil {
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

// sendRunFailed writes, for the workflow_failed fault on an app without workflow events
// (agent, basic chat, completion), the `error` event that ends the failed run.
func (c *chat) sendRunFailed() {
	if c.fault != fWorkflowFailed {
		return
	}
	e := c.begin("error", pError)
	e.kstr("code", "invalid_param").kint("status", 400).kstr("message", "Run failed: [mock] injected failure")
	c.send()
}

// sendErrorEvent writes the error_event fault's `error` event: an LLM failure
// mid-stream, as Dify reports an InvokeError (completion_request_error, 400).
func (c *chat) sendErrorEvent() {
	e := c.begin("error", pError)
	e.kstr("code", "completion_request_error").kint("status", 400).kstr("message", "[mock] Rate Limit Error: injected error_event")
	c.send()
}
