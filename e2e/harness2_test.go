//go:build goczmq

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locusttest"
)

// Helpers for the reliability tests (faults, master faults, signals, security).

// exitCode waits (bounded) for p and returns its exit code; -1 if it was killed by a signal.
func (p *proc) exitCode(t *testing.T, limit time.Duration) int {
	t.Helper()
	code, err := p.Wait(limit)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// signal sends sig to the process itself (not its group).
func (p *proc) signal(sig syscall.Signal) { _ = p.Signal(sig) }

// waitIdle waits until the mock has no request in flight, so its counts are final.
func (m *mock) waitIdle(t *testing.T, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, "the mock to have no request in flight", func() bool {
		resp, err := locusttest.Get(m.URL + "/_mock/stats?records=0")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var tr struct {
			InFlight int64 `json:"in_flight"`
		}
		return json.NewDecoder(resp.Body).Decode(&tr) == nil && tr.InFlight == 0
	})
}

// plainError undoes what masters do to a string error in their web API: 2.12.1 shows
// repr() ('text') and HTML-escapes it.
func plainError(s string) string {
	s = html.UnescapeString(s)
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		s = s[1 : len(s)-1]
	}
	return s
}

// failures sums the web API's errors by "METHOD NAME: text".
func (s uiStats) failures() map[string]int64 {
	out := map[string]int64{}
	for _, e := range s.Errors {
		out[e.Method+" "+e.Name+": "+plainError(e.Error)] += e.Occurrences
	}
	return out
}

// worker returns the state of the worker whose id starts with prefix ("" if absent).
func (s uiStats) worker(prefix string) (state string, ok bool) {
	for _, w := range s.Workers {
		if strings.HasPrefix(w.ID, prefix) {
			return w.State, true
		}
	}
	return "", false
}

// exception is one row of the master's Exceptions tab (GET /exceptions).
type exception struct {
	Count     int64  `json:"count"`
	Msg       string `json:"msg"`
	Traceback string `json:"traceback"`
	Nodes     string `json:"nodes"` // comma-separated node ids
}

func (w web) exceptions(t *testing.T) []exception {
	t.Helper()
	resp, err := locusttest.Get(w.base + "/exceptions")
	if err != nil {
		t.Fatalf("GET /exceptions: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Exceptions []exception `json:"exceptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /exceptions: %v", err)
	}
	return body.Exceptions
}

// waitReady waits until the master lists a worker whose id starts with prefix in state
// ready.
func (w web) waitReady(t *testing.T, limit time.Duration, prefix string) {
	t.Helper()
	waitFor(t, limit, "worker "+prefix+" ready at the master", func() bool {
		s, ok := w.stats(t)
		if !ok {
			return false
		}
		st, found := s.worker(prefix)
		return found && st == "ready"
	})
}

// countingProxy is a TCP proxy that counts the connections clients open through it. A reset
// from the server is passed on to the client as a reset (SO_LINGER 0), a clean close as a
// half-close, so the client sees what it would see talking to the server directly.
type countingProxy struct {
	ln     net.Listener
	target string
	conns  atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

func startProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *countingProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *countingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *countingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *countingProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.open, c)
	}
}

func (p *countingProxy) serve(client net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.Dial("tcp", p.target)
	if err != nil {
		hardClose(client)
		p.untrack(client)
		return
	}
	if !p.track(server) {
		server.Close()
		client.Close()
		p.untrack(client)
		return
	}
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil {
			hardClose(dst)
			src.Close()
			return
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	wg.Add(2)
	go pipe(server, client)
	go pipe(client, server)
	wg.Wait()
	client.Close()
	server.Close()
	p.untrack(client, server)
}

// hardClose closes c with a TCP reset.
func hardClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (p *countingProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int { return freePort(t) }

// grepFiles reports every file under dirs (and every extra blob) containing needle.
func grepFiles(t *testing.T, needle string, dirs []string, blobs map[string]string) []string {
	t.Helper()
	var hits []string
	for name, b := range blobs {
		if strings.Contains(b, needle) {
			hits = append(hits, name)
		}
	}
	for _, d := range dirs {
		err := filepath.Walk(d, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err == nil && strings.Contains(string(b), needle) {
				hits = append(hits, path)
			}
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("walk %s: %v", d, err)
		}
	}
	sort.Strings(hits)
	return hits
}

// httpGetJSON fetches url into v with a timeout.
func httpGetJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitForInfo is waitFor with a description of the last state on failure.
func waitForInfo(t *testing.T, limit time.Duration, what string, cond func() bool, info func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; %s", limit, what, info())
}
