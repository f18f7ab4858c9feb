package sse

import (
	"net/http"
	"os"
	"testing"
)

// BenchmarkTransport is one whole Client.Stream of the complex-chatflow transcript (18
// events) over loopback HTTP/1.1 keep-alive, on the lean transport and on net/http's, in the
// same run: ns/op, B/op and allocs/op per stream (the httptest server in the same process
// is the same for both, so differences are the client's).
func BenchmarkTransport(b *testing.B) {
	one, err := os.ReadFile("testdata/complex_chatflow_ping.sse")
	if err != nil {
		b.Fatal(err)
	}
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = w.Write(one)
	})
	for _, tc := range []struct {
		name string
		cfg  TransportConfig
	}{{"lean", TransportConfig{}}, {"nethttp", TransportConfig{NetHTTP: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newTestClient(b, Config{}, tc.cfg)
			req := chatRequest(srv.URL)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Stream(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
