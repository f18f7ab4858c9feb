package h1

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"time"
)

// conn is one connection to a host. It is used by one request at a time; between requests
// it sits in its pool with no goroutine and no read buffer.
type conn struct {
	nc     net.Conn  // what requests read and write: the TLS conn or the TCP one
	tls    *tls.Conn // nil for http
	key    key
	idleAt time.Time
	reused bool
	rd     reader // holds a pooled buffer only while bytes are unread
}

// pastDeadline is a deadline in the past: it fails every blocked and future I/O at once.
func pastDeadline() time.Time { return time.Unix(1, 0) }

// interrupt is the request context's AfterFunc: it unblocks the reader or writer. The
// connection is closed afterwards by whoever holds it.
func (c *conn) interrupt() { _ = c.nc.SetDeadline(pastDeadline()) }

func (c *conn) close() { _ = c.nc.Close() }

// alive reports whether an idle connection is still open and silent (see alive_*.go).
func (c *conn) alive() bool { return peekAlive(c.nc) }

// dial opens a connection for k: TCP through Config.Dial, then TLS for https.
func (t *Transport) dial(ctx context.Context, k key, trace *httptrace.ClientTrace) (*conn, error) {
	if trace != nil && trace.ConnectStart != nil {
		trace.ConnectStart("tcp", k.addr)
	}
	nc, err := t.cfg.Dial(ctx, "tcp", k.addr)
	if trace != nil && trace.ConnectDone != nil {
		trace.ConnectDone("tcp", k.addr, err)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, key: k}
	c.rd.t, c.rd.nc = t, nc
	if !k.https {
		return c, nil
	}
	cfg := t.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(k.addr)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(nc, cfg)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	// The handshake is bounded by a deadline and by ctx through an AfterFunc, not by
	// HandshakeContext's watcher goroutine.
	_ = nc.SetDeadline(time.Now().Add(t.cfg.TLSHandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(pastDeadline()) })
	err = tc.Handshake() //nolint:noctx // ctx ends it through the AfterFunc above, without HandshakeContext's goroutine
	fired := !stop()
	if err == nil {
		_ = nc.SetDeadline(time.Time{})
		if fired || ctx.Err() != nil {
			err = context.Cause(ctx)
		}
	}
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.nc, c.tls, c.rd.nc = tc, tc, tc
	return c, nil
}
