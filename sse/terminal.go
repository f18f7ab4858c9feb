package sse

import (
	"encoding/json"

	"github.com/difyload/difyload/sse/internal/jsonscan"
)

// Terminal events (message_end, workflow_finished) are decoded once per stream. encoding/json
// re-validates and walks the whole event (node outputs, usage prices, ...), which cost about a
// third of a stream's user-space CPU in the load benchmark (bench/). The functions below read
// just the needed keys from the already validated JSON in one pass over the top-level keys and
// report ok=false for anything outside the plain layout Dify sends — a key with an escape or
// of another letter case, a value of an unexpected type — so that the caller falls back to
// encoding/json and keeps its exact behaviour (errors included) for those. Like jsonscan.Field
// they take the first occurrence of a duplicated key (encoding/json takes the last).

// The keys each decoder reads are literals at the call: they stay on the stack (jsonscan.Fields
// does not keep them), so there is no table to share.

func rawIDs(vals [][]byte) (conv, msg, task string, ok bool) {
	var ok1, ok2, ok3 bool
	conv, ok1 = jsonscan.String(vals[0])
	msg, ok2 = jsonscan.String(vals[1])
	task, ok3 = jsonscan.String(vals[2])
	return conv, msg, task, ok1 && ok2 && ok3
}

// decodeMessageEnd decodes a message_end event like json.Unmarshal into wireMessageEnd.
func decodeMessageEnd(data []byte, me *wireMessageEnd) error {
	if fastMessageEnd(data, me) {
		return nil
	}
	*me = wireMessageEnd{}
	return json.Unmarshal(data, me)
}

func fastMessageEnd(data []byte, me *wireMessageEnd) bool {
	var vals [4][]byte
	if !jsonscan.Fields(data, []string{"conversation_id", "message_id", "task_id", "metadata"}, vals[:]) {
		return false
	}
	var ok bool
	if me.ConversationID, me.MessageID, me.TaskID, ok = rawIDs(vals[:3]); !ok {
		return false
	}
	meta := vals[3]
	if meta == nil || jsonscan.IsNull(meta) {
		return true
	}
	if meta[0] != '{' {
		return false
	}
	var mv [1][]byte
	if !jsonscan.Fields(meta, []string{"usage"}, mv[:]) {
		return false
	}
	me.Metadata = &struct {
		Usage *wireUsage `json:"usage"`
	}{}
	u := mv[0]
	if u == nil || jsonscan.IsNull(u) {
		return true
	}
	if u[0] != '{' {
		return false
	}
	var uv [5][]byte
	if !jsonscan.Fields(u, []string{"prompt_tokens", "completion_tokens", "total_tokens", "latency", "time_to_first_token"}, uv[:]) {
		return false
	}
	w := &wireUsage{}
	var present bool
	if w.PromptTokens, _, ok = jsonscan.Number(uv[0]); !ok {
		return false
	}
	if w.CompletionTokens, _, ok = jsonscan.Number(uv[1]); !ok {
		return false
	}
	if w.TotalTokens, _, ok = jsonscan.Number(uv[2]); !ok {
		return false
	}
	var lat, ttft float64
	if lat, present, ok = jsonscan.Number(uv[3]); !ok {
		return false
	} else if present {
		w.Latency = &lat
	}
	if ttft, present, ok = jsonscan.Number(uv[4]); !ok {
		return false
	} else if present {
		w.TimeToFirstToken = &ttft
	}
	me.Metadata.Usage = w
	return true
}

// decodeWorkflowFinished decodes a workflow_finished event like json.Unmarshal into
// wireWorkflowFinished. data.error is only set on a failed or stopped workflow (a stopped
// run carries its stop reason, "Stopped by user."), which takes the encoding/json path.
func decodeWorkflowFinished(data []byte, wf *wireWorkflowFinished) error {
	if fastWorkflowFinished(data, wf) {
		return nil
	}
	*wf = wireWorkflowFinished{}
	return json.Unmarshal(data, wf)
}

func fastWorkflowFinished(data []byte, wf *wireWorkflowFinished) bool {
	var vals [5][]byte
	if !jsonscan.Fields(data, []string{"conversation_id", "message_id", "task_id", "data", "workflow_run_id"}, vals[:]) {
		return false
	}
	var ok bool
	if wf.ConversationID, wf.MessageID, wf.TaskID, ok = rawIDs(vals[:3]); !ok {
		return false
	}
	if wf.WorkflowRunID, ok = jsonscan.String(vals[4]); !ok {
		return false
	}
	d := vals[3]
	if d == nil || jsonscan.IsNull(d) {
		return true
	}
	if d[0] != '{' {
		return false
	}
	var dv [1][]byte
	if !jsonscan.Fields(d, []string{"status"}, dv[:]) {
		return false
	}
	if wf.Data.Status, ok = jsonscan.String(dv[0]); !ok {
		return false
	}
	// failed, stopped: the error value comes from encoding/json
	return wf.Data.Status != "failed" && wf.Data.Status != "stopped"
}
