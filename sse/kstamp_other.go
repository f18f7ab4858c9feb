//go:build !linux

package sse

import "net"

// watch is Linux only (kstamp_watch_linux.go).
type watch struct{}

func newWatch() *watch { return nil }

// withKernelStamps returns c unchanged: kernel receive timestamps are read on Linux only.
func withKernelStamps(c net.Conn, _ *watch) net.Conn { return c }

// keepStampsOn holds nothing: kernel receive timestamps are read on Linux only.
func keepStampsOn() (fd int, on bool) { return -1, false }

func releaseStamps(int) {}
