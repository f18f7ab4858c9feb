// Package tasks holds difyload's Locust user classes, ChatUser and RetrieveUser, and their
// flows. A user turns one Dify call into Locust samples:
//
//	ChatUser     SimpleChatFlow or ComplexChatFlow (weighted), then wait between(1s, 3s)
//	RetrieveUser FileRetrieval, then wait between(2s, 5s)
//
// Each chat stream yields up to three rows, the same rows the project's locustfile.py reports
// from Python workers:
//
//	POST /v1/chat-messages  time to the response headers (like Locust's stream=True requests);
//	                        size = bytes of the whole stream
//	SSE  TTFB               time to the first answer token
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
// The classes implement the worker package's UserClass interface structurally; tasks does
// not import the worker.
package tasks
