package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"
)

// Defaults for zero Config fields.
const (
	// DefaultMaxIdleConnsPerHost is Config.MaxIdleConnsPerHost's default.
	DefaultMaxIdleConnsPerHost = 100
	// DefaultIdleConnTimeout is Config.IdleConnTimeout's default.
	DefaultIdleConnTimeout = 90 * time.Second
	// DefaultMaxHeaderBytes is Config.MaxHeaderBytes's default.
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultTLSHandshakeTimeout is Config.TLSHandshakeTimeout's default.
	DefaultTLSHandshakeTimeout = 10 * time.Second
	// readBufSize is the pooled read buffer of a response in flight.
	readBufSize = 4 << 10
)

// Config configures a Transport. The zero value is usable.
type Config struct {
	// Dial opens TCP connections. nil means a net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS is the client TLS configuration for https (cloned per connection, ServerName set
	// from the URL when empty, ALPN "http/1.1" only). nil means the zero tls.Config.
	TLS *tls.Config
	// MaxIdleConnsPerHost bounds the keep-alive pool per host. 0 means
	// DefaultMaxIdleConnsPerHost; negative disables keep-alive.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes connections idle for longer. 0 means DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// MaxHeaderBytes bounds a response head (status line, headers, 1xx answers) and the
	// trailers. 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// TLSHandshakeTimeout bounds the TLS handshake. 0 means DefaultTLSHandshakeTimeout.
	TLSHandshakeTimeout time.Duration
	// Proxy picks a proxy for a request, like http.Transport.Proxy. A request with a proxy
	// goes to Fallback. nil means no proxy.
	Proxy func(*http.Request) (*url.URL, error)
	// Fallback sends the requests this transport does not (see the package documentation).
	// nil means such requests fail with ErrUnsupported.
	Fallback http.RoundTripper
}

// constError is an error that can be a constant.
type constError string

func (e constError) Error() string { return string(e) }

// ErrUnsupported is returned for a request the transport does not send and no Fallback takes.
const ErrUnsupported constError = "h1: request not supported by the lean transport and no fallback is set"

// ProtocolError is a response that is not valid HTTP/1.1.
type ProtocolError struct {
	// What says what was wrong, e.g. `malformed status line "HTTP/1.1 abc"`.
	What string
}

func (e *ProtocolError) Error() string { return "h1: " + e.What }

// Transport is the lean HTTP/1.1 RoundTripper. Create it with New; it is safe for concurrent
// use.
type Transport struct {
	cfg Config

	mu    sync.Mutex
	idle  map[key][]*conn // newest last
	nIdle int
	sweep *time.Timer // closes expired idle connections; armed while any is idle

	writeBufs sync.Pool // *[]byte
	readBufs  sync.Pool // *[readBufSize]byte
}

// New returns a Transport for cfg, with defaults for zero fields.
func New(cfg Config) *Transport {
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		cfg.Dial = d.DialContext
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.MaxIdleConnsPerHost == 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.TLSHandshakeTimeout <= 0 {
		cfg.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	return &Transport{cfg: cfg}
}

// supported reports whether RoundTrip sends req itself; the reason says why not.
func (t *Transport) supported(req *http.Request) (bool, string) {
	u := req.URL
	switch {
	case u == nil || u.Host == "":
		return false, "no host"
	case u.Scheme != "http" && u.Scheme != "https":
		return false, "scheme " + u.Scheme
	case req.Method == http.MethodConnect:
		return false, "CONNECT"
	case len(req.TransferEncoding) > 0:
		return false, "request transfer encoding"
	case req.Body != nil && req.Body != http.NoBody && req.ContentLength <= 0:
		return false, "body of unknown length"
	case req.Header.Get("Expect") != "":
		return false, "Expect header"
	case req.Header.Get("Upgrade") != "":
		return false, "Upgrade header"
	}
	if t.cfg.Proxy != nil {
		if p, err := t.cfg.Proxy(req); err != nil || p != nil {
			return false, "proxy"
		}
	}
	return true, ""
}

// RoundTrip sends req on a pooled or new connection and reads the response head. The body
// is read by the caller; closing it before its end closes the connection.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if ok, why := t.supported(req); !ok {
		if t.cfg.Fallback != nil {
			return t.cfg.Fallback.RoundTrip(req)
		}
		closeBody(req)
		return nil, fmt.Errorf("%w (%s)", ErrUnsupported, why)
	}
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	key := hostKey(req.URL)
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(key.addr)
	}
	buf, err := t.encode(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	defer t.putWriteBuf(buf)
	for attempt := 0; ; attempt++ {
		c, err := t.getConn(ctx, key, trace)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req, *buf, trace)
		if err == nil {
			return resp, nil
		}
		var we *writeError
		if errors.As(err, &we) && c.reused && attempt == 0 && ctx.Err() == nil {
			continue // the server closed an idle connection under us: one fresh try
		}
		return nil, err
	}
}

// exchange writes the request on c and reads the response head.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request, wire []byte, trace *httptrace.ClientTrace) (*http.Response, error) {
	stop := context.AfterFunc(ctx, c.interrupt)
	if _, err := c.nc.Write(wire); err != nil {
		stop()
		c.close()
		return nil, &writeError{err: err}
	}
	if trace != nil {
		if trace.WroteHeaders != nil {
			trace.WroteHeaders()
		}
		if trace.WroteRequest != nil {
			trace.WroteRequest(httptrace.WroteRequestInfo{})
		}
	}
	rd := &c.rd
	resp, b, err := t.readResponse(rd, req, trace)
	if err != nil {
		stop()
		rd.drop()
		c.close()
		return nil, err
	}
	rd.release() // a stream waiting for its first event holds no read buffer
	b.t, b.c, b.rd, b.stop, b.resp = t, c, rd, stop, resp
	if resp.TLS == nil && c.tls != nil {
		st := c.tls.ConnectionState()
		resp.TLS = &st
	}
	if b.mode == modeNone {
		b.finish(true)
		resp.Body = http.NoBody
	} else {
		resp.Body = b
	}
	return resp, nil
}

// CloseIdleConnections closes every idle connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nIdle = nil, 0
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.close()
		}
	}
}

// writeError is a failed request write; on a reused connection the request is retried once.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// key names a pool: scheme and host:port with the default port filled in.
type key struct {
	https bool
	addr  string // host:port to dial
}

// hostKey builds the pool key without allocating when the URL names its port.
func hostKey(u *url.URL) key {
	k := key{https: u.Scheme == "https", addr: u.Host}
	if u.Port() == "" {
		port := "80"
		if k.https {
			port = "443"
		}
		k.addr = net.JoinHostPort(u.Hostname(), port)
	}
	return k
}
