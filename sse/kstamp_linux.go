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
// the kernel's software receive timestamp of the newest segment whose bytes it returned (TCP
// reports one stamp per recvmsg, that of the last segment copied; segments that queued up
// behind each other are coalesced with the newest one's stamp). The stamp is taken in the
// receive path, before any goroutine runs, so the time a reader waited for the CPU is not
// in it.
//
// The stamp belongs to the bytes of that read. The HTTP transport's buffer is only refilled
// when empty, so the bytes a body read returns came from the latest read of the connection:
// its stamp is the one to use.
type stampConn struct {
	tc *net.TCPConn
	rc syscall.RawConn

	mu     sync.Mutex // one Read at a time uses the fields below
	iov    syscall.Iovec
	msg    syscall.Msghdr
	oob    [64]byte
	n      int
	oobn   int
	errno  syscall.Errno
	recvFn func(uintptr) bool

	stamp atomic.Int64 // Unix ns of the latest read's stamp, 0 = none
}

// withKernelStamps turns on SO_TIMESTAMPNS for a TCP connection and returns a conn whose reads
// record the stamp; anything else, or a socket refusing the option, is returned unchanged.
func withKernelStamps(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c
	}
	sc := &stampConn{tc: tc, rc: rc}
	sc.recvFn = sc.recv
	return sc
}

func (c *stampConn) lastStamp() int64 { return c.stamp.Load() }

// recv is the RawConn.Read callback: one recvmsg, false to wait for readability.
func (c *stampConn) recv(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
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
		return 0, io.EOF
	}
	c.stamp.Store(parseStampNS(c.oob[:c.oobn]))
	return c.n, nil
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

func (c *stampConn) Write(p []byte) (int, error)        { return c.tc.Write(p) }
func (c *stampConn) Close() error                       { return c.tc.Close() }
func (c *stampConn) LocalAddr() net.Addr                { return c.tc.LocalAddr() }
func (c *stampConn) RemoteAddr() net.Addr               { return c.tc.RemoteAddr() }
func (c *stampConn) SetDeadline(t time.Time) error      { return c.tc.SetDeadline(t) }
func (c *stampConn) SetReadDeadline(t time.Time) error  { return c.tc.SetReadDeadline(t) }
func (c *stampConn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }
