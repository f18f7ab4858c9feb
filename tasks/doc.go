// Package tasks turns a workload (package workload) into Locust user classes: NewClasses
// builds one Class per workload user class, whose users pick a weighted task (filtered by the
// master's --tags/--exclude-tags and the web UI's class editor), run it, and wait the class's
// wait_time (between, constant, constant_pacing, constant_throughput, poisson). A task runs
// one app or knowledge base, through one small type per endpoint:
//
//	chat, agent, chatflow  POST /v1/chat-messages: one conversation of conversation.turns
//	                       turns reusing the conversation_id of its first turn, think time
//	                       between turns; a failed turn ends the conversation
//	completion             POST /v1/completion-messages
//	workflow               POST /v1/workflows/run (answer text_chunk, end workflow_finished)
//	knowledge base         POST /v1/datasets/{id}/retrieve
//
// Queries come inline or from a dataset; sequential picks start at an offset derived from
// the worker index (the master's ack) and the user id, so workers do not replay one sequence.
// Without a workload file the classes are the built-in ChatUser (SimpleChatFlow and
// ComplexChatFlow, between(1s, 3s)) and RetrieveUser (FileRetrieval, between(2s, 5s)); Config
// holds the worker flags that adjust them.
//
// Each stream yields up to three rows, the same rows the project's locustfile.py reports
// from Python workers:
//
//	POST <endpoint>         time to the response headers (like Locust's stream=True requests);
//	                        size = bytes of the whole stream
//	SSE  TTFB [app]         time to the first answer token ([app] with --dify-split-flows)
//	SSE  Full Response      time to the terminal event; size = completion tokens from usage
//
// Counting rules, so nothing is counted twice and nothing is dropped:
//   - a failure before the response headers (connect, HTTP status) is one failure on the
//     POST row and nothing else;
//   - after a 200, the POST row is a success, and the stream ends as exactly one
//     SSE Full Response sample: a success, or a failure with the stream error's short name;
//   - SSE TTFB is recorded once per stream that delivered an answer token; a successful
//     stream without any answer token is recorded as a "none" TTFB request (no time);
//   - a stream cancelled by a stop is no failure: only the POST row (if its headers came)
//     is recorded.
//
// *Class implements runner.UserClass (and runner.FixedCounter for fixed_count) and *User
// implements runner.User, so the worker and `difyload run` run them as they are; tasks never
// imports the worker. The master's options reach a user through runner.Env.ParsedOptions at
// its creation; the LLM options (LLMObserver.ApplyOptions) are applied once per spawn by the
// worker's OnSpawn hook.
package tasks
