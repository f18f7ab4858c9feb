package worker

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestWorkloadFrameOverItsLimit: a workload frame over 1 GiB is refused too.
// The frame is an anonymous mapping of which only the head is written, so the
// test costs no gigabyte of memory.
func TestWorkloadFrameOverItsLimit(t *testing.T) {
	frame, err := syscall.Mmap(-1, 0, maxWorkloadFrameSize+1, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("no 1 GiB anonymous mapping: %v", err)
	}
	defer syscall.Munmap(frame) //nolint:errcheck // the test's own mapping
	head := frameOf(t, workloadMessageType, nil)
	copy(frame, head) // the rest is zeros: the size check reads only the type
	_, err = decodeMessage(frame)
	if !errors.Is(err, errFrameTooLarge) || !strings.Contains(err.Error(), "1024 MiB for difyload_workload") {
		t.Fatalf("err %v, want the workload's own limit", err)
	}
}
