package sse

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// BenchmarkTransport is one whole Client.Stream of the complex-chatflow transcript (18
// events) over loopback HTTP/1.1 keep-alive, on the lean transport and on net/http's, in the
// same run: ns/op, B/op and allocs/op per stream (the httptest server in the same process
// is the same for both, so differences are the client's).
func BenchmarkTransport(b *testing.B) {
	srv := transcriptServer(b)
	b.Run("lean", func(b *testing.B) { benchStreams(b, srv, TransportConfig{}) })
	b.Run("nethttp", func(b *testing.B) { benchStreams(b, srv, TransportConfig{NetHTTP: true}) })
}

// transcriptServer answers every request with testdata/complex_chatflow_ping.sse.
func transcriptServer(b *testing.B) *httptest.Server {
	one, err := os.ReadFile("testdata/complex_chatflow_ping.sse")
	if err != nil {
		b.Fatal(err)
	}
	return newServer(b, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = w.Write(one)
	})
}

// benchStreams streams from srv in a loop on a client with its own transport.
func benchStreams(b *testing.B, srv *httptest.Server, tc TransportConfig) {
	c := newTestClient(b, Config{}, tc)
	req := chatRequest(srv.URL)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Stream(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
