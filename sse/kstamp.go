package sse

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptrace"
	"time"
)

// Clock says where the times of a stream came from.
type Clock uint8

// Clock values. They are bits: a stream whose reads used both is ClockMixed.
const (
	// ClockNone: no body byte was read.
	ClockNone Clock = 0
	// ClockUser: every read was timed with time.Now when the read returned.
	ClockUser Clock = 1
	// ClockKernel: every read was timed with the kernel's software receive timestamp
	// (SO_TIMESTAMPNS): of the newest segment a connection read returned, or until the first
	// answer token the watch's earlier one of the body read's last byte (see doc.go,
	// "Receive times").
	ClockKernel Clock = 2
	// ClockMixed: some reads had a kernel timestamp and some did not.
	ClockMixed = ClockUser | ClockKernel
)

// String is the name written to the request log: "kernel", "user", "mixed" or "".
func (c Clock) String() string {
	switch c {
	case ClockUser:
		return "user"
	case ClockKernel:
		return "kernel"
	case ClockMixed:
		return "mixed"
	}
	return ""
}

// maxStampLag bounds how far a kernel timestamp may lie before the read that returned it; a
// larger lag (a clock step) falls back to the user clock.
const maxStampLag = time.Minute

// stamper is a connection that knows the kernel receive time of its latest read.
type stamper interface {
	// stampAt is the receive time (Unix ns) of the byte unread bytes before the end of what
	// the connection has read (unread: what the HTTP reader above still buffers): the
	// stamp of the newest segment the latest read touched, or earlier where a watch saw
	// that byte queued sooner (see stampConn); 0 if the kernel gave none.
	stampAt(unread int) int64
	// beginPrecise puts the connection in its transport's watch for a new request (so the
	// arrival of each of its segments is seen even when its reader is late) and returns the
	// request's ticket, 0 if the connection has no watch.
	beginPrecise() uint64
	// endPrecise takes the connection out of the watch if ticket is still the current one:
	// a connection can already serve the next request when the previous one ends.
	endPrecise(ticket uint64)
}

// stampOf finds the stamper under an HTTP connection, or nil. Under TLS the stamps are
// kept but the connection is never watched: the plaintext's offsets are not the socket's.
func stampOf(c net.Conn) stamper {
	if tc, ok := c.(*tls.Conn); ok {
		if s, ok := tc.NetConn().(stamper); ok {
			return tlsStamps{s}
		}
		return nil
	}
	s, _ := c.(stamper)
	return s
}

// tlsStamps is a stamper under TLS: the stamp of the connection's latest read, no watch.
type tlsStamps struct{ s stamper }

func (t tlsStamps) stampAt(int) int64  { return t.s.stampAt(0) }
func (tlsStamps) beginPrecise() uint64 { return 0 }
func (tlsStamps) endPrecise(uint64)    {}

// readTime is when the bytes a read just returned arrived: the kernel's stamp ns (wall
// clock, 0 for none) placed on anchor's monotonic clock, or now. One anchor per request keeps
// equal stamps equal and the request's kernel times ordered.
func readTime(ns int64, now, anchor time.Time) (time.Time, Clock) {
	if ns == 0 {
		return now, ClockUser
	}
	lag := time.Duration(now.UnixNano() - ns)
	switch {
	case lag < 0:
		return now, ClockKernel // stamped and read within the clocks' resolution
	case lag > maxStampLag:
		return now, ClockUser
	}
	return anchor.Add(time.Duration(ns - anchor.UnixNano())), ClockKernel
}

// readNow is the time of the last byte the body's latest read returned (see readTime): the
// kernel's stamp of that byte of the connection, found through what the HTTP reader still
// buffers. It notes the clock used.
func (rn *run) readNow() time.Time {
	var ns int64
	if rn.stamps != nil {
		unread := 0
		if rn.unread != nil {
			unread = rn.unread.Buffered()
		}
		ns = rn.stamps.stampAt(unread)
	}
	t, clk := readTime(ns, time.Now(), rn.anchor)
	rn.clock |= clk
	return t
}

// bufferer is a response body that says how many bytes of its connection it has read but
// not returned yet (sse/internal/h1's); net/http's bodies do not.
type bufferer interface{ Buffered() int }

// gotBody notes how the body maps to its connection's bytes. A body that cannot say (Go's
// net/http transport) ends the request's watch at once: the watch's sightings are of the
// socket's offsets, which only a bufferer can relate to the body's bytes.
func (rn *run) gotBody(b io.ReadCloser) {
	rn.body = b
	rn.unread, _ = b.(bufferer)
	if rn.unread == nil {
		rn.endPrecise()
	}
}

// traceConn hooks rn to the connection the request gets.
func (rn *run) traceConn(ctx context.Context) context.Context {
	rn.anchor = time.Now()
	rn.trace.GotConn = rn.gotConn
	return httptrace.WithClientTrace(ctx, &rn.trace)
}

func (rn *run) gotConn(info httptrace.GotConnInfo) {
	rn.endPrecise() // a retry on another connection
	rn.stamps = stampOf(info.Conn)
	if rn.precise && rn.stamps != nil {
		rn.ticket = rn.stamps.beginPrecise()
	}
}

// endPrecise takes the request's connection out of the watch: at its first answer token,
// and when it ends or drains.
func (rn *run) endPrecise() {
	if rn.ticket != 0 {
		rn.stamps.endPrecise(rn.ticket)
		rn.ticket = 0
	}
}

// dialStamped wraps dial so TCP connections carry kernel receive timestamps where the system
// gives them. Its connections share one watch (see stampConn).
func dialStamped(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	w := newWatch()
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return withKernelStamps(c, w), nil
	}
}
