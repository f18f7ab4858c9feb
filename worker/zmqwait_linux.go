//go:build goczmq && linux

package worker

import (
	"syscall"
	"unsafe"
)

// fdReadable reports whether fd is readable now, with a raw non-blocking ppoll(2): no cgo
// and no scheduler hand-off (a goroutine leaving a cgo call or syscall whose P was taken,
// by a GC stop or by sysmon, waits behind every runnable goroutine). For ZMQ_FD "not
// readable" means no command arrived since ZMQ_EVENTS was last read, so no new message.
func fdReadable(fd int) bool {
	if fd < 0 {
		return false
	}
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(fd), events: 0x1} // POLLIN
	var ts syscall.Timespec
	n, _, e := syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1,
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return true // unsure: let ZMQ_EVENTS decide
	}
	return n > 0 && pfd.revents != 0
}
