//go:build !linux

package sse

import "net"

// withKernelStamps returns c unchanged: kernel receive timestamps are read on Linux only.
func withKernelStamps(c net.Conn) net.Conn { return c }
