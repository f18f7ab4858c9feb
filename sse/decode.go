package sse

import (
	"bytes"
	"encoding/json"
	"math"
	"time"
)

// eventKind is the decoded Dify event type.
type eventKind uint8

const (
	kindUnknown eventKind = iota
	kindPing
	kindMessage
	kindAgentMessage
	kindAgentThought
	kindMessageFile
	kindMessageReplace
	kindMessageEnd
	kindWorkflowStarted
	kindWorkflowFinished
	kindNode // node_*, iteration_*, loop_*, agent_log
	kindTTS
	kindTextChunk
	kindError
	kindWorkflowPaused
	kindHumanInput
)

// kindOf maps an event name to its kind without allocating.
func kindOf(name []byte) eventKind {
	switch string(name) {
	case "message":
		return kindMessage
	case "agent_message":
		return kindAgentMessage
	case "agent_thought":
		return kindAgentThought
	case "message_file":
		return kindMessageFile
	case "message_replace":
		return kindMessageReplace
	case "message_end":
		return kindMessageEnd
	case "workflow_started":
		return kindWorkflowStarted
	case "workflow_finished":
		return kindWorkflowFinished
	case "node_started", "node_finished", "node_retry",
		"iteration_started", "iteration_next", "iteration_completed",
		"loop_started", "loop_next", "loop_completed", "agent_log":
		return kindNode
	case "tts_message", "tts_message_end":
		return kindTTS
	case "text_chunk":
		return kindTextChunk
	case "workflow_paused":
		return kindWorkflowPaused
	case "human_input_required":
		return kindHumanInput
	case "error":
		return kindError
	case "ping":
		return kindPing
	}
	return kindUnknown
}

// eventName returns the value of the top-level "event" string of a JSON object, which must
// already be valid JSON. The fast path reads Dify's layout, where "event" is the first key; the
// fallback walks the top-level keys. ok is false when there is no "event" string. The result
// aliases data unless the value contains escapes (then it is decoded, which allocates).
func eventName(data []byte) (name []byte, ok bool) {
	i := skipWS(data, 0)
	if i < len(data) && data[i] == '{' {
		i = skipWS(data, i+1)
		const key = `"event"`
		if bytes.HasPrefix(data[i:], []byte(key)) {
			j := skipWS(data, i+len(key))
			if j < len(data) && data[j] == ':' {
				j = skipWS(data, j+1)
				if j < len(data) && data[j] == '"' {
					if k := bytes.IndexByte(data[j+1:], '"'); k >= 0 {
						v := data[j+1 : j+1+k]
						if bytes.IndexByte(v, '\\') < 0 {
							return v, true
						}
					}
				}
			}
		}
	}
	raw, found := topLevelField(data, "event")
	if !found || len(raw) == 0 || raw[0] != '"' {
		return nil, false
	}
	return unquote(raw)
}

// unquote returns the contents of a raw JSON string, decoding escapes only when present.
func unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	v := raw[1 : len(raw)-1]
	if bytes.IndexByte(v, '\\') < 0 {
		return v, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// answerNonEmpty reports whether the top-level "answer" of a valid JSON object is a non-empty
// string. Any escape sequence denotes at least one character, so the raw token suffices.
func answerNonEmpty(data []byte) bool {
	raw, ok := topLevelField(data, "answer")
	return ok && len(raw) > 2 && raw[0] == '"'
}

// textNonEmpty reports whether a text_chunk event's data.text (valid JSON) is a non-empty
// string, without allocating.
func textNonEmpty(data []byte) bool {
	d, ok := topLevelField(data, "data")
	if !ok || len(d) == 0 || d[0] != '{' {
		return false
	}
	raw, ok := topLevelField(d, "text")
	return ok && len(raw) > 2 && raw[0] == '"'
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// topLevelField returns the raw value of key in the top-level JSON object data, which must be
// valid JSON (json.Valid). Keys are compared after decoding escapes only when a key contains
// one. It never allocates for escape-free keys.
func topLevelField(data []byte, key string) ([]byte, bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipWS(data, i)
		if i >= len(data) || data[i] != '"' {
			return nil, false // '}' or malformed
		}
		kEnd := skipString(data, i)
		if kEnd < 0 {
			return nil, false
		}
		k := data[i:kEnd]
		i = skipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = skipWS(data, i+1)
		vEnd := skipValue(data, i)
		if vEnd < 0 {
			return nil, false
		}
		if keyEquals(k, key) {
			return data[i:vEnd], true
		}
		i = skipWS(data, vEnd)
		if i >= len(data) || data[i] != ',' {
			return nil, false
		}
		i++
	}
}

func keyEquals(raw []byte, key string) bool {
	if len(raw) == len(key)+2 && string(raw[1:len(raw)-1]) == key {
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	v, ok := unquote(raw)
	return ok && string(v) == key
}

// skipString returns the index just past the JSON string starting at data[i] == '"'.
// The closing quote is the first '"' preceded by an even run of backslashes (\uXXXX hex
// digits never contain '"' or '\'). IndexByte, not IndexAny: IndexAny builds its byte set
// on every call, which cost more than the scan on Dify's many short strings.
func skipString(data []byte, i int) int {
	i++
	for {
		k := bytes.IndexByte(data[i:], '"')
		if k < 0 {
			return -1
		}
		j := i + k
		n := 0
		for p := j - 1; p >= i && data[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// skipValue returns the index just past the JSON value starting at data[i].
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// wireUsage is message_end.metadata.usage; only the timing-relevant fields.
type wireUsage struct {
	PromptTokens     float64  `json:"prompt_tokens"`
	CompletionTokens float64  `json:"completion_tokens"`
	TotalTokens      float64  `json:"total_tokens"`
	Latency          *float64 `json:"latency"`
	TimeToFirstToken *float64 `json:"time_to_first_token"`
}

type wireMessageEnd struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	TaskID         string `json:"task_id"`
	Metadata       *struct {
		Usage *wireUsage `json:"usage"`
	} `json:"metadata"`
}

type wireError struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	TaskID         string `json:"task_id"`
	Code           string `json:"code"`
	Status         int    `json:"status"`
	Message        string `json:"message"`
}

type wireWorkflowFinished struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	TaskID         string `json:"task_id"`
	WorkflowRunID  string `json:"workflow_run_id"`
	Data           struct {
		Status string `json:"status"`
		Error  any    `json:"error"`
	} `json:"data"`
}

// secondsToDuration converts Dify's float seconds to a Duration, rounding to nanoseconds.
func secondsToDuration(s float64) time.Duration {
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0
	}
	ns := math.Round(s * 1e9)
	if ns > math.MaxInt64 || ns < math.MinInt64 {
		return 0
	}
	return time.Duration(ns)
}

func (u *wireUsage) toUsage() Usage {
	out := Usage{
		Present:          true,
		PromptTokens:     tokens(u.PromptTokens),
		CompletionTokens: tokens(u.CompletionTokens),
		TotalTokens:      tokens(u.TotalTokens),
	}
	if u.Latency != nil {
		out.Latency, out.HasLatency = secondsToDuration(*u.Latency), true
	}
	if u.TimeToFirstToken != nil {
		out.TimeToFirstToken, out.HasTTFT = secondsToDuration(*u.TimeToFirstToken), true
	}
	return out
}

// tokens converts a JSON number of tokens (an integer in practice) to int64.
func tokens(f float64) int64 {
	if math.IsNaN(f) || f < 0 || f > 1<<53 {
		return 0
	}
	return int64(math.Round(f))
}
