package sse

import (
	"context"
	"crypto/tls"
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
	// (SO_TIMESTAMPNS): until the first answer token, of the segment that completed each
	// event; after it, of the newest segment a read returned (see doc.go, "Receive times").
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
	// lastStamp is the receive time (Unix ns) of the bytes the latest read returned: of the
	// newest segment it touched, or earlier where a watch saw its last byte queued sooner
	// (see stampConn); 0 if the kernel gave none.
	lastStamp() int64
	// beginPrecise turns on precise reads for a new request (each read ends at the first
	// possible end of an SSE event, so an event's time is that of the segment completing
	// it) and returns the request's ticket, 0 if the connection has no precise reads.
	beginPrecise() uint64
	// endPrecise turns precise reads off if ticket is still the current one: a connection
	// can already serve the next request when the previous one ends.
	endPrecise(ticket uint64)
}

// stampOf finds the stamper under an HTTP connection, or nil. Under TLS the stamps are
// kept but reads are not made precise: event boundaries are invisible in the ciphertext.
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

// tlsStamps is a stamper under TLS: stamps as the connection reads them, no precise reads.
type tlsStamps struct{ s stamper }

func (t tlsStamps) lastStamp() int64   { return t.s.lastStamp() }
func (tlsStamps) beginPrecise() uint64 { return 0 }
func (tlsStamps) endPrecise(uint64)    {}

// readTime is when the bytes a read just returned arrived: the kernel's stamp (wall clock)
// placed on anchor's monotonic clock, or now. One anchor per request keeps equal stamps equal
// and the request's kernel times ordered.
func readTime(s stamper, now, anchor time.Time) (time.Time, Clock) {
	if s == nil {
		return now, ClockUser
	}
	ns := s.lastStamp()
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

// readNow is the time of the bytes the connection's latest read returned (see readTime); it
// notes the clock used.
func (rn *run) readNow() time.Time {
	t, clk := readTime(rn.stamps, time.Now(), rn.anchor)
	rn.clock |= clk
	return t
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

// endPrecise turns the request's precise reads off: at its first answer token, and when it
// ends or drains.
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
