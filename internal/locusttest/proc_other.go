//go:build !linux

package locusttest

import "syscall"

// sysProcAttr puts the child in a process group of its own. (Only Linux can
// have the kernel kill it when the test binary dies.)
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
