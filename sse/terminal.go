package sse

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Terminal events (message_end, workflow_finished) are decoded once per stream. encoding/json
// re-validates and walks the whole event (node outputs, usage prices, ...), which cost about a
// third of a stream's user-space CPU in the load benchmark (bench/). The functions below read
// just the needed keys from the already validated JSON in one pass over the top-level keys and
// report ok=false for anything outside the plain layout Dify sends — a key with an escape or
// of another letter case, a value of an unexpected type — so that the caller falls back to
// encoding/json and keeps its exact behaviour (errors included) for those. Like topLevelField
// they take the first occurrence of a duplicated key (encoding/json takes the last).

// objectFields stores in vals[i] the raw value of the top-level key keys[i] of the valid JSON
// object data (nil when absent). ok is false when data is not an object or a key holds an
// escape or matches a wanted key only case-insensitively.
func objectFields(data []byte, keys []string, vals [][]byte) bool {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for {
		i = skipWS(data, i)
		if i < len(data) && data[i] == '}' {
			return true
		}
		if i >= len(data) || data[i] != '"' {
			return false
		}
		kEnd := skipString(data, i)
		if kEnd < 0 {
			return false
		}
		k := data[i+1 : kEnd-1]
		if bytes.IndexByte(k, '\\') >= 0 {
			return false
		}
		i = skipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = skipWS(data, i+1)
		vEnd := skipValue(data, i)
		if vEnd < 0 {
			return false
		}
		for n, key := range keys {
			if string(k) == key {
				if vals[n] == nil {
					vals[n] = data[i:vEnd]
				}
			} else if len(k) == len(key) && bytes.EqualFold(k, []byte(key)) {
				return false
			}
		}
		i = skipWS(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i++
		}
	}
}

var null = []byte("null")

// rawString decodes an optional JSON string value: absent or null → "". ok is false for other
// types and for strings with escapes.
func rawString(raw []byte) (string, bool) {
	if raw == nil || bytes.Equal(raw, null) {
		return "", true
	}
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

// rawNumber decodes an optional JSON number: absent or null → (0, false, true).
func rawNumber(raw []byte) (v float64, present, ok bool) {
	if raw == nil || bytes.Equal(raw, null) {
		return 0, false, true
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false, false
	}
	return f, true, true
}

var (
	idKeys    = []string{"conversation_id", "message_id", "task_id"}
	meKeys    = []string{"conversation_id", "message_id", "task_id", "metadata"}
	usageKeys = []string{"prompt_tokens", "completion_tokens", "total_tokens", "latency", "time_to_first_token"}
	wfKeys    = []string{"conversation_id", "message_id", "task_id", "data", "workflow_run_id"}
	wfDataKey = []string{"status"}
)

func rawIDs(vals [][]byte) (conv, msg, task string, ok bool) {
	var ok1, ok2, ok3 bool
	conv, ok1 = rawString(vals[0])
	msg, ok2 = rawString(vals[1])
	task, ok3 = rawString(vals[2])
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
	if !objectFields(data, meKeys, vals[:]) {
		return false
	}
	var ok bool
	if me.ConversationID, me.MessageID, me.TaskID, ok = rawIDs(vals[:3]); !ok {
		return false
	}
	meta := vals[3]
	if meta == nil || bytes.Equal(meta, null) {
		return true
	}
	if meta[0] != '{' {
		return false
	}
	var mv [1][]byte
	if !objectFields(meta, []string{"usage"}, mv[:]) {
		return false
	}
	me.Metadata = &struct {
		Usage *wireUsage `json:"usage"`
	}{}
	u := mv[0]
	if u == nil || bytes.Equal(u, null) {
		return true
	}
	if u[0] != '{' {
		return false
	}
	var uv [5][]byte
	if !objectFields(u, usageKeys, uv[:]) {
		return false
	}
	w := &wireUsage{}
	var present bool
	if w.PromptTokens, _, ok = rawNumber(uv[0]); !ok {
		return false
	}
	if w.CompletionTokens, _, ok = rawNumber(uv[1]); !ok {
		return false
	}
	if w.TotalTokens, _, ok = rawNumber(uv[2]); !ok {
		return false
	}
	var lat, ttft float64
	if lat, present, ok = rawNumber(uv[3]); !ok {
		return false
	} else if present {
		w.Latency = &lat
	}
	if ttft, present, ok = rawNumber(uv[4]); !ok {
		return false
	} else if present {
		w.TimeToFirstToken = &ttft
	}
	me.Metadata.Usage = w
	return true
}

// decodeWorkflowFinished decodes a workflow_finished event like json.Unmarshal into
// wireWorkflowFinished. data.error is only needed for a failed workflow, which takes the
// encoding/json path.
func decodeWorkflowFinished(data []byte, wf *wireWorkflowFinished) error {
	if fastWorkflowFinished(data, wf) {
		return nil
	}
	*wf = wireWorkflowFinished{}
	return json.Unmarshal(data, wf)
}

func fastWorkflowFinished(data []byte, wf *wireWorkflowFinished) bool {
	var vals [5][]byte
	if !objectFields(data, wfKeys, vals[:]) {
		return false
	}
	var ok bool
	if wf.ConversationID, wf.MessageID, wf.TaskID, ok = rawIDs(vals[:3]); !ok {
		return false
	}
	if wf.WorkflowRunID, ok = rawString(vals[4]); !ok {
		return false
	}
	d := vals[3]
	if d == nil || bytes.Equal(d, null) {
		return true
	}
	if d[0] != '{' {
		return false
	}
	var dv [1][]byte
	if !objectFields(d, wfDataKey, dv[:]) {
		return false
	}
	if wf.Data.Status, ok = rawString(dv[0]); !ok {
		return false
	}
	return wf.Data.Status != "failed" // failed: the error value comes from encoding/json
}
