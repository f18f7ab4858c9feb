package sse

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	// sweepEvery is the least time between two sweeps of a watch: the bound on how late,
	// under load, it sees a segment (and at most 1/sweepEvery non-blocking epoll_wait calls
	// a second while a request is precise).
	sweepEvery = 200 * time.Microsecond
	// lateAfter is how late a read must be (its return after its bytes' kernel stamp) to
	// sweep: a worker whose reads all come sooner loses nothing to the kernel's merging
	// (a first token's stamp is off by at most its reader's delay), so it pays no sweeps.
	lateAfter = 250 * time.Microsecond
	// watchPeek bounds the bytes a sweep peeks per socket; a larger queue is seen up to it.
	watchPeek = 64 << 10
	// epollET is EPOLLET as an event mask (package syscall has it as a negative int).
	epollET = 1 << 31
)

// watch sees the receive queues of a transport's precise connections when their segments
// arrive, not when their readers come (see stampConn). It owns no goroutine: the reads of
// the transport's connections sweep it. Its epoll descriptor exists only while some
// connection is precise.
type watch struct {
	pending atomic.Int32 // connections in the set
	next    atomic.Int64 // Unix ns before which no sweep starts

	mu      sync.Mutex // guards the rest; a sweep holds it, other sweeps skip
	epfd    int
	conns   map[int32]*stampConn
	events  [32]syscall.EpollEvent
	scratch []byte
	iov     syscall.Iovec
	msg     syscall.Msghdr
	oob     [64]byte
	n, oobn int
	errno   syscall.Errno // the peek's error, other than EAGAIN
	peekFn  func(uintptr)
	sweeps  int // sweeps run (tests)
}

func newWatch() *watch {
	w := &watch{epfd: -1, conns: map[int32]*stampConn{}}
	w.peekFn = w.peek
	return w
}

// add puts c in the set (opening it if needed). On failure c is simply not watched.
func (w *watch) add(c *stampConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns[int32(c.fd)] == c {
		return
	}
	if w.epfd < 0 {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		w.epfd = fd
		w.scratch = make([]byte, watchPeek)
	}
	// Edge-triggered: an event per arrival, none for bytes that merely wait.
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | epollET, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		w.closeIfEmpty()
		return
	}
	w.conns[int32(c.fd)] = c
	w.pending.Add(1)
}

// remove takes c out of the set unless it became precise again (force: it is closing).
func (w *watch) remove(c *stampConn, force bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns[int32(c.fd)] != c || (!force && c.precise.Load() != 0) {
		return
	}
	_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	delete(w.conns, int32(c.fd))
	w.pending.Add(-1)
	w.closeIfEmpty()
}

func (w *watch) closeIfEmpty() {
	if len(w.conns) == 0 && w.epfd >= 0 {
		_ = syscall.Close(w.epfd)
		w.epfd, w.scratch = -1, nil
	}
}

// sweep peeks, without blocking, the watched sockets that received bytes since the last
// sweep. A read calls it with its bytes' stamp (0: none); it does nothing when that read was
// on time (less than lateAfter after its stamp), when a sweep ran less than sweepEvery ago,
// or when one runs now.
func (w *watch) sweep(stamp int64) {
	if w.pending.Load() == 0 {
		return
	}
	now := time.Now().UnixNano()
	if (stamp != 0 && now-stamp < int64(lateAfter)) || now < w.next.Load() || !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	w.next.Store(now + int64(sweepEvery))
	w.sweeps++
	if w.epfd < 0 {
		return
	}
	n, err := syscall.EpollWait(w.epfd, w.events[:], 0)
	if err != nil {
		return
	}
	for i := range n {
		if c := w.conns[w.events[i].Fd]; c != nil {
			w.see(c)
		}
	}
}

// see peeks c's whole receive queue (MSG_TRUNC: nothing is copied) and records its stamp
// with the queue's end. The count read is taken before the peek: bytes read meanwhile only
// make the recorded end smaller, which keeps the sighting true.
func (w *watch) see(c *stampConn) {
	before := c.consumed.Load()
	w.n, w.errno = 0, 0
	if err := c.rc.Control(w.peekFn); err != nil {
		return
	}
	if w.errno != 0 {
		// The peek took the socket's pending error (a reset, say): the kernel reports it
		// once. Keep it for the reader, whose next read would otherwise see a clean EOF.
		c.peekErr.CompareAndSwap(0, int32(w.errno))
		return
	}
	if w.n <= 0 {
		return
	}
	if st := parseStampNS(w.oob[:w.oobn]); st != 0 {
		c.seen.add(before+int64(w.n), st)
	}
}

func (w *watch) peek(fd uintptr) {
	w.iov.Base = &w.scratch[0]
	w.iov.SetLen(len(w.scratch))
	w.msg = syscall.Msghdr{Iov: &w.iov, Iovlen: 1, Control: &w.oob[0]}
	w.msg.SetControllen(len(w.oob))
	for {
		r, _, e := syscall.Syscall(syscall.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&w.msg)),
			syscall.MSG_PEEK|syscall.MSG_TRUNC|syscall.MSG_DONTWAIT)
		if e == syscall.EINTR {
			continue
		}
		switch e {
		case 0:
			w.n, w.oobn = int(r), int(w.msg.Controllen)
		case syscall.EAGAIN:
		default:
			w.errno = e
		}
		break
	}
	w.msg.Iov, w.msg.Control = nil, nil
}
