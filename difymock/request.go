package difymock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// generateBody is the body of chat-messages, completion-messages and workflows/run.
type generateBody struct {
	Inputs         json.RawMessage `json:"inputs"`
	Query          json.RawMessage `json:"query"`
	ResponseMode   json.RawMessage `json:"response_mode"`
	User           json.RawMessage `json:"user"`
	ConversationID json.RawMessage `json:"conversation_id"`
	Files          json.RawMessage `json:"files"`
}

// serveChat answers the three generate endpoints: POST /v1/chat-messages (chatflows, agent,
// chat), /v1/completion-messages and /v1/workflows/run. Checks run in Dify's order: auth,
// body, user, app mode against the route, schema, the concurrency limit, injected HTTP
// faults, then the run's own setup (conversation, required inputs, query), which a 1.13
// relay does not report.
func (s *Server) serveChat(rq *req) {
	a := rq.appAuth()
	if a == nil {
		return
	}
	if !rq.requireJSON() {
		return
	}
	var body generateBody
	if !rq.readObject(8<<20, &body) {
		return
	}
	user, ok := rq.requireUser(body.User)
	if !ok {
		return
	}
	if a.endpoint != rq.rec.Endpoint {
		code := map[string]string{EndpointChat: "not_chat_app", EndpointCompletion: "not_completion_app", EndpointWorkflow: "not_workflow_app"}[rq.rec.Endpoint]
		rq.fail(http.StatusBadRequest, code, "Please check if your app mode matches the right API route.")
		return
	}
	if !rq.overrides(false) {
		return
	}
	c := &chat{req: rq, a: a, user: user}
	vh := "1 validation error for ChatRequestPayload\n"
	switch a.wire {
	case wireCompletion:
		vh = "1 validation error for CompletionRequestPayload\n"
	case wireWorkflow:
		vh = "1 validation error for WorkflowRunPayload\n"
	}
	switch {
	case a.wire == wireWorkflow:
		// A workflow app has no query.
	case body.Query == nil && a.wire == wireCompletion:
		// Optional for completion apps (a legacy field, default "").
	case body.Query == nil:
		rq.fail(http.StatusBadRequest, "invalid_param", vh+"query\n  Field required")
		return
	case json.Unmarshal(body.Query, &c.query) != nil || isNull(body.Query):
		rq.fail(http.StatusBadRequest, "invalid_param", vh+"query\n  Input should be a valid string")
		return
	}
	if body.Inputs == nil {
		rq.fail(http.StatusBadRequest, "invalid_param", vh+"inputs\n  Field required")
		return
	}
	var err error
	if c.inputs, err = orderedObject(body.Inputs); err != nil {
		rq.fail(http.StatusBadRequest, "invalid_param", vh+"inputs\n  Input should be a valid dictionary")
		return
	}
	if n, ok := countFiles(body.Files); !ok {
		rq.fail(http.StatusBadRequest, "invalid_param", vh+"files\n  Input should be a valid list")
		return
	} else {
		rq.rec.Files = n
	}
	blocking := true // omitted response_mode means blocking
	if body.ResponseMode != nil && !isNull(body.ResponseMode) {
		var mode string
		_ = json.Unmarshal(body.ResponseMode, &mode)
		switch mode {
		case "streaming":
			blocking = false
		case "blocking":
		default:
			rq.fail(http.StatusBadRequest, "invalid_param", vh+"response_mode\n  Input should be 'blocking' or 'streaming'")
			return
		}
	}
	if a.conversational() && body.ConversationID != nil && !isNull(body.ConversationID) {
		var cid string
		if json.Unmarshal(body.ConversationID, &cid) != nil || (cid != "" && !isUUID(cid)) {
			rq.fail(http.StatusBadRequest, "invalid_param", "conversation_id must be a valid UUID")
			return
		}
		c.conv = strings.ToLower(cid)
	}
	if blocking && a.agent {
		rq.fail(http.StatusBadRequest, "invalid_param", "Agent Chat App does not support blocking mode")
		return
	}
	if blocking {
		rq.rec.Mode = "blocking"
	} else {
		rq.rec.Mode = "streaming"
	}
	if lim := s.cfg.MaxActiveRequests; lim > 0 {
		n := s.active[a.kind].Add(1)
		defer s.active[a.kind].Add(-1)
		if n > int64(lim) {
			// Dify's RateLimit raises an error that subclasses ValueError, and the API's
			// error handlers turn a ValueError into 400 invalid_param before the handler
			// for the rate-limit error is reached (libs/external_api.py:79-93,
			// core/app/features/rate_limiting/rate_limit.py:81-86).
			rq.fail(http.StatusBadRequest, "invalid_param", "Too many requests. Please try again later. The current maximum concurrent requests allowed for "+a.id+" is "+strconv.Itoa(lim)+".")
			rq.out = oConcurrency
			return
		}
	}
	if rq.httpFault(a.id) {
		return
	}
	c.relay = !blocking && s.ver.relay && a.relayed()
	// The run's own setup: in 1.13 it happens inside the job and an error there is not
	// published, so a relayed stream gets nothing after its first ping
	// (core/app/apps/advanced_chat/app_generator.py:123-188); inline it is an HTTP error.
	if code, status, msg := c.setupError(); code != "" {
		if !c.relay {
			rq.fail(status, code, msg)
			return
		}
		c.setupErr = true
	}
	// Ids, in a fixed order (the golden tests depend on it).
	if a.conversational() && c.conv == "" {
		c.conv = rq.id()
		c.newConv = true
	}
	c.msg = rq.id()
	c.task = rq.id()
	if a.nodes || a.wire == wireWorkflow {
		c.run = rq.id()
	}
	c.endUser = endUserID(a.id, user)
	c.created = time.Unix(0, rq.rec.Received).Unix()
	if a.wire != wireWorkflow {
		rq.rec.MessageID = c.msg
	}
	if a.conversational() && !c.setupErr {
		if c.newConv {
			s.convs.issue(c.conv, a.kind, user)
			c.turn = 1
		} else {
			c.turn = s.convs.reuse(c.conv, a.kind, user)
		}
		rq.rec.ConversationID, rq.rec.Turn = c.conv, c.turn
	}
	if blocking {
		c.serveBlocking()
		return
	}
	c.serveStream()
}

// setupError is the first error of the run's own setup: an unknown conversation, a missing
// required input, an empty query. code is "" when there is none.
func (c *chat) setupError() (code string, status int, msg string) {
	if c.a.conversational() && c.conv != "" && !c.s.convs.known(c.conv, c.a.kind, c.user) {
		return "not_found", http.StatusNotFound, "Conversation Not Exists."
	}
	if v := c.a.required; v != "" {
		present := false
		for _, in := range c.inputs {
			if in.k == v && string(in.v) != `""` && string(in.v) != "null" {
				present = true
			}
		}
		if !present {
			return "invalid_param", http.StatusBadRequest, v + " is required in input form"
		}
	}
	if c.a.conversational() && strings.TrimSpace(c.query) == "" {
		return "invalid_param", http.StatusBadRequest, "Query is required"
	}
	return "", 0, ""
}

// countFiles validates `files` (absent, null, or a list of objects) and counts its entries.
func countFiles(raw json.RawMessage) (int, bool) {
	if raw == nil || isNull(raw) {
		return 0, true
	}
	var list []map[string]json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return 0, false
	}
	return len(list), true
}

// readObject reads a JSON object body of at most limit bytes into v. Anything else (not
// JSON, empty, not an object) is answered with Flask's 400 bad_request, and false.
func (rq *req) readObject(limit int64, v any) bool {
	raw, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, limit))
	if err == nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil || len(bytes.TrimSpace(raw)) == 0 || raw[firstNonSpace(raw)] != '{' {
		rq.fail(http.StatusBadRequest, "bad_request", "The browser (or proxy) sent a request that this server could not understand.")
		return false
	}
	return true
}

// requireUser checks Dify's "user" argument (a non-empty string) and records it; otherwise
// it answers 400 invalid_param and returns false.
func (rq *req) requireUser(raw json.RawMessage) (string, bool) {
	var user string
	if json.Unmarshal(raw, &user) != nil || user == "" {
		rq.fail(http.StatusBadRequest, "invalid_param", "Arg user must be provided.")
		return "", false
	}
	rq.rec.User = user
	return user, true
}

// kv is one user input, in request order, with its value compacted.
type kv struct {
	k string
	v []byte
}

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
