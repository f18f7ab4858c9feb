package sse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"

	"github.com/difyload/difyload/sse/internal/jsonscan"
)

const (
	// errorBodyLimit bounds how much of a non-2xx body is read for Dify's error code.
	errorBodyLimit = 64 << 10
	// drainLimit and drainTimeout bound the read of what follows a terminal event (or a
	// failure that leaves the connection usable), so the connection can be reused.
	drainLimit   = 64 << 10
	drainTimeout = 250 * time.Millisecond
	// chunkTimesCap is the initial capacity of Result.ChunkTimes.
	chunkTimesCap = 64
	// pooledDataCap: readers whose data buffer grew beyond this are not pooled.
	pooledDataCap = 256 << 10
	// smallBody bounds Response.Body.
	smallBody = 256 << 10
	// maxMessageLen bounds a server message quoted in an error's cause.
	maxMessageLen = 200
)

// errDrain is the cancellation cause of an expired drain.
const errDrain constError = "sse: drain timed out"

// Client sends Dify requests and measures their streams. It is safe for concurrent use by
// many goroutines; create one per process (or per configuration) and share it.
type Client struct {
	cfg                       Config
	hc                        *http.Client
	firstCause, idleCause     *timeoutCause
	streamCause               *timeoutCause
	silentCause               string    // the first-token timeout after only a relay's ping
	readers                   sync.Pool // *eventReader, reused across streams
	readBufSize               int
	disableFirst, disableIdle bool
	disableStream             bool
}

// NewClient returns a Client for cfg, with defaults for zero (or invalid) fields.
func NewClient(cfg Config) *Client {
	disableFirst, disableIdle, disableStream := cfg.FirstTokenTimeout < 0, cfg.IdleTimeout < 0, cfg.StreamTimeout < 0
	cfg = cfg.withDefaults()
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{Transport: NewTransport(TransportConfig{})}
	}
	c := &Client{cfg: cfg, hc: hc, readBufSize: defaultReadBufSize,
		disableFirst: disableFirst, disableIdle: disableIdle, disableStream: disableStream}
	c.firstCause, c.idleCause, c.streamCause = newTimeoutCauses(cfg)
	c.silentCause = "timeout: only a ping in " + failureDuration(cfg.FirstTokenTimeout) + " (queued, or missing required inputs)"
	return c
}

// run holds the per-request context, deadlines and body accounting.
type run struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	dl     deadlines
	idleD  time.Duration
	body   io.ReadCloser
	n      int64
	first  time.Time // first body read with data
	last   time.Time // latest body read with data
	// trace finds the connection, stamps its kernel receive times (nil: user clock), clock
	// collects the clocks the reads used.
	trace  httptrace.ClientTrace
	stamps stamper
	unread bufferer // rn.body, if it says what it buffers
	clock  Clock
	anchor time.Time
	// precise asks for the connection's watch until the first answer token (Stream); ticket
	// is the connection's while it is on (kstamp.go).
	precise bool
	ticket  uint64
	// idleOnData defers the idle deadline to the first read that is more than ping frames:
	// a run waiting in Dify's job queue sends one ping and then nothing, and is not idle.
	idleOnData bool
	idleArmed  bool
}

func (c *Client) begin(parent context.Context, firstToken bool) *run {
	ctx, cancel := context.WithCancelCause(parent)
	rn := &run{parent: parent, ctx: ctx, cancel: cancel, idleD: c.cfg.IdleTimeout}
	rn.dl.t0, rn.dl.cancel = time.Now(), cancel
	rn.dl.cause = [numDeadlines]error{dlWhole: c.streamCause, dlFirst: c.firstCause, dlIdle: c.idleCause, dlDrain: errDrain}
	if !c.disableStream {
		rn.dl.set(dlWhole, c.cfg.StreamTimeout)
	}
	if firstToken && !c.disableFirst {
		rn.dl.set(dlFirst, c.cfg.FirstTokenTimeout)
	}
	if c.disableIdle {
		rn.idleD = 0
	}
	return rn
}

// armIdle starts the idle deadline.
func (rn *run) armIdle() {
	if rn.idleD <= 0 || rn.idleArmed {
		return
	}
	rn.idleArmed = true
	rn.dl.set(dlIdle, rn.idleD)
}

// end stops the deadlines, closes the body and releases the context.
func (rn *run) end() {
	rn.endPrecise()
	rn.dl.stop()
	if rn.body != nil {
		_ = rn.body.Close()
	}
	rn.cancel(context.Canceled)
}

// Read reads the response body, recording first/last read times and moving the idle
// deadline on.
func (rn *run) Read(p []byte) (int, error) {
	n, err := rn.body.Read(p)
	if n > 0 {
		now := rn.readNow()
		if rn.first.IsZero() {
			rn.first = now
		}
		rn.last = now
		rn.n += int64(n)
		if rn.idleArmed {
			rn.dl.push(dlIdle, rn.idleD)
		} else if rn.idleOnData && !onlyPings(p[:n]) {
			rn.idleOnData = false
			rn.armIdle()
		}
	}
	return n, err
}

// drain reads what is left of the body (bounded in bytes and time) so the connection can go
// back to the pool; on timeout or a large remainder the connection is closed instead.
func (rn *run) drain() {
	if rn.body == nil {
		return
	}
	rn.endPrecise()
	rn.dl.clear(dlFirst)
	rn.idleArmed = false
	rn.dl.clear(dlIdle)
	rn.dl.set(dlDrain, drainTimeout)
	_, _ = io.CopyN(io.Discard, rn.body, drainLimit)
	rn.dl.clear(dlDrain)
}

// do builds and sends the request. On failure it returns a classified StreamError.
func (c *Client) do(rn *run, req Request, accept string) (*http.Response, *StreamError) {
	hreq, err := http.NewRequestWithContext(rn.traceConn(rn.ctx), http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return nil, &StreamError{Phase: PhaseConnect, Reason: "connect: invalid request", Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", accept)
	for k, vs := range req.Header {
		hreq.Header.Del(k)
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	hreq.Header.Set("Authorization", "Bearer "+req.APIKey)
	resp, err := c.hc.Do(hreq)
	if err != nil {
		if se := ctxError(rn.parent, rn.ctx, err); se != nil {
			return nil, se
		}
		return nil, &StreamError{Phase: PhaseConnect, Reason: "connect: " + connectReason(err), Err: err}
	}
	rn.gotBody(resp.Body)
	return resp, nil
}

// statusError reads a non-2xx answer's Dify error envelope (bounded) and builds the error.
func (c *Client) statusError(rn *run, resp *http.Response) *StreamError {
	lr := &io.LimitedReader{R: rn, N: errorBodyLimit}
	body, _ := io.ReadAll(lr)
	var env struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &env)
	code := sanitizeCode(env.Code)
	msg := env.Message
	if code == "invalid_param" && strings.HasPrefix(msg, concurrencyLimitMsg) {
		// Dify's app concurrency limit comes as 400 invalid_param (its error subclasses
		// ValueError, which the API's handlers match first) or, behind some deployments,
		// 429 too_many_requests: name both after the limit.
		code = "too_many_requests"
	}
	if len(msg) > maxMessageLen {
		msg = msg[:maxMessageLen] + "…"
	}
	var cause error
	if msg != "" {
		cause = fmt.Errorf("POST %s: %s: %q", resp.Request.URL.Redacted(), resp.Status, msg)
	} else {
		cause = fmt.Errorf("POST %s: %s", resp.Request.URL.Redacted(), resp.Status)
	}
	if lr.N > 0 {
		// The body ended within the limit: it has been fully read, keep the connection.
		rn.drain()
	}
	return &StreamError{Phase: PhaseStatus, Status: resp.StatusCode, Code: code,
		Reason: statusFailure(resp.StatusCode, code), Err: cause}
}

// readError classifies an error from reading the body.
func readError(rn *run, err error, streaming bool, truncated string) *StreamError {
	if se := ctxError(rn.parent, rn.ctx, err); se != nil {
		return se
	}
	reason := shortNetReason(err)
	switch {
	case streaming && reason == "connection reset":
		return &StreamError{Phase: PhaseRead, Reason: failReset, Err: err}
	case streaming && errors.Is(err, io.ErrUnexpectedEOF):
		return &StreamError{Phase: PhaseTruncated, Reason: truncated, Err: err}
	}
	return &StreamError{Phase: PhaseRead, Reason: "read error: " + reason, Err: err}
}

// finish fills in the common Result/Response fields of a failure and scrubs the key.
func finish(se *StreamError, status int, key string) *StreamError {
	if se.Status == 0 {
		se.Status = status
	}
	se.Err = redact(se.Err, key)
	if key != "" && strings.Contains(se.Reason, key) {
		se.Reason = strings.ReplaceAll(se.Reason, key, "[redacted]")
	}
	return se
}

func isEventStream(ct string) bool {
	return shortContentType(ct) == "text/event-stream"
}

func (c *Client) getReader(src io.Reader) *eventReader {
	if v, ok := c.readers.Get().(*eventReader); ok {
		v.reset(src, c.cfg.MaxEventSize, c.readBufSize)
		return v
	}
	return newEventReader(src, c.cfg.MaxEventSize, c.readBufSize)
}

func (c *Client) putReader(r *eventReader) {
	if cap(r.data) > pooledDataCap || cap(r.name) > pooledDataCap {
		return
	}
	r.src = nil
	c.readers.Put(r)
}

// Stream POSTs req and reads the Dify SSE answer to its end. The *Result is never nil
// (partial timings on failure). err is nil, or a *StreamError.
func (c *Client) Stream(ctx context.Context, req Request) (*Result, error) {
	res := &Result{ChunkTimes: make([]time.Time, 0, chunkTimesCap)}
	res.Start = time.Now() // before the deadlines start, so timeouts are measured from Start
	rn := c.begin(ctx, true)
	defer rn.end()
	rn.precise = true
	err := c.stream(rn, req, res) //nolint:contextcheck // rn carries the request context, derived from ctx by begin
	res.FirstByte = rn.first
	res.BytesRead = rn.n
	res.Clock = rn.clock
	if err != nil {
		res.End = time.Now()
		return res, finish(err, res.StatusCode, req.APIKey)
	}
	return res, nil
}

func (c *Client) stream(rn *run, req Request, res *Result) *StreamError {
	resp, se := c.do(rn, req, "text/event-stream") //nolint:bodyclose // the body is rn.body, closed by rn.end (deferred in Stream)
	if se != nil {
		return se
	}
	res.Headers = rn.readNow()
	res.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		rn.armIdle()
		return c.statusError(rn, resp)
	}
	if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
		rn.armIdle()
		rn.drain()
		return &StreamError{Phase: PhaseDecode, Reason: "invalid response: content-type " + shortContentType(ct),
			Err: fmt.Errorf("POST %s: unexpected Content-Type %q", resp.Request.URL.Redacted(), shortContentType(ct))}
	}
	// Before the first data the stream is bounded by the first-token timeout only: pings
	// do not start the idle clock (a relayed run queued in Dify 1.13 sends one ping, then
	// nothing until a job worker starts it).
	rn.idleOnData = true
	rd := c.getReader(rn)
	defer c.putReader(rd)

	term := newTerminals(req.Mode)
	agentChunks := false // an agent_message event was seen
	for {
		ev, err := rd.next()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				if end, ok := term.atEOF(); ok {
					res.End = end
					return nil
				}
				return &StreamError{Phase: PhaseTruncated, Reason: term.truncated(), Err: io.ErrUnexpectedEOF}
			case errors.Is(err, errEventTooLarge):
				return &StreamError{Phase: PhaseTooLarge, Reason: failTooLarge,
					Err: fmt.Errorf("%w (%d bytes)", errEventTooLarge, c.cfg.MaxEventSize)}
			case errors.Is(err, io.ErrUnexpectedEOF) && ctxError(rn.parent, rn.ctx, nil) == nil:
				// The terminal event arrived; the connection then closed without a clean end.
				if end, ok := term.atEOF(); ok {
					res.End = end
					return nil
				}
			}
			se := readError(rn, err, true, term.truncated())
			if se.Phase == PhaseFirstTokenTimeout && res.FirstDataEvent.IsZero() && res.Pings > 0 && term.relayed {
				se.Reason = c.silentCause
				se.Err = fmt.Errorf("%w: %s", se.Err, silentHint)
			}
			return se
		}
		now := rn.last
		res.Events++
		if res.FirstEvent.IsZero() {
			res.FirstEvent = now
		}
		if !ev.hasData {
			if string(ev.name) == "ping" {
				res.Pings++
			} else {
				res.UnknownEvents++
			}
			continue
		}
		if res.FirstDataEvent.IsZero() {
			res.FirstDataEvent = now
		}
		if !jsonscan.Valid(ev.data) {
			if ev.partial {
				return &StreamError{Phase: PhaseTruncated, Reason: term.truncated(), Err: io.ErrUnexpectedEOF}
			}
			return c.malformed(rn, errors.New("sse: data is not valid JSON"))
		}
		name, ok := eventName(ev.data)
		if !ok {
			return c.malformed(rn, errors.New(`sse: data has no "event" string`))
		}
		switch kind := kindOf(name); kind {
		case kindMessage, kindAgentMessage, kindTextChunk:
			var chunk bool
			switch {
			case term.workflowApp:
				// A workflow app streams its answer in text_chunk data.text.
				chunk = kind == kindTextChunk && textNonEmpty(ev.data)
			case kind == kindTextChunk:
			case kind == kindAgentMessage:
				agentChunks = true
				chunk = answerNonEmpty(ev.data)
			default:
				// A New Agent app (mode "agent") ends its agent_message chunks with one
				// message event repeating the full answer: not a chunk.
				chunk = !agentChunks && answerNonEmpty(ev.data)
			}
			if chunk {
				if res.Chunks == 0 {
					res.FirstToken = now
					rn.dl.clear(dlFirst)
					rn.endPrecise()
				}
				res.Chunks++
				res.LastToken = now
				res.ChunkTimes = append(res.ChunkTimes, now)
			}
		case kindMessageEnd:
			var me wireMessageEnd
			if err := decodeMessageEnd(ev.data, &me); err != nil {
				return c.malformed(rn, fmt.Errorf("sse: message_end: %w", err))
			}
			res.MessageID, res.ConversationID, res.TaskID = me.MessageID, me.ConversationID, me.TaskID
			if me.Metadata != nil && me.Metadata.Usage != nil {
				res.Usage = me.Metadata.Usage.toUsage()
			}
			if term.messageEnd(now) {
				res.End = now
				rn.drain()
				return nil
			}
		case kindWorkflowStarted:
			term.wfStarted = true
		case kindWorkflowFinished:
			var wf wireWorkflowFinished
			if err := decodeWorkflowFinished(ev.data, &wf); err != nil {
				return c.malformed(rn, fmt.Errorf("sse: workflow_finished: %w", err))
			}
			res.WorkflowStatus = wf.Data.Status
			res.WorkflowRunID = wf.WorkflowRunID
			if res.TaskID == "" {
				res.MessageID, res.ConversationID, res.TaskID = wf.MessageID, wf.ConversationID, wf.TaskID
			}
			switch wf.Data.Status {
			case "failed":
				rn.drain()
				return &StreamError{Phase: PhaseWorkflow, Reason: failWorkflowFailed,
					Err: fmt.Errorf("sse: workflow_finished status %q: %v", wf.Data.Status, wf.Data.Error)}
			case "stopped":
				rn.drain()
				return &StreamError{Phase: PhaseWorkflow, Reason: failWorkflowStop,
					Err: fmt.Errorf("sse: workflow_finished status %q", wf.Data.Status)}
			}
			if term.workflowFinished(now) {
				res.End = now
				rn.drain()
				return nil
			}
		case kindWorkflowPaused:
			// A human-input node paused the run: the stream ends here (Dify's relay stops at
			// workflow_paused) and the answer is not complete.
			rn.drain()
			return &StreamError{Phase: PhaseWorkflow, Reason: failWorkflowPaused,
				Err: errors.New("sse: workflow_paused (a human input node waits for a reply)")}
		case kindError:
			var we wireError
			if err := json.Unmarshal(ev.data, &we); err != nil {
				return c.malformed(rn, fmt.Errorf("sse: error event: %w", err))
			}
			res.MessageID, res.ConversationID, res.TaskID = we.MessageID, we.ConversationID, we.TaskID
			code := sanitizeCode(we.Code)
			msg := we.Message
			if len(msg) > maxMessageLen {
				msg = msg[:maxMessageLen] + "…"
			}
			rn.drain()
			return &StreamError{Phase: PhaseErrorEvent, Code: code, Reason: errorEventFailure(code),
				Err: fmt.Errorf("sse: error event (status %d): %q", we.Status, msg)}
		case kindPing:
			res.Pings++
		case kindUnknown:
			res.UnknownEvents++
		}
	}
}

func (c *Client) malformed(rn *run, err error) *StreamError {
	rn.drain()
	return &StreamError{Phase: PhaseDecode, Reason: failMalformed, Err: err}
}

// Post sends req and reads the whole JSON answer (bounded by MaxEventSize). It is the
// non-streaming call used for retrieve, with the same error model as Stream: phases connect,
// status, read, decode ("invalid response: not JSON"), too_large ("invalid response: body
// too large"), idle_timeout, stream_timeout and cancelled. The *Response is never nil.
func (c *Client) Post(ctx context.Context, req Request) (*Response, error) {
	out := &Response{Start: time.Now()}
	rn := c.begin(ctx, false)
	defer rn.end()
	rn.armIdle()
	err := c.post(rn, req, out) //nolint:contextcheck // rn carries the request context, derived from ctx by begin
	out.BytesRead = rn.n
	out.End = time.Now()
	if err != nil {
		return out, finish(err, out.StatusCode, req.APIKey)
	}
	return out, nil
}

func (c *Client) post(rn *run, req Request, out *Response) *StreamError {
	resp, se := c.do(rn, req, "application/json") //nolint:bodyclose // the body is rn.body, closed by rn.end (deferred in Post)
	if se != nil {
		return se
	}
	out.Headers = rn.readNow()
	out.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(rn, resp)
	}
	limit := c.cfg.MaxEventSize
	buf := make([]byte, 0, min(max(resp.ContentLength, 512), int64(limit)+1))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return &StreamError{Phase: PhaseTooLarge, Reason: failBodyTooLarge,
					Err: fmt.Errorf("sse: response body exceeds %d bytes", limit)}
			}
			n := min(max(2*cap(buf), 4096), limit+1)
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			buf = nb
		}
		n, err := rn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return readError(rn, err, false, failTruncated)
		}
	}
	if len(buf) > limit {
		return &StreamError{Phase: PhaseTooLarge, Reason: failBodyTooLarge,
			Err: fmt.Errorf("sse: response body exceeds %d bytes", limit)}
	}
	if !jsonscan.Valid(buf) {
		return &StreamError{Phase: PhaseDecode, Reason: failNotJSON,
			Err: fmt.Errorf("POST %s: body is not valid JSON (%d bytes)", resp.Request.URL.Redacted(), len(buf))}
	}
	if len(buf) <= smallBody {
		out.Body = buf
	}
	return nil
}
