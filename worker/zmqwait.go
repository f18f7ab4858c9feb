//go:build goczmq

package worker

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// fdWaiter turns readiness of a libzmq socket's ZMQ_FD into tokens on a
// channel, waiting inside Go's network poller (epoll on Linux): an idle
// socket costs no wakeups and no thread blocked in cgo.
//
// ZMQ_FD is edge-triggered: it becomes readable when the socket's command
// mailbox gets something, and reading ZMQ_EVENTS (or sending or receiving)
// drains it. It says nothing about whether a message is waiting. So a token
// only means "check ZMQ_EVENTS now"; the owner must check after every token
// and after every send and receive of its own.
//
// The waiter stays in a single RawConn.Read call for its whole life: each
// callback sends a token and reports "not done", and Read waits for the next
// edge. The runtime keeps an edge that arrives while the callback runs (the
// poll descriptor stays ready), so no edge is lost between two waits, and a
// token that is already pending is enough because the owner checks after
// taking it.
type fdWaiter struct {
	f      *os.File
	ready  chan struct{} // capacity 1: "check ZMQ_EVENTS"
	exited chan struct{} // closed when the waiting goroutine returns
	err    error         // why Read returned; read after exited
}

// newFDWaiter waits on a duplicate of fd, so closing the waiter never closes
// libzmq's own descriptor (and libzmq closing its own never leaves the
// poller with a reused number). The duplicate shares the open file
// description, hence its readiness.
func newFDWaiter(fd int) (*fdWaiter, error) {
	if fd < 0 {
		return nil, fmt.Errorf("zeromq: socket has no file descriptor (%d)", fd)
	}
	d, err := dupCloexec(fd)
	if err != nil {
		return nil, fmt.Errorf("zeromq: dup ZMQ_FD: %w", err)
	}
	// The poller only takes descriptors in non-blocking mode. libzmq's
	// signaler already is; this only makes it explicit (the flag is shared).
	if err := syscall.SetNonblock(d, true); err != nil {
		syscall.Close(d)
		return nil, fmt.Errorf("zeromq: non-blocking ZMQ_FD: %w", err)
	}
	f := os.NewFile(uintptr(d), "zmq-fd")
	// A descriptor the poller could not take has no deadlines: fail loudly
	// rather than wait forever.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("zeromq: ZMQ_FD cannot be waited on in Go's poller: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("zeromq: ZMQ_FD raw conn: %w", err)
	}
	w := &fdWaiter{f: f, ready: make(chan struct{}, 1), exited: make(chan struct{})}
	go w.wait(rc)
	return w, nil
}

func (w *fdWaiter) wait(rc syscall.RawConn) {
	defer close(w.exited)
	w.err = rc.Read(func(uintptr) bool {
		select {
		case w.ready <- struct{}{}:
		default: // a token is pending: the owner checks after this edge anyway
		}
		return false
	})
}

// stop ends the waiting goroutine and closes the duplicate descriptor.
func (w *fdWaiter) stop() {
	w.f.Close()
	<-w.exited
}

// unexpected reports why the waiter stopped on its own (not through stop).
func (w *fdWaiter) unexpected() error {
	if w.err == nil || errors.Is(w.err, os.ErrClosed) {
		return errors.New("zeromq: fd waiter stopped")
	}
	return w.err
}

// dupCloexec duplicates fd with close-on-exec set atomically.
func dupCloexec(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
