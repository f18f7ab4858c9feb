package sse

import (
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// firstReadStamped opens a loopback TCP pair, turns on SO_TIMESTAMPNS on one end, sends it
// one byte at once and reports whether that first read carried a kernel stamp. Both ends
// are closed before it returns, so with nothing else holding timestamps on, the kernel
// switches them off again (asynchronously) after each call.
func firstReadStamped(t *testing.T) bool {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	s, err := ln.AcceptTCP()
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	sc, ok := withKernelStamps(c, nil).(*stampConn)
	require.True(t, ok)
	b := []byte{1}
	_, err = s.Write(b)
	require.NoError(t, err)
	_, err = sc.Read(b)
	require.NoError(t, err)
	return sc.stamp.Load() != 0
}

// While a Transport lives, a connection's first segment is stamped even when it is the only
// stamped connection and every one before it was closed: without the transport's held
// socket, 20-50 % of these first reads had no stamp on this kernel (run this test alone to
// see it: in the package run, other tests' idle connections also hold timestamps on).
func TestTransportKeepsStampsOn(t *testing.T) {
	tr := NewTransport(TransportConfig{})
	require.GreaterOrEqual(t, tr.stampsFD, 0, "a socket holds timestamps on")
	require.True(t, tr.stampsOn, "stamps were on when NewTransport returned")
	v, err := syscall.GetsockoptInt(tr.stampsFD, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS)
	require.NoError(t, err)
	require.Equal(t, 1, v)

	unstamped := 0
	for range 40 {
		if !firstReadStamped(t) {
			unstamped++
		}
		time.Sleep(10 * time.Millisecond) // time for the kernel's deferred switch-off, were nothing held
	}
	require.Zero(t, unstamped, "first reads without a kernel stamp while the transport lives")
	runtime.KeepAlive(tr)

	user := NewTransport(TransportConfig{UserClock: true})
	require.Equal(t, -1, user.stampsFD, "UserClock holds nothing")
	require.False(t, user.stampsOn)
}
