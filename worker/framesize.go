package worker

// The size limit of a frame from the master, chosen by its message type.

import (
	"errors"
	"fmt"
	"strconv"
)

// Limits for frames from the master. Protocol frames are a few KiB (a spawn
// with parsed_options is ~2 KiB), so anything over maxFrameSize is refused,
// except the workload message: it inlines its query datasets (10^6 rows ≈
// 100 MiB; the master refuses more than 512 MiB of them), so it may be up to
// maxWorkloadFrameSize.
const (
	maxFrameSize         = 16 << 20
	maxWorkloadFrameSize = 1 << 30
	// workloadMessageType is workload.MessageType (the worker does not import
	// workload; a test checks that they agree).
	workloadMessageType = "difyload_workload"
)

var errFrameTooLarge = errors.New("frame too large")

// checkFrameSize refuses a frame over its message type's limit, reading only
// the type at its head (a frame over maxFrameSize is never decoded further).
func checkFrameSize(frame []byte) error {
	if len(frame) <= maxFrameSize {
		return nil
	}
	typ := frameType(frame)
	if typ == workloadMessageType && len(frame) <= maxWorkloadFrameSize {
		return nil
	}
	limit, what := maxFrameSize, "every message but "+workloadMessageType
	if typ == workloadMessageType {
		limit, what = maxWorkloadFrameSize, workloadMessageType
	}
	if typ == "" {
		typ = "of no readable type"
	} else {
		typ = strconv.Quote(typ)
	}
	return fmt.Errorf("%w: a %s frame of %d bytes (%.1f MiB) is over the limit of %d MiB for %s",
		errFrameTooLarge, typ, len(frame), float64(len(frame))/(1<<20), limit>>20, what)
}

// frameType is the type of the message at the head of frame (an array of 3
// whose first element is a str), or "" if the frame does not start so.
func frameType(frame []byte) string {
	d := mpDecoder{b: frame}
	p, err := d.need(1)
	if err != nil {
		return ""
	}
	var n uint64 = 3
	switch p[0] {
	case 0x93:
	case 0xdc:
		n, err = d.uint(2)
	case 0xdd:
		n, err = d.uint(4)
	default:
		return ""
	}
	if err != nil || n != 3 {
		return ""
	}
	if p, err = d.need(1); err != nil {
		return ""
	}
	c := p[0]
	var size uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		size = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb:
		if size, err = d.uint(1 << (c - 0xd9)); err != nil {
			return ""
		}
	default:
		return ""
	}
	if size > 255 || size > uint64(len(d.b)-d.off) { // a type name is short
		return ""
	}
	typ, err := d.str(int(size))
	if err != nil {
		return ""
	}
	return typ
}
