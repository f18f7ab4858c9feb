package h1

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
)

// peekAlive looks at an idle connection's socket without blocking: a server that closed it
// (EOF), reset it, or sent bytes nobody asked for makes it unusable. A connection without a
// reachable socket is assumed alive (a failed write on it is retried once).
func peekAlive(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var p peeker
	if err := rc.Control(p.peek); err != nil {
		return false
	}
	return p.alive
}

type peeker struct {
	b     [1]byte
	alive bool
}

func (p *peeker) peek(fd uintptr) {
	_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	p.alive = e == syscall.EAGAIN
}
