package sse

import (
	"net"
	"syscall"
	"time"
)

// keepStampsWait bounds how long keepStampsOn waits for the kernel to start stamping.
const keepStampsWait = 100 * time.Millisecond

// keepStampsOn holds the kernel's receive timestamps on for as long as the returned socket
// is open, and returns once a fresh loopback TCP connection's first read carries one (or
// after keepStampsWait): on is false if none did, or if the socket could not be opened
// (fd -1).
//
// Linux stamps incoming packets only while some socket asks for it (netstamp_needed_key),
// and switches that on and off asynchronously: the first setsockopt(SO_TIMESTAMPNS) after
// none was set, and the last close, schedule a work item (net_enable_timestamp,
// net_disable_timestamp in net/core/dev.c). Without a socket that stays open, the first
// connections of a transport, and those after every connection had been closed, could get
// segments with no stamp and their streams would say "mixed" or "user". This UDP socket
// sends and receives nothing; it is only the request that stays.
func keepStampsOn() (fd int, on bool) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		_ = syscall.Close(fd)
		return -1, false
	}
	return fd, stampsOn(keepStampsWait)
}

// stampsOn reports whether a loopback TCP segment gets a kernel receive timestamp, trying
// every millisecond until one does or wait has passed.
func stampsOn(wait time.Duration) bool {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer func() { _ = ln.Close() }()
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }()
	sc, ok := withKernelStamps(c, nil).(*stampConn)
	if !ok {
		return false
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		return false
	}
	defer func() { _ = s.Close() }()
	deadline := time.Now().Add(wait)
	if c.SetDeadline(deadline.Add(time.Second)) != nil {
		return false
	}
	b := make([]byte, 1)
	for {
		if _, err := s.Write(b); err != nil {
			return false
		}
		if _, err := sc.Read(b); err != nil {
			return false
		}
		if sc.stamp.Load() != 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// releaseStamps closes a socket keepStampsOn opened.
func releaseStamps(fd int) { _ = syscall.Close(fd) }
