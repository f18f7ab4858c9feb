package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// peerEvent is a connection-level event reported by a transport.
type peerEvent int

const (
	evNone peerEvent = iota
	// evConnected: a session with a master was established (ZMTP handshake
	// done, or TCP connected where the handshake event is unavailable).
	evConnected
	// evDisconnected: an established session was lost.
	evDisconnected
	// evRetried: a connection attempt is scheduled again (libzmq's
	// CONNECT_RETRIED): once after every disconnect, and once more after
	// every attempt that was refused or timed out.
	evRetried
)

func (e peerEvent) String() string {
	switch e {
	case evConnected:
		return "connected"
	case evDisconnected:
		return "disconnected"
	case evRetried:
		return "retried"
	}
	return "none"
}

// inbound is one thing a transport delivers: a frame or a peer event.
type inbound struct {
	frame []byte
	event peerEvent
}

// conn is one DEALER connection to the master. Implementations own their
// socket in a single goroutine (libzmq sockets are not thread safe); the
// protocol loop talks to it only through these methods.
type conn interface {
	// send queues one frame without blocking. It fails if the queue is
	// full or the conn is closed; the frame is then dropped.
	send(frame []byte) error
	// recv delivers inbound frames and events. It is closed after close.
	recv() <-chan inbound
	// close tries to deliver queued frames for up to linger, releases the
	// socket and waits for the owner goroutine to exit.
	close(linger time.Duration)
}

// dialer opens a conn with ZeroMQ identity id.
type dialer func(ctx context.Context, ep endpoint, id string, log *slog.Logger) (conn, error)

// endpoint is where the master listens.
type endpoint struct {
	host string // without brackets
	port int
	ipv6 bool // enable ZMQ_IPV6
}

// String is the ZeroMQ endpoint, tcp://host:port or tcp://[v6]:port.
func (e endpoint) String() string {
	return "tcp://" + net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

// resolveEndpoint builds the endpoint for host:port. ZMQ_IPV6 is enabled
// for an IPv6 literal, or for a name that resolves only to IPv6 addresses.
func resolveEndpoint(ctx context.Context, host string, port int) endpoint {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	ep := endpoint{host: h, port: port}
	if ip := net.ParseIP(h); ip != nil {
		ep.ipv6 = ip.To4() == nil
		return ep
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(lctx, h)
	if err != nil || len(ips) == 0 {
		return ep
	}
	ep.ipv6 = true
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			ep.ipv6 = false
		}
	}
	return ep
}

// ErrNoZeroMQ is returned (wrapped) by Worker.Run in binaries built
// without the goczmq build tag.
var ErrNoZeroMQ = errors.New("difyload was built without -tags goczmq; ZeroMQ transport unavailable")

var errConnClosed = errors.New("connection closed")

var errQueueFull = errors.New("send queue full")
