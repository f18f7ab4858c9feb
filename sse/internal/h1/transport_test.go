package h1

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestResponses: what the transport reads from scripted wire answers, and whether the
// connection is reused for the next request.
func TestResponses(t *testing.T) {
	t.Parallel()
	const ok2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name    string
		answer  rawAnswer
		body    string // wanted body when err is ""
		trailer string // wanted X-Sum trailer
		reuse   bool   // the next request goes on the same connection
		err     string // wanted error text (from RoundTrip or the body read)
		is      error
	}{
		{name: "content-length", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"}, body: "hello", reuse: true},
		{name: "chunked with extensions and trailers", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
			"5;name=value\r\nhello\r\n1 ; ext\r\n,\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"}, body: "hello, world", trailer: "42", reuse: true},
		{name: "chunked upper-case hex", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"}, body: "0123456789", reuse: true},
		{name: "close-delimited", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\n\r\nuntil the end", after: "close"}, body: "until the end"},
		{name: "connection close", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"}, body: "ok"},
		{name: "HTTP/1.0 without keep-alive", answer: rawAnswer{wire: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"}, body: "ok"},
		{name: "1xx skipped", answer: rawAnswer{wire: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}, body: "ok", reuse: true},
		{name: "204 no body", answer: rawAnswer{wire: "HTTP/1.1 204 No Content\r\n\r\n"}, body: "", reuse: true},
		{name: "LF-only lines", answer: rawAnswer{wire: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"}, body: "ok", reuse: true},
		{name: "malformed status line", answer: rawAnswer{wire: "HTTP/1.1 2x0 OK\r\n\r\n"}, err: `h1: malformed status line "HTTP/1.1 2x0 OK"`},
		{name: "not HTTP", answer: rawAnswer{wire: "SSH-2.0-OpenSSH\r\n\r\n"}, err: "h1: malformed status line"},
		{name: "malformed header", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"}, err: `h1: malformed header line "no colon here"`},
		{name: "space before colon", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"}, err: "h1: malformed header line"},
		{name: "folded header", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n"}, err: "h1: obsolete header line folding"},
		{name: "bad content-length", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"}, err: "h1: invalid Content-Length"},
		{name: "conflicting content-length", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"}, err: "h1: invalid Content-Length"},
		{name: "unknown transfer encoding", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"}, err: "h1: unsupported transfer encoding"},
		{name: "101", answer: rawAnswer{wire: "HTTP/1.1 101 Switching Protocols\r\n\r\n"}, err: "h1: unexpected 101"},
		{name: "malformed chunk size", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"}, err: `h1: malformed chunk size "zz"`},
		{name: "chunk size overflow", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"}, err: "h1: malformed chunk size"},
		{name: "no CRLF after chunk", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n"}, err: "h1: malformed chunked encoding"},
		{name: "chunked cut", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", after: "close"}, is: io.ErrUnexpectedEOF},
		{name: "content-length cut", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", after: "close"}, is: io.ErrUnexpectedEOF},
		{name: "head cut", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nContent-Le", after: "close"}, is: io.ErrUnexpectedEOF},
		{name: "closed before answering", answer: rawAnswer{after: "close"}, is: io.EOF},
		{name: "reset mid-body", answer: rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", after: "reset"}, is: syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRawServer(t, tt.answer, rawAnswer{wire: ok2})
			tr := newTransport(t, Config{})
			body, trailer, err := roundTrip(t, tr, srv.url())
			switch {
			case tt.err != "" || tt.is != nil:
				if err == nil {
					t.Fatalf("no error; body %q", body)
				}
				if tt.err != "" && !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %q, want it to contain %q", err, tt.err)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %v is not %v", err, tt.is)
				}
				if tt.err != "" {
					var pe *ProtocolError
					if !errors.As(err, &pe) {
						t.Errorf("error %T %v is not a *ProtocolError", err, err)
					}
				}
				return
			case err != nil:
				t.Fatal(err)
			case body != tt.body || trailer != tt.trailer:
				t.Fatalf("body %q trailer %q, want %q %q", body, trailer, tt.body, tt.trailer)
			}
			if tt.answer.after == "close" {
				return // the script has no second answer on a new connection to compare
			}
			body, _, err = roundTrip(t, tr, srv.url())
			if err != nil || body != "ok" {
				t.Fatalf("second request: %q %v", body, err)
			}
			wantAccepts := int32(2)
			if tt.reuse {
				wantAccepts = 1
			}
			if got := srv.accepts.Load(); got != wantAccepts {
				t.Errorf("server accepted %d connections, want %d", got, wantAccepts)
			}
		})
	}
}

// roundTrip posts to url and reads the whole body.
func roundTrip(t *testing.T, tr *Transport, url string) (body, trailer string, err error) {
	t.Helper()
	resp, err := tr.RoundTrip(post(t, context.Background(), url, `{"q":1}`))
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Trailer.Get("X-Sum"), err
}

// TestHeaderLimit: a head larger than MaxHeaderBytes fails with a clear error.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 10<<10) + "\r\nContent-Length: 2\r\n\r\nok"
	srv := newRawServer(t, rawAnswer{wire: big}, rawAnswer{wire: big})
	_, _, err := roundTrip(t, newTransport(t, Config{MaxHeaderBytes: 8 << 10}), srv.url())
	if err == nil || err.Error() != "h1: response head larger than 8192 bytes" {
		t.Fatalf("error %v", err)
	}
	// Under the limit a header line longer than the read buffer is fine.
	body, _, err := roundTrip(t, newTransport(t, Config{}), srv.url())
	if err != nil || body != "ok" {
		t.Fatalf("long header line: %q %v", body, err)
	}
}

// TestKeepAlive: N sequential requests use one connection; a body closed early closes it.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			_, _ = io.WriteString(w, "data: {}\n\n")
			w.(http.Flusher).Flush()
		}
	})
	tr := newTransport(t, Config{})
	for i := 0; i < 20; i++ {
		body, _, err := roundTrip(t, tr, srv.URL)
		if err != nil || body != strings.Repeat("data: {}\n\n", 3) {
			t.Fatalf("request %d: %q %v", i, body, err)
		}
	}
	if n := srv.opened.Load(); n != 1 {
		t.Errorf("%d connections for 20 sequential requests, want 1", n)
	}
	resp, err := tr.RoundTrip(post(t, context.Background(), srv.URL, "{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // before the end
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
	waitFor(t, func() bool { return srv.closed.Load() == 1 }, "the early-closed connection to close")
	if _, _, err := roundTrip(t, tr, srv.URL); err != nil || srv.opened.Load() != 2 {
		t.Errorf("after early close: %v, %d connections (want a new one)", err, srv.opened.Load())
	}
}

// TestIdleConnections: the pool size bound, the idle timeout, and a server that closed an
// idle connection (the next request dials instead of failing).
func TestIdleConnections(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})
	tr := newTransport(t, Config{MaxIdleConnsPerHost: 1, IdleConnTimeout: 100 * time.Millisecond})
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, err := roundTrip(t, tr, srv.URL+"/slow")
			errs <- err
		}()
	}
	waitFor(t, func() bool { return srv.opened.Load() == 2 }, "two concurrent connections")
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return srv.closed.Load() == 1 }, "the pool (size 1) to close the second connection")
	waitFor(t, func() bool { return srv.closed.Load() == 2 }, "the idle timeout to close the pooled connection")

	// The server closes the idle connection itself: the peek sees it, the request redials.
	if _, _, err := roundTrip(t, tr, srv.URL); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	waitFor(t, func() bool { return srv.closed.Load() == 3 }, "the server to close")
	if _, _, err := roundTrip(t, tr, srv.URL); err != nil {
		t.Fatalf("request after the server closed the idle connection: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCancel: cancelling the context mid-body (and before the head) unblocks the read with
// the conn closed; goleak (TestMain) checks that nothing is left running.
func TestCancel(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t,
		rawAnswer{wire: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", after: "stall"},
		rawAnswer{after: "stall"})
	tr := newTransport(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := tr.RoundTrip(post(t, ctx, srv.url(), "{}"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := resp.Body.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = resp.Body.Read(buf)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("read after cancel: %v after %v", err, time.Since(start))
	}
	_ = resp.Body.Close()

	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if resp, err := tr.RoundTrip(post(t, ctx2, srv.url(), "{}")); err == nil {
		_ = resp.Body.Close()
		t.Fatal("no error when the context ends before the head")
	}
	if tr.nIdle != 0 {
		t.Errorf("%d idle connections after cancellations, want 0", tr.nIdle)
	}
}

// TestTLS: https with the server's root, ALPN http/1.1 although the server offers h2, and a
// certificate the client does not trust fails verification.
func TestTLS(t *testing.T) {
	t.Parallel()
	var proto atomic.Int32
	srv2 := newTLSServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		proto.Store(int32(r.ProtoMajor))
		_, _ = io.WriteString(w, "secure")
	})
	pool := x509.NewCertPool()
	pool.AddCert(srv2.Certificate())
	tr := newTransport(t, Config{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	for i := 0; i < 2; i++ {
		body, _, err := roundTrip(t, tr, srv2.URL)
		if err != nil || body != "secure" || proto.Load() != 1 {
			t.Fatalf("body %q err %v proto %d", body, err, proto.Load())
		}
	}
	_, _, err := roundTrip(t, newTransport(t, Config{}), srv2.URL)
	var ua x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &ua) && !errors.As(err, &cve) {
		t.Fatalf("untrusted certificate: %T %v", err, err)
	}
}

// TestFallback: a proxy for the URL, a body of unknown length or Expect go to the fallback;
// with no fallback they fail with ErrUnsupported.
func TestFallback(t *testing.T) {
	t.Parallel()
	var proxied atomic.Int32
	proxy := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.IsAbs() { // a proxy request carries the absolute URL
			proxied.Add(1)
		}
		_, _ = io.WriteString(w, "via proxy")
	})
	proxyURL, _ := url.Parse(proxy.URL)
	proxyFn := func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	std := &http.Transport{Proxy: proxyFn}
	t.Cleanup(std.CloseIdleConnections)
	tr := newTransport(t, Config{Proxy: proxyFn, Fallback: std})
	body, _, err := roundTrip(t, tr, "http://dify.example/v1/chat-messages")
	if err != nil || body != "via proxy" || proxied.Load() != 1 {
		t.Fatalf("proxy: %q %v (proxied %d)", body, err, proxied.Load())
	}
	if tr.nIdle != 0 {
		t.Errorf("lean pool holds %d connections after a proxied request", tr.nIdle)
	}

	direct := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "direct")
	})
	var fellBack atomic.Int32
	tr2 := newTransport(t, Config{Fallback: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		fellBack.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})})
	unknown, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, direct.URL, io.NopCloser(strings.NewReader("{}")))
	expect := post(t, context.Background(), direct.URL, "{}")
	expect.Header.Set("Expect", "100-continue")
	for _, req := range []*http.Request{unknown, expect} {
		resp, err := tr2.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if fellBack.Load() != 2 {
		t.Errorf("fallback used %d times, want 2", fellBack.Load())
	}
	unknown2, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, direct.URL, io.NopCloser(strings.NewReader("{}")))
	resp, err := newTransport(t, Config{}).RoundTrip(unknown2)
	if err == nil {
		_ = resp.Body.Close()
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("without fallback: %v, want ErrUnsupported", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
