// Package difymock is a Dify-compatible mock server (Dify service API
// 1.9 … 1.13.3, see "Dify versions") for tests, demos and benchmarks of difyload. It is the oracle the
// client is tested against, so it imports nothing from the project and keeps
// its own truth about what it served.
//
// # Files
//
// A request's walk, from the handler to the bytes on the wire:
//
//	server.go          Server, ServeHTTP (routing, auth, X-Mock-* overrides, HTTP faults), whole JSON responses
//	request.go         serveChat: body checks in Dify's order, the run's setup, streaming or blocking
//	chat.go            chat, the state of one app request
//	stream.go          serveStream: relay ping and job queue, the run of the app's mode, pacing and pings, outcome
//	workflow.go        chatflow, workflow-app and human-input runs (node catalog, runToAnswer, failed runs)
//	workflowevents.go  workflow_started, node_started/node_finished, workflow_finished bodies
//	messages.go        agent, basic chat and completion runs; message_end and its metadata
//	tokens.go          answer chunks on schedule and the mid-stream faults
//	answer.go          the answer's text, its event and selector
//	usage.go           usage object, prices, seconds
//	frame.go           the event writer: frame prefix, pooled buffer, write+flush, TCP reset
//	blocking.go        serveBlocking: the whole answer as one JSON body
//	enc.go             the JSON encoder (orjson-, json.dumps- and ujson-style strings)
//
// Beside it: apps.go (app table and keys), config.go (Config, faults), conversations.go,
// retrieve.go (knowledge retrieval), stop.go (stop endpoints, a stopped run's tail),
// pool.go (job workers and API slots), truth.go (Truth, Records, outcomes), version.go (Dify
// release lines).
//
// # Wire format
//
// Responses follow Dify 1.13.3's service API byte for byte (the facts the
// mock and the client share are written down in docs/dify-wire.md):
//
//   - every response carries X-Version (the Dify version, 1.13.3 by
//     default) and X-Env: PRODUCTION;
//   - streams: 200, Content-Type "text/event-stream; charset=utf-8",
//     chunked, no Content-Length; each event is "data: <json>\n\n" with no
//     event: line, compact orjson-style JSON (no spaces, raw UTF-8, keys in
//     Dify's order); the bare keep-alive "event: ping\n\n" is sent every
//     PingInterval of run time (so a fast reply has none); no [DONE];
//   - blocking chat: "application/json; charset=utf-8", Python json.dumps
//     style (", " and ": " separators, ASCII-escaped), no trailing newline;
//   - everything else and every error: "application/json", compact JSON
//     plus a trailing "\n"; errors are {"code","message","status"}; a 401
//     also has WWW-Authenticate: Bearer realm="api". Error messages are
//     written as ujson writes them (flask-restx uses ujson when it is
//     installed, and Dify's lock file installs it): "/" as "\/", non-ASCII
//     as \uXXXX.
//
// # Apps, keys and endpoints
//
//	key                    app (truth name)      Dify mode      endpoint and flow
//	SimpleChatKey          simple_chatflow       advanced-chat  chat-messages: Start → Answer "You said: {{query}}" (docs/dify-wire.md, "Simple chatflow")
//	ComplexChatKey         complex_chatflow      advanced-chat  chat-messages: Start → IF/ELSE → Tool → Knowledge Retrieval → LLM → Answer (docs/dify-wire.md, "Complex chatflow")
//	AgentChatKey           agent                 agent-chat     chat-messages: agent_thought / agent_message (docs/dify-wire.md, "Agent app"); streaming only
//	ChatAppKey             chat                  chat           chat-messages: message chunks, message_end
//	CompletionAppKey       completion            completion     completion-messages: message chunks, message_end (no conversation)
//	WorkflowAppKey         workflow              workflow       workflows/run: Start → LLM → End, text_chunk, workflow_finished
//	RequiredInputsChatKey  required_chatflow     advanced-chat  chat-messages: the simple chatflow with the required input "dept"
//	HumanInputChatKey      human_input_chatflow  advanced-chat  chat-messages: Start → human input: human_input_required, workflow_paused
//	DatasetKey             —                     knowledge API  /v1/datasets/{id}/retrieve only
//
// An app key on another app type's endpoint is 400 not_chat_app /
// not_completion_app / not_workflow_app "Please check if your app mode
// matches the right API route.". A completion app's query is optional, a
// workflow app has none; `files` must be absent, null or a list of objects
// (else 400 invalid_param); its entries are counted (Record.Files,
// Truth.Apps[...].Files) and otherwise ignored.
//
// Conversations: a chat-messages request without conversation_id gets a new
// UUID (a first turn); a request that sends one the mock issued, for the same
// app and user, is a later turn (Record.Turn, Truth.Conversations; its
// sys.dialogue_count is the turn). Any other UUID is an unknown conversation,
// a setup error (see "Dify versions"). At most Config.MaxConversations are
// remembered (oldest forgotten; `difyload mock --max-conversations`), so a
// small bound makes later turns of a workload's conversations unknown ones. Required inputs and an empty query are the
// other setup errors.
//
// POST /v1/chat-messages serves the chat-messages apps, streaming or blocking
// (response_mode omitted means blocking; agent + blocking is 400
// invalid_param "Agent Chat App does not support blocking mode"). Every app
// streams exactly Tokens answer chunks after TTFT, one every TokenDelay. The
// simple chatflow's chunks are "You said: ", the query, then filler words
// (so Tokens=2 reproduces the simple chatflow of docs/dify-wire.md exactly); the other apps stream filler
// words. message_end usage: completion_tokens = chunks streamed,
// prompt_tokens = 10 + len(query)/4, prices as decimal strings (0.15 and 0.6
// USD per million tokens), latency, time_to_first_token and
// time_to_generate as float seconds (null TTFT/generate in blocking mode,
// as Dify does). Node and workflow "outputs" show the logical answer, which
// leaves out fault filler (big chunks, invalid bytes).
//
// POST /v1/datasets/{id}/retrieve (alias /hit-testing) takes the body of docs/dify-wire.md, "Knowledge retrieval",
// and returns up to min(top_k, 10) records (top_k 4 without
// retrieval_model; scores 0.92, 0.85, …; score_threshold applies when
// enabled) after RetrievalLatency. The dataset id must be DefaultDatasetID
// or one of Config.DatasetIDs (case-insensitive), else 404 not_found
// "Dataset not found.". A query over 250 characters is 400 invalid_param
// "Query cannot exceed 250 characters".
//
// GET /v1/parameters (any app key) returns the app's parameters.
//
// GET /_mock/stats returns the Truth as JSON (?records=0 omits the
// records); POST /_mock/reset zeroes it. These need no key.
//
// Checks run in Dify's order: auth (401: "Authorization header must be
// provided and start with 'Bearer'", "Authorization scheme must be
// 'Bearer'", "Access token is invalid"; the scheme is case-insensitive; a
// key of the wrong scope is "Access token is invalid") → dataset id (404) →
// Content-Type application/json (415 unsupported_media_type) → body JSON
// (400 bad_request) → user (400 invalid_param "Arg user must be
// provided.") → X-Mock-* headers (400 on a bad value) → schema: query,
// inputs object, response_mode, conversation_id "" / null / UUID (400
// invalid_param) → app concurrency limit (400 invalid_param "Too many
// requests. …", Config.MaxActiveRequests) → injected HTTP faults → the run's
// setup (unknown conversation, required inputs, empty query).
//
// # Per-request headers
//
//	X-Mock-TTFT               duration  time to first token
//	X-Mock-Token-Delay        duration  delay between answer chunks
//	X-Mock-Tokens             int       answer chunks (1..1000000)
//	X-Mock-Jitter             duration  uniform ± jitter on TTFT, each delay, retrieval latency
//	X-Mock-Ping-Interval      duration  keep-alive ping period; "0s" disables
//	X-Mock-Retrieval-Latency  duration  retrieve latency
//	X-Mock-Stall              duration  how long stall / partial_line hold (default 35s)
//	X-Mock-Fault              name, "none", or a spec "429=0.5,reset=0.1" (overrides Config.Faults)
//
// Durations use Go syntax ("150ms"). X-Mock-Stall alone injects nothing.
//
// # Faults
//
// A request gets at most one fault: the X-Mock-Fault header if present,
// else a draw from Config.Faults (see ParseFaults). "A few tokens" below is
// min(3, Tokens). The last column is what the difyload client should
// report (the contract's failure vocabulary) with its default timeouts.
//
//	fault            what the mock does                                           client reports
//	401              401 unauthorized "Access token is invalid"                   HTTP 401 unauthorized
//	429              429 too_many_requests (Dify's text)                          HTTP 429 too_many_requests
//	500              500 internal_server_error                                    HTTP 500 internal_server_error
//	error_event      a few tokens, then an error event, code                      stream error: completion_request_error
//	                 completion_request_error, status 400; no message_end
//	workflow_failed  a few tokens, then node_finished(failed) →                   workflow failed
//	                 workflow_finished(failed) → error invalid_param "Run
//	                 failed: …" (as Dify does); the agent app has no workflow and
//	                 sends only the error event                                   (agent: stream error: invalid_param)
//	no_terminal      a few tokens, then the stream ends cleanly                   stream ended before message_end
//	malformed_json   a few tokens, then a data: frame with broken JSON, then end  malformed event JSON
//	oversized        one answer chunk of 9 MiB (the token after a few), then      event too large
//	                 normal completion
//	huge_event       likewise with 16 MiB                                         event too large
//	big_event        likewise with 1 MiB: under the 8 MiB limit                   success
//	stall            after the first token no bytes at all (no pings) for         timeout: no event for 30s
//	                 X-Mock-Stall (default 35s, longer than the client's 30s
//	                 idle timeout so it cannot race it), then normal completion
//	reset            after the first token, TCP reset (SO_LINGER 0)               connection reset during stream
//	reset_mid_event  after the first token, half a data: frame, then reset        connection reset during stream
//	invalid_utf8     one answer chunk contains raw bytes FF FE inside the JSON    success (bytes decode as U+FFFD)
//	                 string; otherwise valid; normal completion
//	partial_line     after the first token, `data: {"event":"message"` with no    timeout: no event for 30s
//	                 newline, held for X-Mock-Stall, then the stream ends
//	terminal_swap    message_end before workflow_finished (chatflows; the agent   success
//	                 app has only message_end)
//	retrieve_500     retrieve only: 500 internal_server_error                     HTTP 500 internal_server_error
//
// On retrieve only 401, 429, 500, retrieve_500, stall (the response is
// delayed by the stall) and reset (reset before any response byte) apply;
// other faults are ignored there, and retrieve_500 is ignored on chat.
// Blocking chat honours 401, 429, 500, stall (delay), reset (no response),
// error_event (400 completion_request_error) and workflow_failed (400
// invalid_param "Run failed: …"); the stream-only faults are ignored
// (recorded without a fault, outcome "ok"). /v1/parameters has no faults.
//
// # Truth
//
// Server.Truth (and /_mock/stats) counts requests per endpoint
// ("chat-messages", "retrieve", "parameters", "other") and outcome, with
// atomic counters, and keeps a ring of the last MaxRecords per-request
// Records (message id, user, app, endpoint, mode, fault, outcome, tokens
// sent, and received / first-token / terminal times in unix ns; the
// first-token and terminal times are taken after the Write+Flush of that
// frame returned). Each request is recorded exactly once, when its handler
// returns. Per app (Truth.Apps) the same outcomes are counted under the
// app names of the key table. Outcomes: "ok"; "setup_silent", "paused",
// "concurrency_limit" (see "Dify versions"); "http_400", "http_401", "http_404", "http_405",
// "http_415", "http_429", "http_500" (validation errors and the HTTP
// faults); the fault name for every other injected fault; "client_gone"
// when the client went away before the end. A failure fault keeps its
// name as the outcome once it was injected even if the client then
// disconnects (stall, partial_line: the client times out); the success
// faults (big_event, invalid_utf8, terminal_swap) count as their name only
// when the stream completed, else client_gone.
//
// # Dify versions
//
// Config.DifyVersion (difyload mock --dify-version) picks the wire of a
// release line; the default is the newest 1.13.x (DefaultDifyVersion). What
// follows was read in Dify 1.13.3's source (langgenius/dify @59639ca9,
// paths under api/) and is restated here in our words:
//
//   - 1.9 … 1.12: every run streams inline from the API process. A chatflow
//     ends workflow_finished → message_end. Setup errors are HTTP errors: an
//     unknown conversation 404 not_found "Conversation Not Exists.", a
//     missing required input 400 invalid_param "<var> is required in input
//     form", an empty query 400 invalid_param "Query is required".
//   - 1.13.0 and later: a streaming chatflow or workflow-app run is queued
//     as a job and the HTTP handler relays its events
//     (services/app_generate_service.py:146-228). The relay writes one ping
//     as soon as it listens, then only what the job publishes; it stops at
//     the first workflow_finished or workflow_paused and drops the rest
//     (core/app/apps/streaming_utils.py:13-70, the stop at 53-63). Setup
//     errors are raised inside the job and not published
//     (core/app/apps/advanced_chat/app_generator.py:123-188): the client
//     gets 200, the ping, then silence (outcome "setup_silent"). Chat, agent
//     and completion apps and every blocking request are not relayed.
//   - 1.13.0: the chatflow pipeline queued message_end after
//     workflow_finished, so the relay never sends it; a failed run's error
//     event and a stopped run's message_end are cut the same way.
//   - 1.13.1 and later: a chatflow sends message_end, then
//     workflow_finished (core/app/apps/advanced_chat/
//     generate_task_pipeline.py:501-546).
//   - Every version: a running pipeline pings when its run time crosses a
//     multiple of 10 s (core/app/apps/base_app_queue_manager.py:55-84); the
//     mock counts run time from the run's start (after the job queue). The
//     app concurrency limit (Config.MaxActiveRequests) is 400 invalid_param:
//     the limit's error subclasses ValueError and the API's error handlers
//     match a ValueError first (libs/external_api.py:79-93,
//     core/app/features/rate_limiting/rate_limit.py:81-86); the "429"
//     fault stays for deployments (or proxies) that answer 429, which
//     Dify's own test also accepts (tests/unit_tests/libs/
//     test_external_api.py:113-115).
//   - The human-input chatflow (HumanInputChatKey) sends
//     human_input_required, then workflow_paused, and ends (outcome
//     "paused"); the two events' data fields are illustrative.
//
// # Stopping a run
//
// POST /v1/chat-messages/{task_id}/stop (simple, complex, required-inputs and
// human-input chatflows, agent, chat) and POST /v1/workflows/tasks/{task_id}/stop
// (the workflow app) take {"user": "..."} and answer {"result": "success"}. As in
// Dify 1.13.3, the app key must belong to the route's app modes (400 not_chat_app
// / not_workflow_app otherwise; a completion app has its own stop route, which
// the mock does not serve) and the user is required (400 "Arg user must be
// provided."). The stop only sets a flag: when the task is unknown, finished,
// another user's or another app's, nothing happens and the answer is the same
// success (controllers/service_api/app/completion.py, ChatStopApi, and
// controllers/service_api/app/workflow.py, WorkflowTaskStopApi, hand the stop to
// services/app_task_service.py, which calls AppQueueManager.set_stop_flag in
// core/app/apps/base_app_queue_manager.py: it compares the task's recorded owner
// with the end user and returns silently on a mismatch).
//
// A stream can be stopped from its run's start (after the job queue of a relayed
// run) until its terminal; the stop takes effect at the stream's next wait (before
// the next chunk or ping) and the stream then ends as Dify's pipeline for the mode
// does on a QueueStopEvent:
//
//   - workflow app: workflow_finished with status "stopped" and error "Stopped by
//     user." (the QueueStopEvent reason), then nothing
//     (core/app/apps/workflow/generate_task_pipeline.py, the stop case of the
//     stream loop shares the failed-run handler with status STOPPED and breaks);
//   - chatflow: workflow_finished (stopped, same error), then message_end
//     (core/app/apps/advanced_chat/generate_task_pipeline.py, _handle_stop_event).
//     A 1.13.x relay stops at workflow_finished (core/app/apps/streaming_utils.py,
//     the terminal events), so on 1.13.0 … 1.13.x the message_end is cut; inline
//     (1.9 … 1.12) it arrives;
//   - chat and agent apps: message_end (core/app/apps/easy_ui_based_generate_task_pipeline.py
//     ends the stream with message_end on a stop as on a normal end); they are never
//     relayed, so every version sends it.
//
// workflow_finished's total_steps is the nodes started so far. The truth counts the
// stopped stream as "stopped" (per endpoint and per app) and the stop request under
// endpoint "stop": "ok" when it stopped a running task, "stop_ignored" when it did
// nothing. Streams that are never stopped are unchanged.
//
// # Capacity model
//
// Config.JobWorkers (--job-workers) is a pool of job workers with a FIFO
// queue for relayed runs: a run holds a worker for its own duration (TTFT +
// (tokens−1) × token delay, from its start); a queued run whose client left
// still runs when its turn comes (an orphan job). Config.APISlots
// (--api-slots) bounds the requests the API process serves at once; the
// others wait before any response byte. Both are unlimited by default. The
// truth reports each request's queue wait (Record.QueueWait, APIWait) and
// the pools' state (Truth.JobWorkers, JobsRunning, JobsQueued, OrphanJobs).
// See CAPACITY.md.
//
// # Capacity
//
// Each open stream costs about 30 KiB of server RSS (two goroutines: the
// handler and net/http's background reader; one timer; pooled frame
// buffers). 20,000 streams need RLIMIT_NOFILE above 20,000 in the mock
// process. See CAPACITY.md.
//
// # Determinism for tests
//
// The package's own tests replace the clock, the id generator and the
// per-request PRNG seed through unexported hooks to produce golden
// transcripts (testdata/*.golden; regenerate with go test -run Golden
// -update). Scheduling always uses real time.
package difymock
