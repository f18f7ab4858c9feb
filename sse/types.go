package sse

import (
	"net/http"
	"time"
)

// The values a Client takes and returns.

// Request is one POST to Dify.
type Request struct {
	// URL is the full URL, e.g. http://127.0.0.1:5001/v1/chat-messages.
	URL string
	// APIKey is sent as "Authorization: Bearer <key>". It never appears in errors.
	APIKey string
	// Body is the JSON request body.
	Body []byte
	// Header holds optional extra headers (they may override Content-Type and Accept).
	Header http.Header
	// Mode is the app mode; it picks the answer and terminal events. "" → chatflow.
	Mode Mode
}

// Result is what Stream measured. All times carry the monotonic clock; subtract them with
// Sub. Times of body bytes (FirstByte, events, chunks, End on success) are the kernel's
// receive time of those bytes where the connection has it (see Clock), else time.Now when
// the read returned them. A zero time means the point was not reached.
type Result struct {
	// Clock says which clock timed the headers and body reads: ClockKernel, ClockUser or
	// ClockMixed.
	Clock Clock
	// StatusCode is the HTTP status (0 if no response).
	StatusCode int
	// Start is taken just before the request is sent.
	Start time.Time
	// Headers is when the response headers arrived.
	Headers time.Time
	// FirstByte is when the first body read returned data.
	FirstByte time.Time
	// FirstEvent is when the first event (including a ping) was complete.
	FirstEvent time.Time
	// FirstDataEvent is when the first event with data (any Dify event but the ping keep-alive)
	// was complete: time to first event (TTFE). On Dify 1.13 a relayed run sends one ping at
	// once and its first data event only when a job worker has started it, so FirstDataEvent
	// minus Start is the wait in Dify's queue plus the run's setup.
	FirstDataEvent time.Time
	// FirstToken is when the first non-empty answer chunk arrived: message/agent_message,
	// or text_chunk with a non-empty data.text for a workflow app (ModeWorkflow).
	// After an agent_message, message events are not chunks (a New Agent app repeats the
	// full answer in one message event at the end).
	FirstToken time.Time
	// LastToken is when the last non-empty answer chunk arrived.
	LastToken time.Time
	// End is when the stream concluded: on success the terminal event (see the package
	// documentation); on failure when the failure was detected. Set whenever Stream returns.
	End time.Time
	// ChunkTimes holds the arrival time of every non-empty answer chunk, in order.
	ChunkTimes []time.Time
	// Chunks is the number of non-empty answer chunks.
	Chunks int
	// Events counts every dispatched event, including pings and unknown events.
	Events int
	// Pings counts `event: ping` keep-alive frames.
	Pings int
	// UnknownEvents counts events whose type this package does not know (kept, not fatal).
	UnknownEvents int
	// BytesRead counts the body bytes read (wire bytes after de-chunking).
	BytesRead int64
	// Usage is message_end's metadata.usage; Usage.Present is false without it.
	Usage Usage
	// MessageID, ConversationID and TaskID come from message_end (or the error or
	// workflow_finished event).
	MessageID, ConversationID, TaskID string
	// WorkflowStatus is workflow_finished's data.status, if one arrived.
	WorkflowStatus string
	// WorkflowRunID is workflow_finished's workflow_run_id, if one arrived.
	WorkflowRunID string
}

// Usage is message_end.metadata.usage.
type Usage struct {
	// Present is true when message_end carried a usage object.
	Present bool
	// PromptTokens, CompletionTokens and TotalTokens are the token counts.
	PromptTokens, CompletionTokens, TotalTokens int64
	// Latency is usage.latency (seconds on the wire); valid if HasLatency.
	Latency time.Duration
	// TimeToFirstToken is usage.time_to_first_token; valid if HasTTFT (null on the wire
	// for many models).
	TimeToFirstToken time.Duration
	// HasLatency and HasTTFT report whether the corresponding value was a number.
	HasLatency, HasTTFT bool
}

// Response is what Post measured.
type Response struct {
	// StatusCode is the HTTP status (0 if no response).
	StatusCode int
	// Start, Headers and End are the request start, the response headers and the end of the
	// body (or the failure), monotonic.
	Start, Headers, End time.Time
	// BytesRead counts the body bytes read.
	BytesRead int64
	// Body is the response body when it is at most 256 KiB (nil otherwise).
	Body []byte
}
