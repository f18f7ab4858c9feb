//go:build goczmq

package worker

/*
#cgo pkg-config: libczmq libzmq
#include <czmq.h>
#include <zmq.h>

// dl_monitor starts a libzmq socket monitor on a CZMQ zsock_t (goczmq at
// a7546843a315 has no monitor API). Returns -2 if p is not a zsock_t.
static int dl_monitor(void *p, const char *addr, int events) {
	if (p == NULL || !zsock_is(p)) return -2;
	return zmq_socket_monitor(zsock_resolve(p), addr, events);
}

static int dl_monitor_stop(void *p) {
	if (p == NULL || !zsock_is(p)) return -2;
	return zmq_socket_monitor(zsock_resolve(p), NULL, 0);
}
*/
import "C"

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/zeromq/goczmq"
)

// ZeroMQ options, as Locust sets them on both sides.
const (
	zmqTCPKeepalive     = 1
	zmqTCPKeepaliveIdle = 30
	zmqSendQueue        = 4096 // frames buffered between the protocol loop and the owner
	zmqFlushWait        = 100 * time.Millisecond
	// zmqBusyGoroutines, zmqBusyCheck and zmqBusyMax: with more goroutines than this (users
	// are running; an idle worker has about 15), the owner also checks ZMQ_EVENTS and
	// flushes the send queue on a timer, and a send no longer wakes it. The timer starts at
	// zmqBusyCheck and doubles, up to zmqBusyMax, after every tick that found nothing to do
	// (no frame queued, ZMQ_FD not readable: the waiters kept up); a tick that found work
	// sets it back to zmqBusyCheck. A worker on time thus wakes about 20 times a second for
	// it (a fixed 2 ms cost 500 wake-ups a second, 0.08 CPU-ms per stream at 150 users on
	// this VM: bench/README.md); a starved one is checked every 2 ms. A goroutine that another one
	// wakes goes into the scheduler's "run next" slot and is pushed to the back of the run
	// queue by the next wake-up or go statement on that P (the protocol loop sends
	// "spawning", then starts thousands of users); a goroutine woken by its own timer runs
	// next. When a ramp saturated the worker (2,000 users/s to 19,500: 16,000 runnable
	// goroutines), waking only on sends and on ZMQ_FD left master messages unread for 3-4 s
	// and the master dropped the worker as missing; with this timer every spawn was handled
	// on time (bench/run.sh, memory step). Idle, no timer runs.
	zmqBusyGoroutines = 64
	zmqBusyCheck      = 2 * time.Millisecond
	zmqBusyMax        = 64 * time.Millisecond
)

// zmqConn is a goczmq DEALER owned by one goroutine, plus a libzmq socket
// monitor on an inproc PAIR that reports connects and disconnects. The
// protocol loop talks to it via channels.
//
// The owner never blocks inside cgo and, idle, never polls on a timer: it
// sleeps in a select on the send queue, the quit channel and one fdWaiter
// per socket (ZMQ_FD in Go's network poller), and after every wake-up, send
// and receive it reads ZMQ_EVENTS and receives until no message is waiting.
// While users run it wakes on a timer (2 to 64 ms) instead of on sends (see
// zmqBusyCheck why).
// Every libzmq call is non-blocking (ZMQ_DONTWAIT, or a receive that
// ZMQ_EVENTS said is ready), so a user goroutine never waits for the owner's
// thread. libzmq allows a socket to move between threads with a full memory
// barrier, which the Go scheduler provides, so the goroutine is not locked
// to a thread.
//
// Sending uses ZMQ_IMMEDIATE=1 and ZMQ_DONTWAIT: while no master is
// connected frames are dropped instead of queued. Queued frames would be
// flushed to whatever master connects next, and a spawning or
// spawning_complete from a node a (restarted) master doesn't know kills
// the listener of masters ≤ 2.46.3.
type zmqConn struct {
	log    *slog.Logger
	out    chan []byte
	in     chan inbound
	quit   chan time.Duration
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	closed bool
	// wakes counts the owner loop's wake-ups (tests: nothing polls while idle).
	wakes atomic.Int64
}

// zmqDial creates the DEALER, its monitor and connects to ep.
func zmqDial(ctx context.Context, ep endpoint, id string, log *slog.Logger) (conn, error) {
	c := &zmqConn{
		log:  log,
		out:  make(chan []byte, zmqSendQueue),
		in:   make(chan inbound, 64),
		quit: make(chan time.Duration, 1),
		done: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go c.own(ep, id, ready)
	select {
	case err := <-ready:
		if err != nil {
			<-c.done
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.closeConn(0)
		return nil, ctx.Err()
	}
}

func (c *zmqConn) send(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errConnClosed
	}
	select {
	case c.out <- frame:
		return nil
	default:
		return errQueueFull
	}
}

func (c *zmqConn) recv() <-chan inbound { return c.in }

func (c *zmqConn) close(linger time.Duration) { c.closeConn(linger) }

func (c *zmqConn) closeConn(linger time.Duration) {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.quit <- linger
	})
	<-c.done
}

// zsockPointer returns goczmq's private zsock_t pointer. goczmq is pinned
// (a7546843a315) and the field is checked with zsock_is before use.
func zsockPointer(s *goczmq.Sock) unsafe.Pointer {
	f := reflect.ValueOf(s).Elem().FieldByName("zsockT")
	if !f.IsValid() || f.Kind() != reflect.Pointer {
		return nil
	}
	return f.UnsafePointer()
}

// own is the socket-owning goroutine.
func (c *zmqConn) own(ep endpoint, id string, ready chan<- error) {
	defer close(c.done)
	defer close(c.in)

	opts := []goczmq.SockOption{
		goczmq.SockSetIdentity(id),
		goczmq.SockSetTcpKeepalive(zmqTCPKeepalive),
		goczmq.SockSetTcpKeepaliveIdle(zmqTCPKeepaliveIdle),
		goczmq.SockSetImmediate(1),
		goczmq.SockSetLinger(0),
	}
	if ep.ipv6 {
		opts = append(opts, goczmq.SockSetIpv6(1))
	}
	sock := goczmq.NewSock(goczmq.Dealer, opts...)
	sp := zsockPointer(sock)
	if sp == nil {
		ready <- errors.New("zeromq: could not create DEALER socket")
		return
	}

	monAddr := fmt.Sprintf("inproc://difyload-monitor-%p", c)
	cAddr := C.CString(monAddr)
	rc := C.dl_monitor(sp, cAddr, C.ZMQ_EVENT_HANDSHAKE_SUCCEEDED|C.ZMQ_EVENT_DISCONNECTED|C.ZMQ_EVENT_CONNECT_RETRIED)
	C.free(unsafe.Pointer(cAddr))
	var mon *goczmq.Sock
	if rc == 0 {
		mon = goczmq.NewSock(goczmq.Pair)
		if err := mon.Connect(monAddr); err != nil {
			mon.Destroy()
			mon = nil
		}
	}
	if mon == nil {
		c.log.Warn("zeromq socket monitor unavailable: a restarted 2.12.1 master will not be detected")
	}

	fail := func(err error, ws ...*fdWaiter) {
		for _, w := range ws {
			w.stop()
		}
		c.stopMonitor(sp, mon)
		sock.Destroy()
		ready <- err
	}
	if err := sock.Connect(ep.String()); err != nil {
		fail(fmt.Errorf("zeromq connect %s: %w", ep, err))
		return
	}
	sockW, err := newFDWaiter(goczmq.Fd(sock))
	if err != nil {
		fail(err)
		return
	}
	var monW *fdWaiter
	var monReady, monExited <-chan struct{}
	sockFD, monFD := goczmq.Fd(sock), -1
	if mon != nil {
		monFD = goczmq.Fd(mon)
		if monW, err = newFDWaiter(monFD); err != nil {
			fail(err, sockW)
			return
		}
		monReady, monExited = monW.ready, monW.exited
	}
	ready <- nil

	sendOne := func(f []byte) {
		if err := sock.SendFrame(f, goczmq.FlagDontWait); err != nil {
			c.log.Debug("zeromq send dropped (no master connected?)", "err", err, "bytes", len(f))
		}
	}
	sendAll := func() (sent bool) {
		for {
			select {
			case f := <-c.out:
				sendOne(f)
				sent = true
			default:
				return sent
			}
		}
	}
	shutdown := func(linger time.Duration) {
		sendAll()
		sockW.stop()
		if monW != nil {
			monW.stop()
		}
		c.stopMonitor(sp, mon)
		sock.SetOption(goczmq.SockSetLinger(int(linger / time.Millisecond)))
		sock.Destroy()
		if linger > 0 {
			// zmq_close returns at once and libzmq's I/O thread flushes in
			// the background; give it a moment before the process may exit,
			// so a final stats and quit reach the master.
			time.Sleep(min(linger, zmqFlushWait))
		}
	}
	deliver := func(in inbound) bool {
		select {
		case c.in <- in:
			return true
		case linger := <-c.quit:
			shutdown(linger)
			return false
		}
	}
	// drain receives every waiting message of s. ZMQ_EVENTS is read before
	// each receive, which also re-arms ZMQ_FD.
	drain := func(s *goczmq.Sock, fromMaster bool) bool {
		for goczmq.Events(s)&goczmq.Pollin != 0 {
			msg, err := s.RecvMessage()
			if err != nil || len(msg) == 0 {
				// Not seen in practice; the next edge or send checks again.
				c.log.Debug("zeromq receive failed although ZMQ_EVENTS said POLLIN", "err", err)
				return true
			}
			var in inbound
			if fromMaster {
				if len(msg) > 1 {
					c.log.Debug("multi-frame message from master; using the last frame", "frames", len(msg))
				}
				in.frame = msg[len(msg)-1]
			} else if in.event = monitorEvent(msg); in.event == evNone {
				continue
			}
			if !deliver(in) {
				return false
			}
		}
		return true
	}

	var busy *time.Timer
	var busyC <-chan time.Time
	busyEvery := zmqBusyCheck
	defer func() {
		if busy != nil {
			busy.Stop()
		}
	}()
	checkSock, checkMon := true, mon != nil
	for {
		// Read ZMQ_EVENTS and receive: at start, after a token of the
		// socket's waiter, after every send (a send can consume the edge of a
		// message that arrived) and when ZMQ_FD is readable at a busy tick.
		if checkSock && !drain(sock, true) {
			return
		}
		if checkMon && !drain(mon, false) {
			return
		}
		checkSock, checkMon = false, false
		outC := c.out
		switch {
		case runtime.NumGoroutine() > zmqBusyGoroutines:
			if busy == nil {
				busy = time.NewTimer(busyEvery)
			} else {
				busy.Reset(busyEvery)
			}
			busyC, outC = busy.C, nil
		case busy != nil:
			busy.Stop()
			busyC, busyEvery = nil, zmqBusyCheck // a next ramp starts checking often
		}
		select {
		case <-busyC:
			checkSock = sendAll() || fdReadable(sockFD)
			checkMon = mon != nil && fdReadable(monFD)
			busyEvery = nextBusyCheck(busyEvery, checkSock || checkMon)
		case f := <-outC:
			sendOne(f)
			sendAll()
			checkSock = true
		case <-sockW.ready:
			checkSock = true
		case <-monReady:
			checkMon = true
		case <-sockW.exited:
			c.log.Error("zeromq: waiting on the master socket failed", "err", sockW.unexpected())
			shutdown(0)
			return
		case <-monExited:
			c.log.Error("zeromq: waiting on the monitor socket failed", "err", monW.unexpected())
			shutdown(0)
			return
		case linger := <-c.quit:
			shutdown(linger)
			return
		}
		c.wakes.Add(1)
	}
}

func (c *zmqConn) stopMonitor(sp unsafe.Pointer, mon *goczmq.Sock) {
	if mon == nil {
		return
	}
	C.dl_monitor_stop(sp)
	mon.Destroy()
}

// monitorEvent decodes a libzmq monitor message: frame 1 is a uint16 event
// and a uint32 value (native byte order), frame 2 the endpoint.
func monitorEvent(msg [][]byte) peerEvent {
	if len(msg[0]) < 6 {
		return evNone
	}
	switch uint32(binary.NativeEndian.Uint16(msg[0][:2])) {
	case C.ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
		return evConnected
	case C.ZMQ_EVENT_DISCONNECTED:
		return evDisconnected
	case C.ZMQ_EVENT_CONNECT_RETRIED:
		return evRetried
	}
	return evNone
}

// nextBusyCheck is the busy timer's next interval after a tick that found work or not.
func nextBusyCheck(every time.Duration, work bool) time.Duration {
	if work {
		return zmqBusyCheck
	}
	return min(2*every, zmqBusyMax)
}
