//go:build !goczmq

package worker

// warmUpZMQ has nothing to warm up without ZeroMQ.
func warmUpZMQ() {}
