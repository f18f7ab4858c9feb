// Package h1 is a lean HTTP/1.1 client transport: an http.RoundTripper that runs each request
// entirely on the caller's goroutine. net/http's Transport keeps two goroutines per connection
// (readLoop and writeLoop) and a 4 KiB read buffer for the connection's whole life; with tens
// of thousands of open streams those are most of what a stream costs. Here a connection is a
// net.Conn and a few words: the request is written in one write from a pooled buffer; the
// response is read by the caller through a read buffer that exists only while it holds
// unread bytes (taken from a pool when bytes arrive, given back when they are consumed: a
// body read that finds it empty blocks in the socket read on the caller's own buffer, so a
// stream waiting for its next event holds none); cancellation is a context.AfterFunc that
// sets a past deadline on the connection (no watcher goroutine).
//
// Files: transport.go (Transport, Config, RoundTrip, what goes to the fallback), pool.go (the
// keep-alive pool per host and its idle timeout), conn.go (dial, TLS), alive_*.go (the
// liveness check of an idle connection), write.go (the request in one write), reader.go (the
// read buffer that exists only while it holds bytes), head.go (status line and headers),
// body.go (Content-Length, chunked and close-delimited bodies, trailers, reuse).
//
// Supported: http and https URLs without a proxy; requests without a body or with a known
// length (Content-Length ≥ 0, as http.NewRequest sets for a bytes.Reader). Anything else (an
// unknown length, Expect: 100-continue, a proxy for the URL, another scheme, CONNECT or an
// Upgrade) goes to Config.Fallback, a standard *http.Transport, never to a guess.
//
// Responses: 1xx answers before the final one are skipped (101 is an error); the head is
// bounded by Config.MaxHeaderBytes; bodies are chunked (extensions ignored, trailers put in
// Response.Trailer at EOF), Content-Length, or delimited by the connection closing. A
// connection goes back to the pool only after its body was read to the end with nothing
// extra buffered, without `Connection: close`, and without the request's context having
// fired; a body closed early closes the connection. Before an idle connection is reused a
// non-blocking MSG_PEEK (Linux) checks the server has not closed it; a request whose write
// fails on a reused connection is tried once more, on the next idle connection or a new one.
//
// Errors: dial errors as the dialer gives them (net.OpError, net.DNSError), crypto/tls errors
// as they come, io.EOF when the server closes before a response, io.ErrUnexpectedEOF when a
// body ends early, *ProtocolError for a malformed response (with the reason in its text).
// After the request's context ended, reads fail with a deadline error: callers check their
// context first (as sse does).
package h1
