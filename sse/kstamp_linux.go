package sse

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// stampConn is a TCP connection read with recvmsg(2) and SO_TIMESTAMPNS: every read returns
// the kernel's software receive timestamp of the newest segment whose bytes it returned. The
// stamp is taken in the receive path, before any goroutine runs, so the time a reader waited
// for the CPU is not in it.
//
// Two kernel facts bound what one stamp says (tcp_recvmsg_locked and tcp_try_coalesce in
// net/ipv4/tcp.c and tcp_input.c). A read reports one stamp: that of the last socket buffer
// it touched. And a segment that arrives while earlier ones still wait in the receive queue
// is merged into the queue's last buffer, which takes the newer stamp. So when the reader is
// late by more than the gap between two segments, no read can tell the first one's arrival
// any more: the stamp must be seen before the next segment arrives. The watch
// (kstamp_watch_linux.go) sees it: while a request is precise (until its first answer
// token), its socket is in an epoll set that the reads of the transport's other connections
// check when they find the worker running late. A socket with new bytes is peeked: the
// stamp of its queue then is an upper bound of the arrival of every queued byte, recorded
// with the queue's end offset (seen). Reads themselves are never cut short: one recvmsg of
// whatever is queued, as without the watch.
//
// stampAt answers for a byte offset, not for a whole read: the HTTP transport above reads
// ahead (several chunks of a response may come in one read) and hands the body out chunk by
// chunk, and it says how many bytes it still holds. A body read's time is the smaller of
// the latest read's stamp and the watch's sighting of the body read's last byte; both are
// upper bounds of that byte's arrival, so the smaller is the truer.
type stampConn struct {
	tc  *net.TCPConn
	rc  syscall.RawConn
	fd  int
	obs *watch // nil: no watch

	mu      sync.Mutex // one Read at a time uses the fields below
	iov     syscall.Iovec
	msg     syscall.Msghdr
	oob     [64]byte
	n, oobn int
	errno   syscall.Errno
	recvFn  func(uintptr) bool

	stamp    atomic.Int64  // Unix ns of the latest read's stamp, 0 = none
	consumed atomic.Int64  // bytes read so far
	precise  atomic.Uint64 // ticket of the precise request, 0 = none
	tickets  atomic.Uint64 // the last ticket given
	seen     seenStamps    // the watch's stamps of bytes not timed yet
	// peekErr is a socket error (errno) that a watch's peek took: the kernel reports a
	// pending error once, so the reader gets it from here instead of a clean EOF.
	peekErr atomic.Int32
}

// withKernelStamps turns on SO_TIMESTAMPNS for a TCP connection and returns a conn whose reads
// record the stamp; anything else, or a socket refusing the option, is returned unchanged.
// w (may be nil) watches its precise requests.
func withKernelStamps(c net.Conn, w *watch) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	fd := -1
	if err := rc.Control(func(f uintptr) {
		fd = int(f)
		serr = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	sc := &stampConn{tc: tc, rc: rc, fd: fd, obs: w}
	sc.recvFn = sc.recv
	return sc
}

func (c *stampConn) beginPrecise() uint64 {
	t := c.tickets.Add(1)
	c.precise.Store(t)
	if c.obs != nil {
		c.obs.add(c)
	}
	return t
}

func (c *stampConn) endPrecise(ticket uint64) {
	if c.precise.CompareAndSwap(ticket, 0) && c.obs != nil {
		c.obs.remove(c, false)
	}
}

// recv is the RawConn.Read callback: one recvmsg(2) of c.msg; false means EAGAIN (wait for
// readability). The socket is non-blocking, so the call is a raw one: it never blocks, and
// going around the runtime's entersyscall spares the wake-up of its monitor thread (sysmon)
// that a system call makes after the process was idle. On one core that monitor then
// polled every 20 µs for a while: 16.5 % of the worker's CPU at 450 fast users (perf), 9.9 %
// with raw reads (the floor's, on net's reads: 18 %).
func (c *stampConn) recv(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.n, c.oobn, c.errno = int(r), int(c.msg.Controllen), e
		return true
	}
}

// Read reads like net.TCPConn.Read and records the kernel stamp of the bytes read.
func (c *stampConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.iov.Base = &p[0]
	c.iov.SetLen(len(p))
	c.msg = syscall.Msghdr{Iov: &c.iov, Iovlen: 1, Control: &c.oob[0]}
	c.msg.SetControllen(len(c.oob))
	err := c.rc.Read(c.recvFn)
	c.iov.Base = nil
	c.msg.Iov, c.msg.Control = nil, nil
	if err != nil {
		return 0, c.opError(err)
	}
	if c.errno != 0 {
		return 0, c.opError(os.NewSyscallError("recvmsg", c.errno))
	}
	if c.n == 0 {
		if e := c.peekErr.Swap(0); e != 0 {
			return 0, c.opError(os.NewSyscallError("recvmsg", syscall.Errno(e)))
		}
		return 0, io.EOF
	}
	n := c.n
	c.consumed.Add(int64(n))
	st := parseStampNS(c.oob[:c.oobn])
	c.stamp.Store(st)
	if c.obs != nil {
		c.obs.sweep(st)
	}
	return n, nil
}

// stampAt is the receive time (Unix ns) of the byte unread bytes before the end of what the
// connection has read (unread: what the reader above still buffers), 0 if the kernel gave
// none: the latest read's stamp, or the watch's sighting of that byte where it is earlier.
// Offsets asked for must not decrease: sightings before the offset are dropped.
func (c *stampConn) stampAt(unread int) int64 {
	st := c.stamp.Load()
	if s := c.seen.upTo(c.consumed.Load() - int64(unread)); s != 0 && (st == 0 || s < st) {
		st = s
	}
	return st
}

func (c *stampConn) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.tc.LocalAddr(), Addr: c.tc.RemoteAddr(), Err: err}
}

// parseStampNS finds SCM_TIMESTAMPNS in the control messages, without allocating.
func parseStampNS(oob []byte) int64 {
	const hdr = syscall.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && l >= hdr+int(unsafe.Sizeof(syscall.Timespec{})) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&oob[hdr]))
			return ts.Nano()
		}
		next := (l + int(unsafe.Sizeof(uintptr(0))) - 1) &^ (int(unsafe.Sizeof(uintptr(0))) - 1)
		if next >= len(oob) {
			return 0
		}
		oob = oob[next:]
	}
	return 0
}

// Close leaves the watch before the socket is closed, so the watch never peeks a closed
// (or reused) descriptor.
func (c *stampConn) Close() error {
	c.precise.Store(0)
	if c.obs != nil {
		c.obs.remove(c, true)
	}
	return c.tc.Close()
}

// Write is net.TCPConn's: one write per request, and syscall.Write tells the race detector
// that what the peer reads next happened after it (a raw send would not).
func (c *stampConn) Write(p []byte) (int, error)        { return c.tc.Write(p) }
func (c *stampConn) LocalAddr() net.Addr                { return c.tc.LocalAddr() }
func (c *stampConn) RemoteAddr() net.Addr               { return c.tc.RemoteAddr() }
func (c *stampConn) SetDeadline(t time.Time) error      { return c.tc.SetDeadline(t) }
func (c *stampConn) SetReadDeadline(t time.Time) error  { return c.tc.SetReadDeadline(t) }
func (c *stampConn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }
