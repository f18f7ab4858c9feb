package sse

import (
	"bytes"
	"math"
	"time"

	"github.com/difyload/difyload/sse/internal/jsonscan"
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
	i := jsonscan.SkipWS(data, 0)
	if i < len(data) && data[i] == '{' {
		i = jsonscan.SkipWS(data, i+1)
		const key = `"event"`
		if bytes.HasPrefix(data[i:], []byte(key)) {
			j := jsonscan.SkipWS(data, i+len(key))
			if j < len(data) && data[j] == ':' {
				j = jsonscan.SkipWS(data, j+1)
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
	raw, found := jsonscan.Field(data, "event")
	if !found || len(raw) == 0 || raw[0] != '"' {
		return nil, false
	}
	return jsonscan.Unquote(raw)
}

// answerNonEmpty reports whether the top-level "answer" of a valid JSON object is a non-empty
// string. Any escape sequence denotes at least one character, so the raw token suffices.
func answerNonEmpty(data []byte) bool {
	raw, ok := jsonscan.Field(data, "answer")
	return ok && len(raw) > 2 && raw[0] == '"'
}

// textNonEmpty reports whether a text_chunk event's data.text (valid JSON) is a non-empty
// string, without allocating.
func textNonEmpty(data []byte) bool {
	d, ok := jsonscan.Field(data, "data")
	if !ok || len(d) == 0 || d[0] != '{' {
		return false
	}
	raw, ok := jsonscan.Field(d, "text")
	return ok && len(raw) > 2 && raw[0] == '"'
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
