package h1

import (
	"bytes"
	"io"
	"net"
)

// maxEmptyReads bounds consecutive (0, nil) reads from a connection, like bufio.
const maxEmptyReads = 100

// errBufferFull is readSlice's "no delimiter in a full buffer".
const errBufferFull constError = "h1: buffer full"

// reader reads a connection with a read buffer that exists only while it holds unread
// bytes: it comes from the Transport's pool when bytes arrive and goes back when they have
// been consumed. A body read that finds the buffer empty blocks in the connection's Read on
// the caller's own buffer, so a stream waiting for its next event holds no read buffer.
type reader struct {
	t    *Transport
	nc   net.Conn
	buf  *[readBufSize]byte // nil when empty
	r, w int                // unread bytes are buf[r:w]
}

func (rd *reader) buffered() int { return rd.w - rd.r }

// release gives the buffer back once it is empty.
func (rd *reader) release() {
	if rd.buf != nil && rd.r == rd.w {
		rd.t.readBufs.Put(rd.buf)
		rd.buf, rd.r, rd.w = nil, 0, 0
	}
}

// drop gives the buffer back whatever it holds (the connection is being closed).
func (rd *reader) drop() {
	rd.r = rd.w
	rd.release()
}

func (rd *reader) acquire() {
	if rd.buf != nil {
		return
	}
	if b, ok := rd.t.readBufs.Get().(*[readBufSize]byte); ok {
		rd.buf = b
		return
	}
	rd.buf = new([readBufSize]byte)
}

// fill reads more bytes into the buffer (at least one, or an error).
func (rd *reader) fill() error {
	rd.acquire()
	if rd.r > 0 {
		copy(rd.buf[:], rd.buf[rd.r:rd.w])
		rd.w -= rd.r
		rd.r = 0
	}
	if rd.w == len(rd.buf) {
		return errBufferFull
	}
	for i := 0; i < maxEmptyReads; i++ {
		n, err := rd.nc.Read(rd.buf[rd.w:])
		rd.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			rd.release()
			return err
		}
	}
	return io.ErrNoProgress
}

// fillVia blocks reading into p (the caller's buffer, not a pooled one) and then moves what
// arrived into the buffer. Only for an empty buffer.
func (rd *reader) fillVia(p []byte) error {
	if len(p) > readBufSize {
		p = p[:readBufSize]
	}
	for i := 0; i < maxEmptyReads; i++ {
		n, err := rd.nc.Read(p)
		if n > 0 {
			rd.acquire()
			rd.r, rd.w = 0, copy(rd.buf[:], p[:n])
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// readSlice returns the bytes up to and including delim (valid until the next call), or
// all buffered bytes with errBufferFull when a full buffer holds no delim, or what is left
// with the read error.
func (rd *reader) readSlice(delim byte) ([]byte, error) {
	for {
		if rd.buf != nil {
			if i := bytes.IndexByte(rd.buf[rd.r:rd.w], delim); i >= 0 {
				line := rd.buf[rd.r : rd.r+i+1]
				rd.r += i + 1
				return line, nil
			}
			if rd.r == 0 && rd.w == len(rd.buf) {
				line := rd.buf[:rd.w]
				rd.r = rd.w
				return line, errBufferFull
			}
		}
		if err := rd.fill(); err != nil {
			var line []byte
			if rd.buf != nil {
				line = rd.buf[rd.r:rd.w]
				rd.r = rd.w
			}
			return line, err
		}
	}
}

// peek returns the next n buffered bytes (n ≤ readBufSize), reading as needed.
func (rd *reader) peek(n int) ([]byte, error) {
	for rd.buffered() < n {
		if err := rd.fill(); err != nil {
			var rest []byte
			if rd.buf != nil {
				rest = rd.buf[rd.r:rd.w]
			}
			return rest, err
		}
	}
	return rd.buf[rd.r : rd.r+n], nil
}

func (rd *reader) discard(n int) { rd.r += n }

// Read copies buffered bytes, or reads the connection straight into p.
func (rd *reader) Read(p []byte) (int, error) {
	if rd.r < rd.w {
		n := copy(p, rd.buf[rd.r:rd.w])
		rd.r += n
		rd.release()
		return n, nil
	}
	rd.release()
	return rd.nc.Read(p)
}
