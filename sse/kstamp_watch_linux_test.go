package sse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// readLog is one read of a recordConn: when it returned and what.
type readLog struct {
	at   time.Time
	data []byte
}

// recordConn is a stamped connection whose reads start pause late (a reader waiting for the
// CPU) and are logged.
type recordConn struct {
	*stampConn
	pause time.Duration
	mu    sync.Mutex
	reads []readLog
}

func (c *recordConn) Read(p []byte) (int, error) {
	time.Sleep(c.pause)
	n, err := c.stampConn.Read(p)
	c.mu.Lock()
	c.reads = append(c.reads, readLog{at: time.Now(), data: append([]byte(nil), p[:n]...)})
	c.mu.Unlock()
	return n, err
}

// readOf is the time the read holding s returned and the number of reads before it.
func (c *recordConn) readOf(s string) (time.Time, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.reads {
		if bytes.Contains(r.data, []byte(s)) {
			return r.at, i
		}
	}
	return time.Time{}, -1
}

// busyLate is how long after their bytes arrive the reads of every other connection of a
// lateTransport come: the other users of a worker that is running late, whose reads sweep
// the watch (a sweep needs a read later than lateAfter).
const busyLate = time.Millisecond

// busyConn is a stamped connection whose reader gets to its bytes busyLate after they
// arrive: it waits until the socket is readable, then sleeps, then reads.
type busyConn struct{ *stampConn }

func (c busyConn) Read(p []byte) (int, error) {
	var b [1]byte
	err := c.rc.Read(func(fd uintptr) bool {
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return e != syscall.EAGAIN
	})
	if err != nil {
		return 0, c.opError(err)
	}
	time.Sleep(busyLate)
	return c.stampConn.Read(p)
}

// lateTransport is the default transport whose connections to late's host read pause late
// (dialed lists them) and whose other connections are busyConns.
type lateTransport struct {
	*Transport
	mu     sync.Mutex
	dialed []*recordConn
}

func newLateTransport(t *testing.T, late string, pause time.Duration, cfg TransportConfig) *lateTransport {
	t.Helper()
	lt := &lateTransport{Transport: NewTransport(cfg)}
	t.Cleanup(lt.CloseIdleConnections)
	inner := lt.DialContext
	host := strings.TrimPrefix(late, "http://")
	host = strings.TrimPrefix(host, "https://")
	lt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return c, err
		}
		sc, ok := c.(*stampConn)
		if !ok {
			return nil, fmt.Errorf("default transport dialed a %T, want *stampConn", c)
		}
		if addr != host {
			return busyConn{sc}, nil
		}
		rc := &recordConn{stampConn: sc, pause: pause}
		lt.mu.Lock()
		lt.dialed = append(lt.dialed, rc)
		lt.mu.Unlock()
		return rc, nil
	}
	return lt
}

func (lt *lateTransport) conns() []*recordConn {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	return append([]*recordConn(nil), lt.dialed...)
}

// busyStream keeps another stream of tr reading (a comment every 2 ms, each read busyLate
// after it came) until the test ends: the other users of a loaded worker, whose reads sweep
// the watch.
func busyStream(t *testing.T, tr http.RoundTripper) {
	t.Helper()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		for r.Context().Err() == nil {
			fmt.Fprint(w, ": tick\n\n")
			flush(w)
			time.Sleep(2 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		close(started)
		if err != nil {
			t.Errorf("busy stream: %v", err)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-started
}

// stepServer writes parts[i] after waiting gaps[i], flushing each, and records when each
// write started and ended.
type stepServer struct {
	// hook (may be nil) runs before the write of each part.
	hook          func(i int)
	mu            sync.Mutex
	before, after []time.Time
}

func (s *stepServer) handler(parts []string, gaps []time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		flush(w)
		for i, p := range parts {
			time.Sleep(gaps[i])
			if s.hook != nil {
				s.hook(i)
			}
			b := time.Now()
			fmt.Fprint(w, p)
			flush(w)
			a := time.Now()
			s.mu.Lock()
			s.before, s.after = append(s.before, b), append(s.after, a)
			s.mu.Unlock()
		}
	}
}

func (s *stepServer) write(i int) (time.Time, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.before[i], s.after[i]
}

const (
	tokenHi    = `data: {"event": "message", "answer": "Hi", "message_id": "m1"}` + "\n\n"
	tokenThere = `data: {"event": "message", "answer": " there", "message_id": "m1"}` + "\n\n"
	endMsg     = `data: {"event": "message_end", "message_id": "m1", "conversation_id": "c1", "metadata": {}}` + "\n\n"
	stampSlack = 2 * time.Millisecond
	// lateBy is the late reader's pause before every read in the lateStream tests: its
	// first read (the head and the ping) comes before the first token, written 55 ms in; its
	// second, about 80 ms in, after the next parts too, so the kernel has merged them.
	lateBy = 40 * time.Millisecond
)

// inWindow fails unless at lies within the server's write i (give or take stampSlack).
func inWindow(t *testing.T, what string, at time.Time, s *stepServer, i int) {
	t.Helper()
	b, a := s.write(i)
	if at.Before(b.Add(-stampSlack)) || at.After(a.Add(stampSlack)) {
		t.Errorf("%s %v after the server's write %d started (it took %v); want within it", what, at.Sub(b), i, a.Sub(b))
	}
}

// lateStream streams parts from a server through a transport whose reader is pause late
// while busy readers sweep the watch; it checks the clock and that the read of mark came
// after the server's write next had started (so the kernel had merged them).
func lateStream(t *testing.T, parts []string, gaps []time.Duration, pause time.Duration, mark string, next int) (*Result, *stepServer) {
	t.Helper()
	var ss stepServer
	srv := newServer(t, ss.handler(parts, gaps))
	lt := newLateTransport(t, srv.URL, pause, TransportConfig{})
	busyStream(t, lt)
	cl := NewClient(Config{Client: &http.Client{Transport: lt}})
	res, err := cl.Stream(context.Background(), chatRequest(srv.URL))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if res.Clock != ClockKernel {
		t.Fatalf("Clock = %v, want kernel", res.Clock)
	}
	at, _ := lt.conns()[0].readOf(mark)
	if b, _ := ss.write(next); at.Before(b) {
		t.Fatalf("the read of %q returned %v before write %d: the reader was not late enough to test anything", mark, b.Sub(at), next)
	}
	return res, &ss
}

// TestKernelStampsWatched: a reader late past the next segment (the kernel has merged them
// under the later stamp, and one read returns both) still times the first token at its own
// segment's arrival: the watch saw it when it came, and the body read of its HTTP chunk is
// placed among the connection's bytes by what the transport still buffers.
func TestKernelStampsWatched(t *testing.T) {
	parts := []string{"event: ping\n\n", tokenHi, tokenThere, endMsg}
	gaps := []time.Duration{0, 55 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}
	res, ss := lateStream(t, parts, gaps, lateBy, `"Hi"`, 2)
	inWindow(t, "FirstToken", res.FirstToken, ss, 1)
	if res.Chunks != 2 {
		t.Errorf("Chunks = %d, want 2", res.Chunks)
	}
}

// TestKernelStampsSplitFraming: the blank line ending the first token comes in a segment
// (and HTTP chunk) of its own; the token is timed at that segment, not the next event's.
func TestKernelStampsSplitFraming(t *testing.T) {
	parts := []string{"event: ping\n\n", strings.TrimSuffix(tokenHi, "\n"), "\n", tokenThere, endMsg}
	gaps := []time.Duration{0, 55 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond, time.Millisecond}
	res, ss := lateStream(t, parts, gaps, lateBy, `"Hi"`, 3)
	inWindow(t, "FirstToken", res.FirstToken, ss, 2)
}

// TestKernelStampsLargeEvent: a first token larger than every read buffer is read in
// several reads and timed at the arrival of its end.
func TestKernelStampsLargeEvent(t *testing.T) {
	big := `data: {"event": "message", "answer": "` + strings.Repeat("x", 20<<10) + `", "message_id": "m1"}` + "\n\n"
	parts := []string{"event: ping\n\n", big, tokenThere, endMsg}
	gaps := []time.Duration{0, 55 * time.Millisecond, 5 * time.Millisecond, time.Millisecond}
	res, ss := lateStream(t, parts, gaps, lateBy, `" there"`, 3)
	inWindow(t, "FirstToken", res.FirstToken, ss, 1)
	if res.Chunks != 2 || res.BytesRead < 20<<10 {
		t.Errorf("Chunks = %d, BytesRead = %d; want 2 and the whole event", res.Chunks, res.BytesRead)
	}
}

// waitPrecise waits (up to 5 s) until c's watch state is on (true) or off.
func waitPrecise(t *testing.T, c *recordConn, on bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); (c.precise.Load() != 0) != on; time.Sleep(100 * time.Microsecond) {
		if time.Now().After(end) {
			t.Errorf("connection watched = %v, want %v", !on, on)
			return
		}
	}
}

// waitQueued spins until c's receive queue holds a byte (up to 5 s).
func waitQueued(t *testing.T, c *stampConn) {
	t.Helper()
	var b [1]byte
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EAGAIN {
			return
		}
	}
	t.Fatal("no byte arrived")
}

// TestWatchSweepsOnlyWhenLate: a read that comes within lateAfter of its bytes' arrival does
// not sweep the watch (a worker on time pays nothing for it); a late read does.
func TestWatchSweepsOnlyWhenLate(t *testing.T) {
	w := newWatch()
	_, watched := stampPair(t, w)
	defer watched.endPrecise(watched.beginPrecise())
	srv, sc := stampPair(t, w)
	buf := make([]byte, 64)
	sweeps := func(late time.Duration) int {
		w.mu.Lock()
		before := w.sweeps
		w.mu.Unlock()
		for range 20 {
			w.next.Store(0) // no rate limit
			if _, err := srv.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			waitQueued(t, sc) // the read finds its byte there: on time, unless late
			time.Sleep(late)
			if _, err := sc.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.sweeps - before
	}
	if n := sweeps(0); n >= 10 {
		t.Errorf("%d of 20 reads on time swept the watch, want (nearly) none", n)
	}
	if n := sweeps(2 * time.Millisecond); n != 20 {
		t.Errorf("%d of 20 reads 2 ms late swept the watch, want all", n)
	}
}

// TestPreciseUntilFirstToken: a request's connection is watched until its first answer token
// and not after (while the stream goes on); the next request on the same connection is
// watched again, and none is left in the watch at the end.
func TestPreciseUntilFirstToken(t *testing.T) {
	parts := []string{"event: ping\n\n", tokenHi}
	gaps := []time.Duration{0, 3 * time.Millisecond}
	for range 8 {
		parts, gaps = append(parts, tokenThere), append(gaps, 2*time.Millisecond)
	}
	parts, gaps = append(parts, endMsg), append(gaps, time.Millisecond)
	var ss stepServer
	srv := newServer(t, ss.handler(parts, gaps))
	lt := newLateTransport(t, srv.URL, 0, TransportConfig{})
	ss.hook = func(i int) {
		c := lt.conns()[0]
		switch i {
		case 1: // before the first token
			waitPrecise(t, c, true)
		case 5: // the first token was sent; the client takes it off once it has read it
			waitPrecise(t, c, false)
		}
	}
	cl := NewClient(Config{Client: &http.Client{Transport: lt}})
	for i := range 2 {
		if _, err := cl.Stream(context.Background(), chatRequest(srv.URL)); err != nil {
			t.Fatalf("Stream: %v", err)
		}
		conns := lt.conns()
		if len(conns) != 1 {
			t.Fatalf("%d connections dialed, want 1 reused", len(conns))
		}
		if n := conns[0].tickets.Load(); n != uint64(i+1) {
			t.Errorf("after request %d the connection was watched %d times, want %d", i+1, n, i+1)
		}
		if n := conns[0].obs.pending.Load(); n != 0 {
			t.Errorf("watch still has %d connections after request %d", n, i+1)
		}
	}
}

// TestPreciseNetHTTP: Go's net/http transport cannot say what it buffers, so a watch's
// sightings could not be placed in its body: its requests leave the watch at the response.
func TestPreciseNetHTTP(t *testing.T) {
	parts := []string{"event: ping\n\n", tokenHi, endMsg}
	gaps := []time.Duration{0, 3 * time.Millisecond, time.Millisecond}
	var ss stepServer
	srv := newServer(t, ss.handler(parts, gaps))
	lt := newLateTransport(t, srv.URL, 0, TransportConfig{NetHTTP: true})
	ss.hook = func(i int) {
		if i == 1 {
			waitPrecise(t, lt.conns()[0], false)
		}
	}
	cl := NewClient(Config{Client: &http.Client{Transport: lt}})
	res, err := cl.Stream(context.Background(), chatRequest(srv.URL))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if res.Clock&ClockKernel == 0 {
		t.Errorf("Clock = %v, want kernel stamps", res.Clock)
	}
	if n := lt.conns()[0].tickets.Load(); n != 1 {
		t.Errorf("the connection was watched %d times, want 1 (until the response)", n)
	}
}

// TestPreciseReadFailures: a connection closed or reset while a request is watched (before
// its first token) ends the stream with the usual failure, and leaves the watch.
func TestPreciseReadFailures(t *testing.T) {
	for _, reset := range []bool{false, true} {
		h := resetAfter(t, "event: ping\n\n")
		if !reset {
			h = func(w http.ResponseWriter, r *http.Request) {
				sseHeaders(w)
				fmt.Fprint(w, "event: ping\n\n")
				flush(w)
				time.Sleep(50 * time.Millisecond)
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					_ = conn.Close()
				}
			}
		}
		srv := newServer(t, h)
		lt := newLateTransport(t, srv.URL, 0, TransportConfig{})
		cl := NewClient(Config{Client: &http.Client{Transport: lt}})
		_, err := cl.Stream(context.Background(), chatRequest(srv.URL))
		var se *StreamError
		ok := errors.As(err, &se)
		want := PhaseTruncated
		if reset {
			want = PhaseRead
		}
		if !ok || se.Phase != want {
			t.Errorf("reset=%v: err = %v, want a %v StreamError", reset, err, want)
		}
		c := lt.conns()[0]
		if c.tickets.Load() == 0 {
			t.Errorf("reset=%v: the connection was never watched", reset)
		}
		if n := c.obs.pending.Load(); n != 0 {
			t.Errorf("reset=%v: watch still has %d connections", reset, n)
		}
	}
}

// TestKernelQueueMerges documents the kernel: two segments that queued up before the reader
// came are one buffer with the later one's stamp, so even a read of exactly the first
// segment's bytes gets the second's arrival. This is why the watch exists, and why cutting
// reads at event ends could not replace it.
func TestKernelQueueMerges(t *testing.T) {
	ctx := context.Background()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan [2]time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- [2]time.Time{}
			return
		}
		defer c.Close()
		var at [2]time.Time
		for i, s := range []string{"first\n\n", "second\n\n"} {
			at[i] = time.Now()
			_, _ = io.WriteString(c, s)
			time.Sleep(20 * time.Millisecond)
		}
		sent <- at
		time.Sleep(100 * time.Millisecond)
	}()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := withKernelStamps(nc, nil).(*stampConn)
	if !ok {
		t.Fatal("no stampConn")
	}
	defer sc.Close()
	at := <-sent // both queued, the reader never came
	buf := make([]byte, len("first\n\n"))
	n, err := sc.Read(buf)
	if err != nil || string(buf[:n]) != "first\n\n" {
		t.Fatalf("Read = %q, %v; want the first event", buf[:n], err)
	}
	got := time.Unix(0, sc.stampAt(0))
	if d := got.Sub(at[1]); d < -stampSlack || d > stampSlack {
		t.Errorf("stamp of the first segment's bytes is %v from the second's send (%v from the first's); want the second's: the kernel merged them",
			d, got.Sub(at[0]))
	}
}

// TestWatchKeepsResetForReader: the kernel reports a socket's pending error once. When a
// sweep's peek is the one that takes a reset, the reader's next read still fails with the
// reset ("connection reset during stream"), not with a clean EOF ("stream ended before
// message_end").
func TestWatchKeepsResetForReader(t *testing.T) {
	w := newWatch()
	srv, sc := stampPair(t, w)
	defer sc.endPrecise(sc.beginPrecise())
	tc, ok := srv.(*net.TCPConn)
	if !ok {
		t.Fatalf("server end is a %T", srv)
	}
	if err := tc.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	_ = tc.Close() // RST
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		w.next.Store(0)
		w.sweep(0)
		if sc.peekErr.Load() != 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("no sweep took the reset")
		}
	}
	_, err := sc.Read(make([]byte, 64))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read after the watch took the reset = %v, want ECONNRESET", err)
	}
	if _, err := sc.Read(make([]byte, 64)); !errors.Is(err, io.EOF) {
		t.Errorf("the next Read = %v, want EOF (the error is reported once)", err)
	}
}
