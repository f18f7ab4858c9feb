package h1

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newTransport returns a Transport closed at the end of the test.
func newTransport(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr := New(cfg)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// countingServer is an httptest server that counts the connections it accepted and closed.
type countingServer struct {
	*httptest.Server
	opened, closed atomic.Int32
}

func newCountingServer(t testing.TB, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// rawServer answers every request on a connection with the next of its scripted answers,
// written as given (bytes on the wire), then does what the answer's action says.
type rawServer struct {
	ln      net.Listener
	accepts atomic.Int32
	wg      sync.WaitGroup
}

// rawAnswer is one scripted answer: the bytes, then close (FIN), reset (RST) or stay open.
type rawAnswer struct {
	wire  string
	after string // "", "close", "reset", "stall"
}

func newRawServer(t testing.TB, answers ...rawAnswer) *rawServer {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	done := make(chan struct{})
	var next atomic.Int32
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					if err := readRequest(br); err != nil {
						return
					}
					i := int(next.Add(1)) - 1
					if i >= len(answers) {
						return
					}
					a := answers[i]
					if _, err := io.WriteString(c, a.wire); err != nil {
						return
					}
					switch a.after {
					case "close":
						return
					case "reset":
						time.Sleep(20 * time.Millisecond)
						_ = c.(*net.TCPConn).SetLinger(0)
						return
					case "stall":
						select {
						case <-done:
						case <-time.After(10 * time.Second):
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() }

// readRequest reads one request (head and Content-Length body).
func readRequest(br *bufio.Reader) error {
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err
}

func post(t testing.TB, ctx context.Context, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// newTLSServer is an https test server that also offers h2.
func newTLSServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}
