package sse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	msgHi     = `{"event":"message","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","answer":"Hi","from_variable_selector":null}`
	msgEmpty  = `{"event":"message","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","answer":"","from_variable_selector":null}`
	msgEnd    = `{"event":"message_end","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","metadata":{"annotation_reply":null,"retriever_resources":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"latency":0.25,"time_to_first_token":0.1}},"files":[]}`
	errEvent  = `{"event":"error","conversation_id":"c","message_id":"m","created_at":1,"code":"completion_request_error","status":400,"message":"[openai] Error"}`
	wfStarted = `{"event":"workflow_started","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","workflow_run_id":"r","data":{"id":"r","workflow_id":"w","inputs":{},"created_at":1}}`
	wfDone    = `{"event":"workflow_finished","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","workflow_run_id":"r","data":{"id":"r","workflow_id":"w","status":"succeeded","outputs":{},"error":null,"elapsed_time":0.1,"total_tokens":0,"total_steps":1,"created_by":{},"created_at":1,"finished_at":1,"exceptions_count":0,"files":[]}}`
)

func frame(ev string) string { return "data: " + ev + "\n\n" }

// okStream writes a short successful chat stream.
func okStream(w http.ResponseWriter) {
	sseHeaders(w)
	_, _ = io.WriteString(w, frame(msgHi)+frame(msgEnd))
}

func TestHTTPStatusErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, failure, code string
		status                    int
	}{
		{"401", `{"code":"unauthorized","message":"Access token is invalid","status":401}` + "\n", "HTTP 401 unauthorized", "unauthorized", 401},
		{"401 echoing the key", `{"code":"unauthorized","message":"bad token ` + testKey + `","status":401}`, "HTTP 401 unauthorized", "unauthorized", 401},
		{"429", `{"code":"too_many_requests","message":"Too many requests. Please try again later. The current maximum concurrent requests allowed for 5b3d is 10.","status":429}` + "\n", "HTTP 429 too_many_requests", "too_many_requests", 429},
		{"500", `{"code":"internal_server_error","message":"The server encountered an internal error","status":500}` + "\n", "HTTP 500 internal_server_error", "internal_server_error", 500},
		{"400 legacy spaced", `{"code": "invalid_param", "message": "Arg user must be provided.", "status": 400}`, "HTTP 400 invalid_param", "invalid_param", 400},
		{"502 html", `<html><body>Bad Gateway</body></html>`, "HTTP 502", "", 502},
		{"503 empty", ``, "HTTP 503", "", 503},
		{"400 weird code", `{"code":"bad code with spaces"}`, "HTTP 400", "", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tt.status == 401 {
					w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, Config{}, TransportConfig{})
			res, err := c.Stream(testContext(t), chatRequest(srv.URL))
			se := requireStreamError(t, err, PhaseStatus, tt.failure)
			if se.Status != tt.status || se.Code != tt.code || res.StatusCode != tt.status {
				t.Errorf("status %d code %q res.StatusCode %d", se.Status, se.Code, res.StatusCode)
			}
			checkOrder(t, res)
			// Post shares the error model.
			_, err = c.Post(testContext(t), chatRequest(srv.URL))
			requireStreamError(t, err, PhaseStatus, tt.failure)
		})
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	_ = ln.Close()

	tlsSrv := httptest.NewUnstartedServer(drainRequest(func(w http.ResponseWriter, r *http.Request) { okStream(w) }))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake errors
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)

	tests := []struct {
		name, url, failure string
		is                 error
	}{
		{"refused", "http://" + closedAddr, "connect: connection refused", syscall.ECONNREFUSED},
		{"dns", "http://nonexistent.invalid", "connect: dns lookup failed", nil},
		{"tls unknown authority", tlsSrv.URL, "connect: tls handshake failed", nil},
		{"invalid url", "http://[::1", "connect: invalid request", nil},
		{"invalid port", "http://127.0.0.1:99999999", "connect: other", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, Config{}, TransportConfig{})
			res, err := c.Stream(testContext(t), chatRequest(tt.url))
			requireStreamError(t, err, PhaseConnect, tt.failure)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if tt.name == "dns" {
				var dnsErr *net.DNSError
				if !errors.As(err, &dnsErr) {
					t.Errorf("not a *net.DNSError: %v", err)
				}
			}
			if res.Start.IsZero() || res.End.IsZero() || !res.Headers.IsZero() {
				t.Errorf("timings: %+v", res)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	var protoMajor atomic.Int32
	srv := httptest.NewUnstartedServer(drainRequest(func(w http.ResponseWriter, r *http.Request) {
		protoMajor.Store(int32(r.ProtoMajor))
		okStream(w)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	for name, tc := range map[string]TransportConfig{
		"insecure": {InsecureSkipVerify: true},
		"root CAs": {RootCAs: pool},
	} {
		c := newTestClient(t, Config{}, tc)
		res, err := c.Stream(testContext(t), chatRequest(srv.URL))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Chunks != 1 || protoMajor.Load() != 1 {
			t.Errorf("%s: chunks %d, server saw HTTP/%d (want HTTP/1.1 even though the server offers h2)", name, res.Chunks, protoMajor.Load())
		}
	}
	tr := NewTransport(TransportConfig{})
	if tr.TLSClientConfig.InsecureSkipVerify || tr.ForceAttemptHTTP2 || tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost {
		t.Errorf("unexpected defaults: %+v", tr)
	}
	_ = tls.VersionTLS12
}

// resetAfter writes the headers and the given SSE bytes on a hijacked connection, then resets it.
func resetAfter(t *testing.T, payload string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, bufrw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		fmt.Fprintf(bufrw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(payload), payload)
		_ = bufrw.Flush()
		time.Sleep(50 * time.Millisecond)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}

func TestStreamFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		handler func(t *testing.T) http.HandlerFunc
		phase   Phase
		failure string
		check   func(t *testing.T, res *Result, err error)
	}{
		{
			name:    "reset mid-stream",
			handler: func(t *testing.T) http.HandlerFunc { return resetAfter(t, frame(msgHi)) },
			phase:   PhaseRead, failure: "connection reset during stream",
			check: func(t *testing.T, res *Result, err error) {
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("not ECONNRESET: %v", err)
				}
			},
		},
		{
			name: "stall after a chunk: idle timeout",
			cfg:  Config{IdleTimeout: 100 * time.Millisecond},
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					_, _ = io.WriteString(w, frame(msgHi))
					flush(w)
					wait(r, 10*time.Second)
				}
			},
			phase: PhaseIdleTimeout, failure: "timeout: no event for 100ms",
			check: func(t *testing.T, res *Result, err error) {
				if res.Chunks != 1 || res.FirstToken.IsZero() {
					t.Errorf("partial result lost: %+v", res)
				}
				if d := res.End.Sub(res.LastToken); d < 100*time.Millisecond {
					t.Errorf("idle timeout fired after %v", d)
				}
			},
		},
		{
			name: "data line without newline then stall: idle timeout",
			cfg:  Config{IdleTimeout: 100 * time.Millisecond},
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					_, _ = io.WriteString(w, `data: {"event":"message",`)
					flush(w)
					wait(r, 10*time.Second)
				}
			},
			phase: PhaseIdleTimeout, failure: "timeout: no event for 100ms",
		},
		{
			name: "pings but no token: first-token timeout",
			cfg:  Config{FirstTokenTimeout: 150 * time.Millisecond, IdleTimeout: 5 * time.Second},
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					for r.Context().Err() == nil {
						_, _ = io.WriteString(w, "event: ping\n\n"+frame(msgEmpty))
						flush(w)
						wait(r, 20*time.Millisecond)
					}
				}
			},
			phase: PhaseFirstTokenTimeout, failure: "timeout: no first token after 150ms",
			check: func(t *testing.T, res *Result, err error) {
				if res.Pings == 0 || res.Chunks != 0 || res.End.Sub(res.Start) < 150*time.Millisecond {
					t.Errorf("result: %+v", res)
				}
			},
		},
		{
			name: "no headers: first-token timeout",
			cfg:  Config{FirstTokenTimeout: 100 * time.Millisecond},
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) { wait(r, 10*time.Second) }
			},
			phase: PhaseFirstTokenTimeout, failure: "timeout: no first token after 100ms",
		},
		{
			name: "endless stream: stream timeout",
			cfg:  Config{StreamTimeout: 200 * time.Millisecond},
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					for r.Context().Err() == nil {
						_, _ = io.WriteString(w, frame(msgHi))
						flush(w)
						wait(r, 10*time.Millisecond)
					}
				}
			},
			phase: PhaseStreamTimeout, failure: "timeout: stream longer than 200ms",
			check: func(t *testing.T, res *Result, err error) {
				if res.Chunks == 0 || res.End.Sub(res.Start) < 200*time.Millisecond {
					t.Errorf("result: chunks %d, took %v", res.Chunks, res.End.Sub(res.Start))
				}
			},
		},
		{
			name: "wrong content type",
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json; charset=utf-8")
					_, _ = io.WriteString(w, `{"event":"message","answer":"blocking"}`)
				}
			},
			phase: PhaseDecode, failure: "invalid response: content-type application/json",
		},
		{
			name: "16 MiB event: too large",
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					_, _ = io.WriteString(w, `data: {"event":"message","answer":"`)
					chunk := []byte(strings.Repeat("a", 32<<10))
					for i := 0; i < (16<<20)/len(chunk) && r.Context().Err() == nil; i++ {
						if _, err := w.Write(chunk); err != nil {
							return
						}
					}
					_, _ = io.WriteString(w, "\"}\n\n"+frame(msgEnd))
				}
			},
			phase: PhaseTooLarge, failure: "event too large",
			check: func(t *testing.T, res *Result, err error) {
				if res.BytesRead > DefaultMaxEventSize+(1<<20) {
					t.Errorf("read %d bytes before failing", res.BytesRead)
				}
			},
		},
		{
			name: "caller cancels",
			handler: func(t *testing.T) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					sseHeaders(w)
					_, _ = io.WriteString(w, frame(msgHi))
					flush(w)
					wait(r, 10*time.Second)
				}
			},
			phase: PhaseCancelled, failure: "cancelled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.handler(t))
			c := newTestClient(t, tt.cfg, TransportConfig{})
			ctx := testContext(t)
			if tt.phase == PhaseCancelled {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(100*time.Millisecond, cancel)
			}
			res, err := c.Stream(ctx, chatRequest(srv.URL))
			requireStreamError(t, err, tt.phase, tt.failure)
			checkOrder(t, res)
			if res.End.IsZero() {
				t.Error("End not set on failure")
			}
			if tt.check != nil {
				tt.check(t, res, err)
			}
		})
	}
}

// TestTooLargeBoundedMemory: a 16 MiB event against the default 8 MiB limit allocates less
// than the event's size (the data buffer stops at the limit). Not parallel, to measure alone.
func TestTooLargeBoundedMemory(t *testing.T) {
	chunk := []byte(strings.Repeat("a", 32<<10))
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = io.WriteString(w, `data: {"event":"message","answer":"`)
		for i := 0; i < (16<<20)/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, "\"}\n\n"+frame(msgEnd))
	})
	c := newTestClient(t, Config{}, TransportConfig{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := c.Stream(testContext(t), chatRequest(srv.URL))
	runtime.ReadMemStats(&after)
	requireStreamError(t, err, PhaseTooLarge, "event too large")
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB for a 16 MiB event (8 MiB limit)", float64(alloc)/(1<<20))
	if alloc >= 16<<20 {
		t.Errorf("allocated %d bytes (client and server) for a 16 MiB event", alloc)
	}
}

func TestLargeEventOK(t *testing.T) {
	t.Parallel()
	answer := strings.Repeat("é", 512<<10) // 1 MiB of UTF-8
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = io.WriteString(w, frame(`{"event":"message","answer":"`+answer+`"}`)+frame(msgEnd))
	})
	c := newTestClient(t, Config{}, TransportConfig{})
	res, err := c.Stream(testContext(t), chatRequest(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != 1 || res.BytesRead < 1<<20 {
		t.Errorf("chunks %d bytes %d", res.Chunks, res.BytesRead)
	}
}

func TestTimingFirstTokenAfterDelay(t *testing.T) {
	t.Parallel()
	const delay = 200 * time.Millisecond
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		flush(w)
		time.Sleep(delay)
		_, _ = io.WriteString(w, frame(msgHi))
		flush(w)
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, frame(msgHi)+frame(msgEnd))
	})
	c := newTestClient(t, Config{}, TransportConfig{})
	res, err := c.Stream(testContext(t), chatRequest(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, res)
	if d := res.FirstToken.Sub(res.Start); d < delay {
		t.Errorf("FirstToken-Start = %v, want >= %v", d, delay)
	}
	// No lower bound on LastToken-FirstToken: under load one read may return both chunks.
	if res.Chunks != 2 || !res.Usage.Present || res.Usage.Latency != 250*time.Millisecond || res.Usage.TimeToFirstToken != 100*time.Millisecond {
		t.Errorf("result %+v", res)
	}
}

// TestTerminalEventTimes checks which event's time End takes in chatflow orders.
func TestTerminalEventTimes(t *testing.T) {
	t.Parallel()
	const gap = 300 * time.Millisecond
	tests := []struct {
		name   string
		frames []string
		// endAfterGap: End must be at least gap after Start (the terminal event came after the
		// pause); otherwise End is message_end's time, well before the stream's slow EOF.
		endAfterGap bool
	}{
		{"message_end then workflow_finished", []string{wfStarted, msgHi, msgEnd, "", wfDone}, true},
		{"workflow_finished then message_end", []string{wfStarted, msgHi, wfDone, "", msgEnd}, true},
		{"message_end then a slow EOF", []string{wfStarted, msgHi, msgEnd, ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				sseHeaders(w)
				for _, f := range tt.frames {
					if f == "" {
						flush(w)
						time.Sleep(gap)
						continue
					}
					_, _ = io.WriteString(w, frame(f))
				}
			})
			c := newTestClient(t, Config{}, TransportConfig{})
			res, err := c.Stream(testContext(t), chatRequest(srv.URL))
			returned := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			checkOrder(t, res)
			if tt.endAfterGap {
				if d := res.End.Sub(res.Start); d < gap {
					t.Errorf("End-Start = %v, want >= %v", d, gap)
				}
			} else if d := returned.Sub(res.End); d < gap/2 {
				t.Errorf("End is %v before return, want >= %v (End must be message_end's time)", d, gap/2)
			}
		})
	}
}

// TestKeepAliveReuseAfterFailures: failures that leave the connection clean do not cost a new
// connection.
func TestKeepAliveReuseAfterFailures(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(drainRequest(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"code":"too_many_requests","message":"Too many requests.","status":429}`+"\n")
		case 3:
			sseHeaders(w)
			_, _ = io.WriteString(w, frame(msgHi)+frame(errEvent))
		case 5:
			sseHeaders(w)
			_, _ = io.WriteString(w, frame(msgHi)+"data: {oops\n\n"+frame(msgEnd))
		default:
			okStream(w)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, Config{}, TransportConfig{})
	want := []string{"HTTP 429 too_many_requests", "", "stream error: completion_request_error", "", "malformed event JSON", ""}
	for i, w := range want {
		_, err := c.Stream(testContext(t), chatRequest(srv.URL))
		got := ""
		var se *StreamError
		if errors.As(err, &se) {
			got = se.Failure()
		}
		if got != w {
			t.Fatalf("request %d: got %q (%v), want %q", i+1, got, err, w)
		}
	}
	if c := conns.Load(); c != 1 {
		t.Errorf("server saw %d connections, want 1 (keep-alive reuse)", c)
	}
}

func TestPost(t *testing.T) {
	t.Parallel()
	const retrieve = `{"query":{"content":"What is Dify?"},"records":[{"segment":{"id":"s1","content":"Dify is ..."},"score":0.92}]}` + "\n"
	tests := []struct {
		name    string
		cfg     Config
		handler http.HandlerFunc
		phase   Phase
		failure string
	}{
		{name: "ok", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, retrieve)
		}},
		{name: "not json", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "<html>oops</html>")
		}, phase: PhaseDecode, failure: "invalid response: not JSON"},
		{name: "404", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"code":"not_found","message":"Dataset not found.","status":404}`)
		}, phase: PhaseStatus, failure: "HTTP 404 not_found"},
		{name: "too large", cfg: Config{MaxEventSize: 64}, handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, retrieve)
		}, phase: PhaseTooLarge, failure: "invalid response: body too large"},
		{name: "stall mid-body", cfg: Config{IdleTimeout: 100 * time.Millisecond}, handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"query":`)
			flush(w)
			wait(r, 10*time.Second)
		}, phase: PhaseIdleTimeout, failure: "timeout: no event for 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.handler)
			c := newTestClient(t, tt.cfg, TransportConfig{})
			req := chatRequest(srv.URL)
			req.URL = srv.URL + "/v1/datasets/x/retrieve"
			resp, err := c.Post(testContext(t), req)
			if resp == nil || resp.Start.IsZero() || resp.End.Before(resp.Start) {
				t.Fatalf("response %+v", resp)
			}
			if tt.failure == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(resp.Body) != retrieve || resp.BytesRead != int64(len(retrieve)) || resp.Headers.Before(resp.Start) {
					t.Errorf("response %+v", resp)
				}
				return
			}
			requireStreamError(t, err, tt.phase, tt.failure)
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	// The handler hands the headers over through a channel: a TCP round trip is no
	// happens-before edge for the race detector.
	headers := make(chan http.Header, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Clone()
		okStream(w)
	})
	c := newTestClient(t, Config{}, TransportConfig{})
	req := chatRequest(srv.URL)
	req.Header = http.Header{"X-Trace-Id": {"abc"}}
	if _, err := c.Stream(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	got := <-headers
	if got.Get("Authorization") != "Bearer "+testKey || got.Get("Content-Type") != "application/json" ||
		got.Get("X-Trace-Id") != "abc" || got.Get("Accept") != "text/event-stream" {
		t.Errorf("headers %v", got)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if err := (Config{}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (Config{MaxEventSize: -1}).Validate(); err == nil {
		t.Error("negative MaxEventSize accepted")
	}
	c := NewClient(Config{})
	if c.cfg.MaxEventSize != DefaultMaxEventSize || c.cfg.IdleTimeout != DefaultIdleTimeout ||
		c.firstCause.Error() != "timeout: no first token after 60s" || c.streamCause.Error() != "timeout: stream longer than 300s" ||
		c.idleCause.Error() != "timeout: no event for 30s" {
		t.Errorf("defaults: %+v", c.cfg)
	}
	if tr, ok := c.hc.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}
