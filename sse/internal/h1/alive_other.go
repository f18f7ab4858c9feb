//go:build !linux

package h1

import "net"

// peekAlive assumes an idle connection is alive where no non-blocking peek is wired up; a
// failed write on a reused connection is retried once.
func peekAlive(net.Conn) bool { return true }
