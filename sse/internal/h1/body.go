package h1

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Body framing modes.
const (
	modeNone    uint8 = iota // no body: the connection is released with the head
	modeLength               // Content-Length
	modeChunked              // Transfer-Encoding: chunked
	modeClose                // until the server closes the connection
)

// maxChunkLine bounds a chunk-size line (size, extensions).
const maxChunkLine = 4 << 10

// errBodyClosed is a read after Close, as net/http reports it.
const errBodyClosed constError = "http: read on closed response body"

// body is a response body read from the connection on the caller's goroutine.
type body struct {
	t    *Transport
	c    *conn
	rd   *reader // the connection's; nil once released
	resp *http.Response
	stop func() bool // stops the request context's AfterFunc

	mode     uint8
	remain   int64 // bytes left: of the body (modeLength) or of the current chunk
	needCRLF bool  // a chunk's data ended; its CRLF is next
	keep     bool  // the connection may be reused after the body ends
	err      error // sticky: io.EOF at the end, or the failure
	closed   bool
}

// Read reads the body. At its end it returns io.EOF and gives the connection back.
func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case modeLength:
		n, err = b.readLength(p)
	case modeChunked:
		n, err = b.readChunked(p)
	default:
		n, err = b.rd.Read(p)
		if errors.Is(err, io.EOF) {
			b.keep = false
		}
	}
	if err != nil {
		b.fail(err)
		return n, b.err
	}
	return n, nil
}

// Buffered is how many bytes of the connection the transport has read but the body has not
// returned yet (0 once the connection is released): the bytes a body read returned end that
// many bytes before the end of what the connection has read. sse uses it to time each body
// read by the kernel's receive stamp of its own last byte.
func (b *body) Buffered() int {
	if b.rd == nil {
		return 0
	}
	return b.rd.buffered()
}

func (b *body) readLength(p []byte) (int, error) {
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.rd.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		return n, io.EOF
	}
	return n, eofIsUnexpected(err)
}

func (b *body) readChunked(p []byte) (int, error) {
	for b.remain == 0 {
		if b.rd.buffered() == 0 {
			// Wait for the next chunk in the caller's buffer, not a pooled one.
			if err := b.rd.fillVia(p); err != nil {
				return 0, eofIsUnexpected(err)
			}
		}
		if err := b.nextChunk(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.rd.Read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.needCRLF = true
		if err == nil {
			if end := b.afterChunk(); end {
				return n, io.EOF
			}
		}
	}
	return n, eofIsUnexpected(err)
}

// afterChunk consumes what is already buffered after a chunk's data: its CRLF (so a stream
// waiting for the next chunk holds no read buffer for two bytes) and, when it came along, the
// last chunk without trailers (so the connection goes back to the pool with the last data).
func (b *body) afterChunk() (end bool) {
	rd := b.rd
	if rd.buffered() >= 7 {
		if string(rd.buf[rd.r:rd.r+7]) == "\r\n0\r\n\r\n" {
			rd.discard(7)
			rd.release()
			b.needCRLF = false
			return true
		}
	}
	if rd.buffered() >= 2 && rd.buf[rd.r] == '\r' && rd.buf[rd.r+1] == '\n' {
		rd.discard(2)
		rd.release()
		b.needCRLF = false
	}
	return false
}

// nextChunk reads the CRLF after the previous chunk and the next chunk-size line; at the
// last chunk it reads the trailers and returns io.EOF.
func (b *body) nextChunk() error {
	if b.needCRLF {
		crlf, err := b.rd.peek(2)
		switch {
		case err != nil:
			return eofIsUnexpected(err)
		case crlf[0] == '\n':
			b.rd.discard(1)
		case crlf[0] == '\r' && crlf[1] == '\n':
			b.rd.discard(2)
		default:
			return &ProtocolError{What: "malformed chunked encoding: no CRLF after chunk data"}
		}
		b.needCRLF = false
	}
	h := &head{rd: b.rd, budget: maxChunkLine, limit: maxChunkLine}
	line, err := h.readLine()
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			return &ProtocolError{What: fmt.Sprintf("chunk size line longer than %d bytes", maxChunkLine)}
		}
		return eofIsUnexpected(err)
	}
	size, err := parseChunkSize(line)
	if err != nil {
		return err
	}
	if size > 0 {
		b.remain = size
		return nil
	}
	th := &head{rd: b.rd, budget: b.t.cfg.MaxHeaderBytes, limit: b.t.cfg.MaxHeaderBytes}
	tr, err := th.readHeader()
	if err != nil {
		return eofIsUnexpected(err)
	}
	if len(tr) > 0 {
		if b.resp.Trailer == nil {
			b.resp.Trailer = make(http.Header, len(tr))
		}
		for k, v := range tr {
			b.resp.Trailer[k] = v
		}
	}
	return io.EOF
}

// parseChunkSize parses a chunk-size line: hex digits, optional whitespace and extensions.
func parseChunkSize(line []byte) (int64, error) {
	end := len(line)
	for i, c := range line {
		if c == ';' || c == ' ' || c == '\t' {
			end = i
			break
		}
	}
	digits := line[:end]
	if len(digits) == 0 || len(digits) > 15 {
		return 0, &ProtocolError{What: "malformed chunk size " + quote(line)}
	}
	var n int64
	for _, c := range digits {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, &ProtocolError{What: "malformed chunk size " + quote(line)}
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// fail records the end of the body: io.EOF (complete) or an error, and releases the
// connection (to the pool only when complete and reusable).
func (b *body) fail(err error) {
	b.err = err
	b.finish(errors.Is(err, io.EOF) && b.keep)
}

// finish gives the connection back to the pool (reuse) or closes it, and returns the read
// buffer. The request context's AfterFunc is stopped first: a connection it touched is closed.
func (b *body) finish(reuse bool) {
	if b.rd == nil {
		return
	}
	fired := !b.stop()
	if fired || !reuse || b.rd.buffered() > 0 || !b.keep {
		b.rd.drop()
		b.c.close()
	} else {
		b.rd.release()
		b.t.putIdle(b.c)
	}
	b.rd, b.c = nil, nil
}

// Close ends the body. Before its end that closes the connection (no draining here: the
// caller decides how much to read).
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.err == nil {
		b.err = errBodyClosed
	}
	b.finish(false)
	return nil
}
