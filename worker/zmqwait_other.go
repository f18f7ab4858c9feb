//go:build goczmq && !linux

package worker

// fdReadable is always true here: every timer wake-up reads ZMQ_EVENTS.
func fdReadable(int) bool { return true }
