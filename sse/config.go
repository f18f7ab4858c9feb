package sse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"time"

	"github.com/difyload/difyload/sse/internal/h1"
)

// Defaults for zero Config and TransportConfig fields.
const (
	// DefaultMaxEventSize is Config.MaxEventSize's default: 8 MiB.
	DefaultMaxEventSize = 8 << 20
	// DefaultFirstTokenTimeout is Config.FirstTokenTimeout's default.
	DefaultFirstTokenTimeout = 60 * time.Second
	// DefaultIdleTimeout is Config.IdleTimeout's default (Dify pings every 10 s).
	DefaultIdleTimeout = 30 * time.Second
	// DefaultStreamTimeout is Config.StreamTimeout's default.
	DefaultStreamTimeout = 5 * time.Minute
	// DefaultMaxIdleConnsPerHost is TransportConfig.MaxIdleConnsPerHost's default.
	DefaultMaxIdleConnsPerHost = 10000
	// DefaultDialTimeout is TransportConfig.DialTimeout's default.
	DefaultDialTimeout = 10 * time.Second
)

// Config configures a Client. The zero value is usable: every zero field takes its default.
type Config struct {
	// Client sends the requests. nil means a client on NewTransport(TransportConfig{}).
	// Its Timeout should be 0: the timeouts below are enforced per request.
	Client *http.Client
	// MaxEventSize bounds the raw size of one SSE event (its lines and line endings) and of a
	// Post body. 0 means DefaultMaxEventSize (8 MiB). A larger event fails the stream with
	// "event too large" without being buffered.
	MaxEventSize int
	// FirstTokenTimeout bounds the time from the request start to the first non-empty answer
	// chunk. 0 means DefaultFirstTokenTimeout; negative disables it.
	FirstTokenTimeout time.Duration
	// IdleTimeout bounds the silence between reads of the body (Stream: from the response
	// headers on; Post: from the start). 0 means DefaultIdleTimeout; negative disables it.
	IdleTimeout time.Duration
	// StreamTimeout bounds the whole request. 0 means DefaultStreamTimeout; negative
	// disables it.
	StreamTimeout time.Duration
}

// Validate reports configuration errors. NewClient replaces invalid values by defaults.
func (c Config) Validate() error {
	if c.MaxEventSize < 0 {
		return fmt.Errorf("sse: MaxEventSize %d is negative", c.MaxEventSize)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxEventSize <= 0 {
		c.MaxEventSize = DefaultMaxEventSize
	}
	if c.FirstTokenTimeout == 0 {
		c.FirstTokenTimeout = DefaultFirstTokenTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.StreamTimeout == 0 {
		c.StreamTimeout = DefaultStreamTimeout
	}
	return c
}

// TransportConfig configures NewTransport. The zero value is usable.
type TransportConfig struct {
	// MaxIdleConnsPerHost is the keep-alive pool size per host. 0 means
	// DefaultMaxIdleConnsPerHost (10000). Go's default of 2 makes most of thousands of
	// concurrent users redial for every request.
	MaxIdleConnsPerHost int
	// InsecureSkipVerify disables TLS certificate verification (verification is on by
	// default).
	InsecureSkipVerify bool
	// RootCAs, if set, replaces the system roots for TLS verification.
	RootCAs *x509.CertPool
	// DialTimeout bounds the TCP dial. 0 means DefaultDialTimeout (10s).
	DialTimeout time.Duration
	// UserClock turns off kernel receive timestamps (SO_TIMESTAMPNS, Linux): every time is
	// then time.Now when a read returned (Result.Clock is ClockUser).
	UserClock bool
	// NetHTTP sends every request with the standard net/http Transport instead of the lean
	// HTTP/1.1 one (package sse/internal/h1), e.g. to compare the two.
	NetHTTP bool
}

// Transport is the RoundTripper NewTransport returns: the lean HTTP/1.1 transport, which runs
// each request on the caller's goroutine with no goroutine or read buffer per idle
// connection, in front of a standard *http.Transport (embedded, with the settings below) that
// takes what the lean one does not do (a proxy, a body of unknown length, Expect, another
// scheme) and every request when TransportConfig.NetHTTP is set.
type Transport struct {
	*http.Transport
	lean *h1.Transport // nil with NetHTTP
	// stampsFD is the socket that keeps the kernel's receive timestamps on for the
	// transport's life (-1: none; closed when the Transport is collected), stampsOn whether
	// they were on when NewTransport returned (see keepStampsOn).
	stampsFD int
	stampsOn bool
}

// RoundTrip sends req on the lean transport (or the standard one with NetHTTP).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.lean != nil {
		return t.lean.RoundTrip(req)
	}
	return t.Transport.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *Transport) CloseIdleConnections() {
	if t.lean != nil {
		t.lean.CloseIdleConnections()
	}
	t.Transport.CloseIdleConnections()
}

// NewTransport returns a Transport tuned for many concurrent long-lived streams to few
// hosts: keep-alive with a large per-host idle pool and no global idle limit, HTTP/1.1 only
// (no HTTP/2 upgrade, neither on plain http nor over TLS, so each user has its own
// connection as with Locust's HTTP/1.1 clients), no transparent gzip (byte counts are wire
// bytes), and TLS verification unless InsecureSkipVerify. Proxies come from the environment
// like http.DefaultTransport (a request with a proxy goes through the standard transport).
// Unless UserClock, it holds kernel receive timestamps on while the Transport lives and
// waits (at most 100 ms, normally well under one) until the kernel stamps (doc.go, "Receive
// times"). Share one Transport per process.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	dial := dialer.DialContext
	if !cfg.UserClock {
		dial = dialStamped(dial)
	}
	std := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		ForceAttemptHTTP2:     false,
		Protocols:             &protocols,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.DialTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		// Requests are small (a chat body is a few hundred bytes); Go's default 4 KiB write
		// buffer per connection is most of what an open stream costs after the stacks.
		WriteBufferSize: 1 << 10,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // opt-in for test targets
			RootCAs:            cfg.RootCAs,
			MinVersion:         tls.VersionTLS12,
		},
	}
	t := &Transport{Transport: std, stampsFD: -1}
	if !cfg.UserClock {
		t.stampsFD, t.stampsOn = keepStampsOn()
		if t.stampsFD >= 0 {
			runtime.AddCleanup(t, releaseStamps, t.stampsFD)
		}
	}
	if !cfg.NetHTTP {
		t.lean = h1.New(h1.Config{
			// Through the standard transport's field, read at each dial, so one DialContext
			// (set here, or replaced before first use) serves both.
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return std.DialContext(ctx, network, addr)
			},
			TLS:                 std.TLSClientConfig,
			MaxIdleConnsPerHost: cfg.MaxIdleConnsPerHost,
			IdleConnTimeout:     std.IdleConnTimeout,
			TLSHandshakeTimeout: std.TLSHandshakeTimeout,
			Proxy: func(r *http.Request) (*url.URL, error) {
				if std.Proxy == nil {
					return nil, nil
				}
				return std.Proxy(r)
			},
			Fallback: std,
		})
	}
	return t
}
