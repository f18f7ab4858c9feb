package sse

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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

	// stampsOn(0) is one try: a fresh loopback pair, SO_TIMESTAMPNS on one end, one byte sent
	// at once and read; both ends closed again, so with nothing else holding timestamps on
	// the kernel would switch them off (asynchronously) after each.
	unstamped := 0
	for range 40 {
		if !stampsOn(0) {
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
