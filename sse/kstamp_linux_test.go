package sse

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// slowConn delays every read by pause before it starts, as a reader waiting for the CPU
// would: bytes that arrive meanwhile wait in the socket.
type slowConn struct {
	*stampConn
	pause time.Duration
}

func (c slowConn) Read(p []byte) (int, error) {
	time.Sleep(c.pause)
	return c.stampConn.Read(p)
}

// plainSlowConn is the same delay on a connection without kernel stamps.
type plainSlowConn struct {
	net.Conn
	pause time.Duration
}

func (c plainSlowConn) Read(p []byte) (int, error) {
	time.Sleep(c.pause)
	return c.Conn.Read(p)
}

// sendWindow is when the server wrote the first answer chunk: just before and after its
// Write+Flush (on loopback the segment is received inside the write).
type sendWindow struct {
	mu            sync.Mutex
	before, after time.Time
}

func (s *sendWindow) get() (time.Time, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.before, s.after
}

// delayedTokenServer sends a ping, waits gap, then the first answer chunk (timed), waits
// gap2, then a second chunk and message_end.
func delayedTokenServer(t *testing.T, gap, gap2 time.Duration, win *sendWindow) *httptest.Server {
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		fl := w.(http.Flusher)
		fmt.Fprint(w, "event: ping\n\n")
		fl.Flush()
		time.Sleep(gap)
		b := time.Now()
		fmt.Fprint(w, `data: {"event": "message", "answer": "Hi", "message_id": "m1"}`+"\n\n")
		fl.Flush()
		a := time.Now()
		win.mu.Lock()
		win.before, win.after = b, a
		win.mu.Unlock()
		time.Sleep(gap2)
		fmt.Fprint(w, `data: {"event": "message", "answer": " there", "message_id": "m1"}`+"\n\n")
		fmt.Fprint(w, `data: {"event": "message_end", "message_id": "m1", "conversation_id": "c1", "metadata": {}}`+"\n\n")
	})
}

// TestKernelStampsUsed: with the default transport every read of a loopback stream carries
// the kernel's receive timestamp (Result.Clock is ClockKernel), and the first token's time
// is when its bytes arrived, not when a late reader got to them (here 100 ms later).
func TestKernelStampsUsed(t *testing.T) {
	const gap, gap2, pause = 50 * time.Millisecond, 300 * time.Millisecond, 150 * time.Millisecond
	var win sendWindow
	srv := delayedTokenServer(t, gap, gap2, &win)
	firstToken := stampedStream(t, srv, pause, ClockKernel)
	before, after := win.get()
	const slack = 2 * time.Millisecond
	if firstToken.Before(before.Add(-slack)) || firstToken.After(after.Add(slack)) {
		t.Errorf("FirstToken %v after the server's write started (write took %v); want within it: the kernel's receive time",
			firstToken.Sub(before), after.Sub(before))
	}
}

// TestKernelStampsMergedWhenNothingSweeps states the limit that remains: the kernel merges
// segments that queue up behind each other under the newest one's stamp (tcp_try_coalesce),
// and the watch that sees each segment on arrival is swept by the transport's reads. A reader
// late while nothing else reads (here a lone stream whose reads sleep; a loaded worker reads
// all the time) times the first token at the second chunk's arrival, 50 ms later: late by the
// spacing of what queued behind it, not by the reader's whole delay.
func TestKernelStampsMergedWhenNothingSweeps(t *testing.T) {
	const gap, gap2, pause = 50 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond
	var win sendWindow
	srv := delayedTokenServer(t, gap, gap2, &win)
	firstToken := stampedStream(t, srv, pause, ClockKernel)
	_, after := win.get()
	late := firstToken.Sub(after)
	if late < gap2/2 || late > gap2+pause/4 {
		t.Errorf("FirstToken %v after its write; want about %v (the next segment's arrival)", late, gap2)
	}
}

// stampedStream streams from srv over the default transport with every read delayed by
// pause, checks the clock and returns the first token's time.
func stampedStream(t *testing.T, srv *httptest.Server, pause time.Duration, want Clock) time.Time {
	t.Helper()
	tr := NewTransport(TransportConfig{})
	t.Cleanup(tr.CloseIdleConnections)
	inner := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sc, ok := c.(*stampConn)
		if !ok {
			return nil, fmt.Errorf("default transport dialed a %T, want *stampConn", c)
		}
		return slowConn{stampConn: sc, pause: pause}, nil
	}
	cl := NewClient(Config{Client: &http.Client{Transport: tr}})
	res, err := cl.Stream(context.Background(), chatRequest(srv.URL))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if res.Clock != want {
		t.Fatalf("Clock = %v, want %v", res.Clock, want)
	}
	return res.FirstToken
}

// TestUserClockFallback: without kernel stamps (turned off, or a connection that is not
// plain TCP) the same late reader times the token when its read returned: Clock is
// ClockUser and the first token is late by about the reader's pause. This is what the
// kernel stamps remove.
func TestUserClockFallback(t *testing.T) {
	const gap, gap2, pause = 50 * time.Millisecond, 300 * time.Millisecond, 150 * time.Millisecond
	var win sendWindow
	srv := delayedTokenServer(t, gap, gap2, &win)

	tr := NewTransport(TransportConfig{UserClock: true})
	t.Cleanup(tr.CloseIdleConnections)
	inner := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, ok := c.(*stampConn); ok {
			return nil, fmt.Errorf("UserClock transport dialed a stampConn")
		}
		return plainSlowConn{Conn: c, pause: pause}, nil
	}
	cl := NewClient(Config{Client: &http.Client{Transport: tr}})
	res, err := cl.Stream(context.Background(), chatRequest(srv.URL))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if res.Clock != ClockUser {
		t.Fatalf("Clock = %v, want user", res.Clock)
	}
	_, after := win.get()
	if late := res.FirstToken.Sub(after); late < (pause-gap)/2 {
		t.Errorf("user-clock FirstToken only %v after the server's write; want about %v (the reader's pause)", late, pause-gap)
	}
}

// TestKernelStampsTLS: the stamps are found under a TLS connection too, but it is never
// watched: the plaintext's offsets are not the socket's, so a sighting could not be placed.
// Over TLS a first token that queued up with later records gets their stamp; the stream is
// still timed by the kernel.
func TestKernelStampsTLS(t *testing.T) {
	var win sendWindow
	srv := httptest.NewTLSServer(drainRequest(delayedTokenServer(t, time.Millisecond, time.Millisecond, &win).Config.Handler.ServeHTTP))
	t.Cleanup(srv.Close)
	tr := NewTransport(TransportConfig{InsecureSkipVerify: true})
	t.Cleanup(tr.CloseIdleConnections)
	var mu sync.Mutex
	var conns []*stampConn
	inner := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if sc, ok := c.(*stampConn); ok {
			mu.Lock()
			conns = append(conns, sc)
			mu.Unlock()
		}
		return c, err
	}
	cl := NewClient(Config{Client: &http.Client{Transport: tr}})
	res, err := cl.Stream(context.Background(), chatRequest(srv.URL))
	if err != nil {
		t.Fatalf("Stream over TLS: %v", err)
	}
	if res.Clock != ClockKernel || res.Chunks != 2 {
		t.Errorf("over TLS: Clock = %v, Chunks = %d; want kernel, 2", res.Clock, res.Chunks)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 1 {
		t.Fatalf("%d stamped connections, want 1 under the TLS one", len(conns))
	}
	if n := conns[0].tickets.Load(); n != 0 {
		t.Errorf("the connection under TLS was watched %d times, want never", n)
	}
	if s, ok := stampOf(tls.Client(conns[0], &tls.Config{})).(tlsStamps); !ok || s.beginPrecise() != 0 {
		t.Errorf("stampOf(tls.Conn) = %T, want tlsStamps that are never watched", s)
	}
}

// TestKernelStampsNotTCP: a non-TCP connection is left alone and times with the user clock.
func TestKernelStampsNotTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := withKernelStamps(a, newWatch()); c != a {
		t.Fatalf("withKernelStamps(pipe) = %T, want the pipe unchanged", c)
	}
	if s := stampOf(a); s != nil {
		t.Fatalf("stampOf(pipe) = %v, want nil", s)
	}
}

func TestReadTime(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name  string
		stamp int64
		want  time.Time
		clk   Clock
	}{
		{"no stamp", 0, now, ClockUser},
		{"3 ms ago", now.UnixNano() - int64(3*time.Millisecond), now.Add(-3 * time.Millisecond), ClockKernel},
		{"clock step: an hour ago", now.Add(-time.Hour).UnixNano(), now, ClockUser},
		{"a hair in the future", now.UnixNano() + 1000, now, ClockKernel},
	}
	for _, c := range cases {
		got, clk := readTime(c.stamp, now, now.Add(-time.Second))
		if !got.Equal(c.want) || clk != c.clk {
			t.Errorf("%s: readTime = %v, %v; want %v, %v", c.name, got.Sub(now), clk, c.want.Sub(now), c.clk)
		}
	}
}

// cmsg builds one control message with data.
func cmsg(level, typ int32, data []byte) []byte {
	align := int(unsafe.Sizeof(uintptr(0)))
	l := syscall.SizeofCmsghdr + len(data)
	space := (l + align - 1) &^ (align - 1)
	b := make([]byte, space)
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(l)
	copy(b[syscall.SizeofCmsghdr:], data)
	return b
}

func TestParseStampNS(t *testing.T) {
	ts := make([]byte, unsafe.Sizeof(syscall.Timespec{}))
	binary.NativeEndian.PutUint64(ts[0:], 1_700_000_000)
	binary.NativeEndian.PutUint64(ts[8:], 123_456_789)
	const want = int64(1_700_000_000_123_456_789)
	stamp := cmsg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, ts)
	other := cmsg(syscall.SOL_IP, 8, []byte{1, 2, 3, 4})
	cases := []struct {
		name string
		oob  []byte
		want int64
	}{
		{"none", nil, 0},
		{"stamp", stamp, want},
		{"after another message", append(append([]byte{}, other...), stamp...), want},
		{"truncated stamp", stamp[:syscall.SizeofCmsghdr+4], 0},
		{"short header", stamp[:4], 0},
		{"other only", other, 0},
	}
	for _, c := range cases {
		if got := parseStampNS(c.oob); got != c.want {
			t.Errorf("%s: parseStampNS = %d, want %d", c.name, got, c.want)
		}
	}
}
