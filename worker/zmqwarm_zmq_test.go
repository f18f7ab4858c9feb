//go:build goczmq

package worker

import "github.com/zeromq/goczmq"

// warmUpZMQ creates and destroys one socket before any test runs. czmq initialises its
// process-wide state on the first socket, and two goroutines creating the process's first
// sockets at once (parallel integration subtests) can trip its assertion
// "zsys_set_thread_name_prefix() is not valid after creating sockets" and abort the test
// binary. A worker process creates its sockets one at a time, so only tests need this.
func warmUpZMQ() {
	goczmq.NewSock(goczmq.Dealer).Destroy()
}
