package sse

import "time"

// terminals applies a mode's terminal-event rules (see the package documentation, "Terminal
// events"). It is per stream state, kept on the stack of Client.stream.
type terminals struct {
	workflowApp                   bool // ModeWorkflow: text_chunk … workflow_finished
	relayed                       bool // chatflow or workflow: relayed by Dify 1.13
	wfStarted, wfFinished, msgEnd bool
	msgEndAt, wfEndAt             time.Time
}

func newTerminals(m Mode) terminals {
	return terminals{workflowApp: m == ModeWorkflow, relayed: m == ModeWorkflow || m == ModeChatflow || m == ""}
}

// silentHint explains a relayed stream that sent a ping and nothing else.
const silentHint = "Dify answered 200 and a ping, then nothing: Dify 1.13 runs chatflows and workflows in a job " +
	"worker and reports nothing when the run fails its setup there (a missing required input, an empty query, " +
	"an unknown conversation_id) — check the app's required inputs — or the run waited in Dify's job queue " +
	"longer than the first-token timeout"

// concurrencyLimitMsg starts the message of Dify's app concurrency-limit error.
const concurrencyLimitMsg = "Too many requests."

// onlyPings reports whether b is nothing but whole `event: ping` keep-alive frames.
func onlyPings(b []byte) bool {
	const ping = "event: ping\n\n"
	if len(b) == 0 || len(b)%len(ping) != 0 {
		return false
	}
	for i := 0; i < len(b); i += len(ping) {
		if string(b[i:i+len(ping)]) != ping {
			return false
		}
	}
	return true
}

// messageEnd records message_end and reports whether the stream is complete.
// A workflow app has no message_end: it never ends one.
func (t *terminals) messageEnd(now time.Time) bool {
	if t.workflowApp {
		return false
	}
	t.msgEnd, t.msgEndAt = true, now
	return !t.wfStarted || t.wfFinished
}

// workflowFinished records a successful workflow_finished and reports whether the stream is
// complete: at once for a workflow app, after message_end for the chat modes.
func (t *terminals) workflowFinished(now time.Time) bool {
	t.wfFinished, t.wfEndAt = true, now
	return t.workflowApp || t.msgEnd
}

// atEOF reports whether a stream that ended here is a success, and its End. A chatflow whose
// workflow_finished succeeded is complete without message_end: Dify 1.13's relay stops at the
// first workflow_finished, and 1.13.0 queued message_end after it, so message_end never came.
func (t *terminals) atEOF() (time.Time, bool) {
	switch {
	case t.msgEnd && t.wfFinished:
		if t.wfEndAt.After(t.msgEndAt) {
			return t.wfEndAt, true
		}
		return t.msgEndAt, true
	case t.msgEnd:
		return t.msgEndAt, true
	case t.wfFinished:
		return t.wfEndAt, true
	}
	return time.Time{}, false
}

// truncated is the failure name of a stream that ended before its terminal event.
func (t *terminals) truncated() string {
	if t.workflowApp {
		return failTruncatedWF
	}
	return failTruncated
}
