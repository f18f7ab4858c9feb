// Package sse sends Dify API requests and measures their answers: it POSTs a JSON body, frames
// the text/event-stream reply into events, decodes just enough of each Dify event for timing,
// and reports per-stream timings (Result) or one typed error (*StreamError).
//
// Files: config.go (Config, TransportConfig, NewTransport, Transport), types.go (Request,
// Result, Usage, Response), client.go (Stream and Post), deadline.go (the timeouts on one
// timer), reader.go (SSE framing), decode.go and terminal.go (Dify events), mode.go and
// rules.go (per app mode), kstamp*.go (receive times), transport_linux.go (the socket of a
// stamped connection, for the idle check), errors.go (StreamError and the failure names).
// The allocation-free JSON scanners they use live in sse/internal/jsonscan, the lean
// HTTP/1.1 transport in sse/internal/h1; the Dify wire facts they rely on are in
// docs/dify-wire.md.
//
// # Transport
//
// NewTransport builds the one Transport a process should share: keep-alive with a large
// per-host idle pool (Go's default of 2 idle connections per host makes thousands of users
// redial constantly), HTTP/1.1 only, no transparent gzip, TLS verification on unless
// TransportConfig.InsecureSkipVerify. By default requests go through sse/internal/h1, a lean
// HTTP/1.1 RoundTripper that runs each request on the caller's goroutine: no read and write
// goroutines per connection and no read buffer while a connection is idle (net/http's
// Transport keeps both for a connection's life), cancellation by a context.AfterFunc that
// sets a past deadline. What it does not do (a proxy from the environment, a body of unknown
// length, Expect: 100-continue, another scheme) goes to the standard *http.Transport it embeds,
// as does everything with TransportConfig.NetHTTP. Both fail with the same failure names. After a terminal event, or a failure that leaves the
// connection usable (an HTTP error status, an error event, a failed workflow, malformed JSON),
// the rest of the body is drained (at most 64 KiB, at most 250 ms) so the connection returns
// to the pool; otherwise it is closed. The body is always closed.
//
// # Framing
//
// Framing follows the WHATWG "event stream interpretation" with these policies:
//
//   - Line endings: LF, CR and CRLF, also mixed within one stream. A CR followed by LF in the
//     next read is one line ending.
//   - Lines starting with ':' are comments and are ignored.
//   - `data:` lines are joined with "\n" (one optional space after the colon is removed);
//     `event:` sets the event name; `id:`, `retry:` and unknown fields are ignored; a line
//     without a colon is a field with an empty value.
//   - A blank line dispatches the event if it had a data or an event field. Dify's keep-alive
//     is the bare frame "event: ping" with no data: it is dispatched and counted
//     (Result.Pings) even though the spec would drop a data-less event.
//   - End of stream: a pending event without its trailing blank line is still dispatched (the
//     spec would drop it). If its last line had no line ending and its JSON is invalid, the
//     stream was cut: "stream ended before message_end", not "malformed event JSON".
//   - Oversized events: Config.MaxEventSize (default 8 MiB) bounds the raw bytes of one event
//     (its lines, field names included, plus one byte per line ending). Comments and ignored
//     fields count too, so an endless line is bounded as well. The reader keeps a fixed 4 KiB
//     read buffer and consumes longer lines in fragments, so it never holds more than the
//     limit of one event's data: the stream fails with "event too large" as soon as the limit
//     is passed, whatever the event's real size.
//   - The framing is this package's own bounded reader, not github.com/r3labs/sse/v2's
//     EventStreamReader: see BENCHMARKS.md for the measurement behind the choice.
//
// # Decoding
//
// Dify puts the event type in the JSON "event" key (the first key of its compact JSON; other
// layouts, such as the spaced JSON of Dify ≤1.8, fall back to a walk over the top-level keys).
// When an event has data, that JSON key decides its type; the SSE `event:` field only names
// data-less frames (ping; others count as unknown). Every data payload is validated by a
// single-pass validator that accepts exactly what json.Valid accepts (fuzzed against it) at a
// fraction of its cost; a payload that is not JSON, or not an object with an "event" string,
// fails the stream with "malformed event JSON". Like json.Valid, invalid UTF-8 inside JSON
// strings is accepted (a server bug to report, not a framing failure). Only
// message_end (usage and ids), error (code) and workflow_finished (status) are fully decoded;
// for message and agent_message only the presence of a non-empty "answer" is checked (for
// text_chunk a non-empty data.text), without
// allocating. Events of unknown types are counted (Result.UnknownEvents) and otherwise ignored.
//
// # Terminal events
//
// Request.Mode picks the rules, following Dify's task pipeline for each app mode:
//
//   - chat, agent, completion (and chatflow without a workflow_started event): message_end is
//     terminal; End is its arrival time.
//   - chatflow ("" or "chatflow"), after workflow_started: workflow_finished and message_end may
//     come in either order; the stream ends at whichever of the two comes last (End = its
//     time). EOF after only one of them is a success with End = its time: after message_end
//     alone as before, and after a successful workflow_finished alone because Dify 1.13's
//     relay stops at the first workflow_finished and 1.13.0 queued message_end after it.
//   - workflow (/v1/workflows/run): the answer is text_chunk data.text; workflow_finished
//     with status "succeeded" or "partial-succeeded" ends the stream at once (message_end
//     plays no part); EOF before it is "stream ended before workflow_finished".
//   - Every mode: workflow_finished with status "failed" fails at once ("workflow failed"),
//     "stopped" likewise ("workflow stopped"); workflow_paused (a human-input node, after
//     human_input_required) fails with "workflow paused"; an error event fails at once:
//     "stream error: <code>"; EOF before the terminal event: "stream ended before
//     message_end".
//
// The first answer token is the first chunk with a non-empty answer: a message or
// agent_message event's "answer" (chat modes), a text_chunk's data.text (workflow); every such
// chunk's arrival time is appended to Result.ChunkTimes. Once an agent_message was seen,
// message events are not chunks: a New Agent app (mode "agent") ends with one message event
// repeating the full answer. Result.FirstDataEvent is the first event with data (anything but
// the ping keep-alive): Dify's "time to first event". Times are those of the body read that
// completed the event: the kernel's receive time of its last byte where there is one (see
// Receive times), else when the read returned.
//
// # Timeouts and errors
//
// Config.FirstTokenTimeout (from the start to the first answer token), IdleTimeout (between
// body reads) and StreamTimeout (the whole request) are deadlines on one timer per request
// (deadline.go) that cancel the request's context with a cause; the error is classified from
// that cause. A read moves the idle deadline on with an atomic store, not a timer Reset;
// the timer, set for the earliest deadline, re-arms itself when that one moved. The idle
// deadline starts at
// the first body read that is more than `event: ping` frames (for a non-2xx answer or a
// wrong content type: at the response headers): before the first data a stream is bounded
// by the first-token timeout only, because Dify 1.13 relays chatflow and workflow runs from
// a job worker, sends one ping at once and then nothing while the run waits in its queue.
// When the first-token timeout fires in a chatflow or workflow mode after only pings, the
// failure is "timeout: only a ping in 60s (queued, or missing required inputs)" and the
// error text explains both causes (Dify 1.13 does not report a run's setup errors). A 400
// invalid_param whose message starts "Too many requests." is Dify's app concurrency limit
// and gets the code too_many_requests ("HTTP 400 too_many_requests", like the 429 form).
// No goroutine or timer outlives a call. A caller cancelling its own context yields
// PhaseCancelled (IsCancelled), which is not a failure. StreamError.Failure returns the
// stable failure names:
//
//	HTTP <status> <dify code>            HTTP 502 (no code in the body)
//	connect: connection refused          connect: dns lookup failed
//	connect: tls handshake failed        connect: <short reason>
//	connection reset during stream       read error: <short reason>
//	timeout: no first token after 60s    timeout: no event for 30s
//	timeout: only a ping in 60s (queued, or missing required inputs)
//	HTTP 400 too_many_requests           HTTP 429 too_many_requests
//	timeout: stream longer than 300s     stream error: <dify code>
//	workflow failed                      workflow stopped
//	workflow paused                      stream ended before workflow_finished
//	stream ended before message_end      malformed event JSON
//	event too large                      invalid response: content-type <type>
//	invalid response: not JSON           invalid response: body too large   (Post)
//
// The API key never appears in any error text.
//
// # Receive times
//
// On Linux, NewTransport turns on SO_TIMESTAMPNS for every TCP connection and reads it with
// recvmsg(2) (kstamp_linux.go): each read also returns the kernel's software receive time of
// the newest segment whose bytes it returned. A body read's time (Headers, FirstByte, every
// event, chunk and terminal time) is that stamp, so the time a user goroutine waited for the
// CPU after its bytes arrived is not in the numbers. The bytes of a body read came in the
// connection's latest read or before it, so that stamp is an upper bound of their arrival.
//
// TCP gives one stamp per read, and the kernel merges a segment that arrives behind unread
// ones into them under the newest stamp: a reader late by more than the gap between two
// tokens could no longer tell when the first one came. So until a stream's first answer
// token its socket is in the transport's watch, an epoll set that the reads of every other
// connection sweep when they run late (a read more than 250 µs after its bytes' stamp; at
// most every 200 µs, without blocking): each socket with new bytes is peeked, and the stamp
// of its queue is kept with the queue's end offset. Reads are never cut short. A body read
// is placed among the connection's bytes by what the HTTP reader still buffers (the lean
// transport says so; it returns one HTTP chunk per body read), and is timed by the earlier
// of its connection read's stamp and the watch's sighting of its last byte. A worker whose
// reads all come on time never sweeps: no token can merge into a read that came before the
// next one arrived. Limits: the watch needs other reads while this one is late, which a
// loaded worker has (a lone stream waiting for the CPU is alone only when the CPU is idle),
// and no thread of the process runs while the scheduler gives the core to another process's
// group: a first token that waits unseen past the next one takes that one's stamp
// (bench/README.md, "A worker kept off the CPU");
// TLS hides the socket offsets of the plaintext, so TLS connections are never watched and
// a first token that queued up with later records takes their stamp; net/http's transport
// (TransportConfig.NetHTTP) cannot say what it buffers, so its requests leave the watch at
// the response head, with the same limit.
//
// Linux stamps packets only while some socket asks for it, and switches that on and off
// asynchronously when the first such socket appears and the last one closes: a connection
// opened then could get its first segments unstamped. So NewTransport holds one UDP socket
// with SO_TIMESTAMPNS open for the Transport's life and returns once a loopback connection's
// first read is stamped (at most 100 ms; kstamp_keep_linux.go). Without it, 20-50 % of
// fresh connections' first reads had no stamp when each was the only one (the test
// TestTransportKeepsStampsOn), and a worker's first streams said "mixed".
//
// Where the kernel gives no stamp (other systems, a non-TCP connection, TransportConfig
// UserClock) the time is time.Now when the read returned. Result.Clock says which clock a
// stream used: kernel, user or mixed.
package sse
