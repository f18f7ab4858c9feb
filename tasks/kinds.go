package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/workload"
)

// Endpoints and their POST row names. Go and Python workers report identical rows.
const (
	NameCompletion = "/v1/completion-messages"
	NameWorkflow   = "/v1/workflows/run"
)

// endpointOf is the POST row of an app type.
func endpointOf(m sse.Mode) string {
	switch m {
	case sse.ModeCompletion:
		return NameCompletion
	case sse.ModeWorkflow:
		return NameWorkflow
	}
	return NameChat
}

// postName is the POST row: with split rows, an endpoint that several apps of the workload
// share gets the app's name too ("/v1/chat-messages helpdesk").
func postName(endpoint, app string, shared, split bool) string {
	if split && shared {
		return endpoint + " " + app
	}
	return endpoint
}

func newAppAction(a *workload.App, client Streamer, shared bool) (action, error) {
	switch a.Type {
	case sse.ModeChat, sse.ModeAgent, sse.ModeChatflow:
		return &chatAction{app: a, client: client, shared: shared}, nil
	case sse.ModeCompletion, sse.ModeWorkflow:
		return &runAction{app: a, client: client, shared: shared}, nil
	}
	return nil, fmt.Errorf("tasks: app %s: this worker cannot run app type %q", a.Name, a.Type)
}

func keyCheck(u *User, name string, s workload.Secret) error {
	if u.secret(s) != "" {
		return nil
	}
	src := "its key"
	switch {
	case s.Env != "":
		src = "environment variable " + s.Env
	case s.Option != "":
		src = "option " + s.Option
	}
	return fmt.Errorf("%s: no key: %s is empty", name, src)
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func drawInt(u *User, r workload.IntRange) int {
	if r.Max <= r.Min {
		return max(r.Min, 1)
	}
	return r.Min + u.rng.IntN(r.Max-r.Min+1)
}

func drawDuration(u *User, r workload.DurationRange) time.Duration {
	if r.Max <= r.Min {
		return r.Min
	}
	return r.Min + time.Duration(u.rng.Int64N(int64(r.Max-r.Min)+1))
}

// observe hands a finished stream to the observer, with its turn when the app holds
// conversations of more than one turn.
func (u *User) observe(flow string, turn int, res *sse.Result, err error) {
	obs := u.class.deps.Observer
	if obs == nil || sse.IsCancelled(err) {
		return
	}
	if to, ok := obs.(TurnObserver); ok && turn > 0 {
		to.ObserveTurn(flow, turn, res, err)
		return
	}
	obs.ObserveStream(flow, res, err)
}

// chatAction drives a chat, agent or chatflow app on /v1/chat-messages: one task is one
// conversation of Turns turns that reuses the conversation_id Dify returned on the first
// turn, with ThinkTime between turns. A failed turn ends the conversation.
type chatAction struct {
	app    *workload.App
	client Streamer
	shared bool // another app of the workload uses the endpoint too
}

type chatBody struct {
	Inputs           map[string]any `json:"inputs"`
	Query            string         `json:"query"`
	ResponseMode     string         `json:"response_mode"`
	User             string         `json:"user"`
	ConversationID   string         `json:"conversation_id"`
	AutoGenerateName bool           `json:"auto_generate_name"`
	Files            []any          `json:"files,omitempty"`
}

func (a *chatAction) target() string      { return a.app.Name }
func (a *chatAction) check(u *User) error { return keyCheck(u, a.app.Name, a.app.Key) }

// turnOf is the turn reported to the observer: 0 for single-turn apps.
func (a *chatAction) turnOf(turn int) int {
	if a.app.Turns.Max > 1 {
		return turn
	}
	return 0
}

func (a *chatAction) think(u *User) time.Duration { return drawDuration(u, a.app.ThinkTime) }

func (a *chatAction) run(ctx context.Context, u *User, st *pickState) error {
	turns := drawInt(u, a.app.Turns)
	cid := ""
	for turn := 1; turn <= turns; turn++ {
		if turn > 1 && !sleepCtx(ctx, a.think(u)) {
			return nil
		}
		q, row, _, err := st.query(u, &a.app.Queries)
		if err != nil {
			return err
		}
		body, err := json.Marshal(&chatBody{Inputs: mergeInputs(a.app.Inputs, row), Query: q, ResponseMode: "streaming",
			User: u.user, ConversationID: cid, AutoGenerateName: false, Files: a.app.Files})
		if err != nil {
			return fmt.Errorf("encode chat request: %w", err)
		}
		res, err := a.client.Stream(ctx, sse.Request{URL: u.base + NameChat, APIKey: u.secret(a.app.Key), Body: body, Header: u.class.deps.Header, Mode: a.app.Type})
		recordStream(u.class.deps.Recorder, postName(NameChat, a.app.Name, a.shared, u.split), a.app.Name, u.split, res, err)
		u.observe(a.app.Name, a.turnOf(turn), res, err)
		if err != nil || res == nil || res.ConversationID == "" {
			return unexpected(err)
		}
		cid = res.ConversationID
	}
	return nil
}

// runAction drives an app whose task is one streamed run without a conversation: a
// completion (text generator) app on /v1/completion-messages, or a workflow app on
// /v1/workflows/run (its answer is the text_chunk events, its end workflow_finished).
type runAction struct {
	app    *workload.App
	client Streamer
	shared bool
}

type completionBody struct {
	Inputs       map[string]any `json:"inputs"`
	Query        string         `json:"query"`
	ResponseMode string         `json:"response_mode"`
	User         string         `json:"user"`
	Files        []any          `json:"files,omitempty"`
}

// workflowBody has no query: a workflow app gets the workload's query as an input.
type workflowBody struct {
	Inputs       map[string]any `json:"inputs"`
	ResponseMode string         `json:"response_mode"`
	User         string         `json:"user"`
	Files        []any          `json:"files,omitempty"`
}

func (a *runAction) target() string      { return a.app.Name }
func (a *runAction) check(u *User) error { return keyCheck(u, a.app.Name, a.app.Key) }

func (a *runAction) run(ctx context.Context, u *User, st *pickState) error {
	q, row, hasQuery, err := st.query(u, &a.app.Queries)
	if err != nil {
		return err
	}
	inputs := mergeInputs(a.app.Inputs, row)
	var body any
	if a.app.Type == sse.ModeWorkflow {
		if hasQuery {
			inputs = withQueryInput(inputs, a.app.QueryInput, q)
		}
		body = &workflowBody{Inputs: inputs, ResponseMode: "streaming", User: u.user, Files: a.app.Files}
	} else {
		inputs = withQueryInput(inputs, a.app.QueryInput, q)
		body = &completionBody{Inputs: inputs, Query: q, ResponseMode: "streaming", User: u.user, Files: a.app.Files}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", a.app.Type, err)
	}
	endpoint := endpointOf(a.app.Type)
	res, err := a.client.Stream(ctx, sse.Request{URL: u.base + endpoint, APIKey: u.secret(a.app.Key), Body: b, Header: u.class.deps.Header, Mode: a.app.Type})
	recordStream(u.class.deps.Recorder, postName(endpoint, a.app.Name, a.shared, u.split), a.app.Name, u.split, res, err)
	u.observe(a.app.Name, 0, res, err)
	return unexpected(err)
}

// withQueryInput puts the query into the input variable name (a copy; inputs unchanged).
func withQueryInput(inputs map[string]any, name, q string) map[string]any {
	if name == "" {
		return inputs
	}
	out := make(map[string]any, len(inputs)+1)
	for k, v := range inputs {
		out[k] = v
	}
	out[name] = q
	return out
}

// retrieveAction queries a knowledge base.
type retrieveAction struct {
	kb     *workload.KnowledgeBase
	client Streamer
	shared bool
}

func newRetrieveAction(kb *workload.KnowledgeBase, client Streamer, shared bool) *retrieveAction {
	return &retrieveAction{kb: kb, client: client, shared: shared}
}

type retrieveBody struct {
	Query          string         `json:"query"`
	RetrievalModel map[string]any `json:"retrieval_model,omitempty"`
}

func (a *retrieveAction) target() string { return a.kb.Name }

func (a *retrieveAction) check(u *User) error {
	if err := keyCheck(u, a.kb.Name, a.kb.Key); err != nil {
		return err
	}
	if u.secret(a.kb.DatasetID) == "" {
		return fmt.Errorf("%s: no knowledge base id", a.kb.Name)
	}
	return nil
}

func (a *retrieveAction) run(ctx context.Context, u *User, st *pickState) error {
	q, _, _, err := st.query(u, &a.kb.Queries)
	if err != nil {
		return err
	}
	body, err := json.Marshal(retrieveBody{Query: q, RetrievalModel: a.kb.RetrievalModel})
	if err != nil {
		return fmt.Errorf("encode retrieve request: %w", err)
	}
	resp, err := a.client.Post(ctx, sse.Request{
		URL:    u.base + "/v1/datasets/" + u.secret(a.kb.DatasetID) + "/retrieve",
		APIKey: u.secret(a.kb.Key),
		Body:   body,
		Header: u.class.deps.Header,
	})
	recordRetrieve(u.class.deps.Recorder, postName(NameRetrieve, a.kb.Name, a.shared, u.split), resp, err)
	return unexpected(err)
}
