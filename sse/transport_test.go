package sse

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawResponse answers every request on its connection with wire, then closes.
func rawResponse(t *testing.T, wire string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, wire)
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestLeanTransportFailures: malformed responses are counted failures with the cause in
// the error text, under the failure names net/http's transport gave them.
func TestLeanTransportFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, wire string
		phase      Phase
		failure    string
		cause      string
	}{
		{"malformed status line", "HTTP/1.1 OK\r\n\r\n", PhaseConnect, "connect: other", `malformed status line "HTTP/1.1 OK"`},
		{"malformed header", "HTTP/1.1 200 OK\r\nContent-Type text/event-stream\r\n\r\n", PhaseConnect, "connect: other", "malformed header line"},
		{"head too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n\r\n", PhaseConnect, "connect: other", "response head larger than 1048576 bytes"},
		{"closed before answering", "", PhaseConnect, "connect: connection closed", "EOF"},
		{"malformed chunk size", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", PhaseRead, "read error: other", "malformed chunk size"},
		{"chunked body cut", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n40\r\ndata: {\"event\":\"message\",\"answer\":\"Hi\"}\n\n", PhaseTruncated, "stream ended before message_end", "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := rawResponse(t, tt.wire)
			c := newTestClient(t, Config{}, TransportConfig{})
			_, err := c.Stream(testContext(t), chatRequest(u))
			requireStreamError(t, err, tt.phase, tt.failure)
			if !strings.Contains(err.Error(), tt.cause) {
				t.Errorf("error %q does not say %q", err, tt.cause)
			}
		})
	}
}

// TestTransportPaths: a proxy for the URL goes through the standard transport (here to a
// proxy server that sees the absolute URL), NetHTTP sends everything there, and the lean
// transport leaves no per-connection goroutine behind while its connections are pooled.
func TestTransportPaths(t *testing.T) {
	var proxied atomic.Int32
	proxy := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.IsAbs() {
			proxied.Add(1)
		}
		okStream(w)
	})
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTransport(TransportConfig{})
	t.Cleanup(tr.CloseIdleConnections)
	tr.Proxy = func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	c := NewClient(Config{Client: &http.Client{Transport: tr}})
	if _, err := c.Stream(testContext(t), chatRequest("http://dify.example")); err != nil || proxied.Load() != 1 {
		t.Fatalf("through the proxy: %v (proxy saw %d absolute requests)", err, proxied.Load())
	}
	tr.CloseIdleConnections()
	// Connection loops of closed net/http connections (this test's, earlier tests') exit
	// asynchronously: start from none.
	for deadline := time.Now().Add(5 * time.Second); persistConnGoroutines() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("net/http connection goroutines still running after CloseIdleConnections")
		}
	}

	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { okStream(w) })
	for _, netHTTP := range []bool{false, true} {
		tr := NewTransport(TransportConfig{NetHTTP: netHTTP})
		c := NewClient(Config{Client: &http.Client{Transport: tr}})
		for i := 0; i < 3; i++ {
			if _, err := c.Stream(testContext(t), chatRequest(srv.URL)); err != nil {
				t.Fatal(err)
			}
		}
		loops := persistConnGoroutines()
		tr.CloseIdleConnections()
		if netHTTP != (loops > 0) {
			t.Errorf("NetHTTP %v: %d net/http connection goroutines with a pooled connection", netHTTP, loops)
		}
	}
}

// persistConnGoroutines counts net/http's per-connection read and write loops.
func persistConnGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("net/http.(*persistConn).readLoop")) + bytes.Count(buf, []byte("net/http.(*persistConn).writeLoop"))
}
