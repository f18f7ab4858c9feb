package sse

import "syscall"

// SyscallConn exposes the socket of a kernel-stamped connection, so the lean transport can
// check an idle connection with a non-blocking peek before reusing it.
func (c *stampConn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }
