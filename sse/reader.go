package sse

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
)

// constError is an error that can be a constant.
type constError string

func (e constError) Error() string { return string(e) }

// errEventTooLarge is returned by eventReader.next when one event exceeds the size limit.
const errEventTooLarge constError = "sse: event exceeds the maximum event size"

const (
	// defaultReadBufSize is the eventReader's fixed read buffer. Lines longer than it are
	// processed in fragments, so it does not bound the event size.
	defaultReadBufSize = 4 << 10
	// minReadBufSize keeps every known field name, its colon and the optional space inside a
	// line's first fragment.
	minReadBufSize = 16
	// maxEmptyReads bounds consecutive (0, nil) reads before giving up, like bufio.
	maxEmptyReads = 100
)

// rawEvent is one dispatched SSE event. Its slices are valid until the next call to next.
type rawEvent struct {
	name    []byte // value of the last `event:` field; meaningful only if hasName
	data    []byte // `data:` values joined by '\n'; meaningful only if hasData
	hasName bool
	hasData bool
	// partial is true when the stream ended inside the event's last line (no line ending
	// before EOF): the payload was probably cut.
	partial bool
}

type fieldKind uint8

const (
	fieldIgnore fieldKind = iota
	fieldData
	fieldEvent
)

// eventReader frames an SSE byte stream into events (WHATWG HTML "event stream
// interpretation") with bounded memory and no allocation per event in the steady state.
//
// Policies (see doc.go): LF, CR and CRLF line endings (mixed too); lines starting with ':' are
// comments; `data:` lines are joined with '\n'; `event:` sets the name; `id:`, `retry:` and
// unknown fields are ignored; a block is dispatched if it had a data or an event field; the
// raw bytes of one event (lines plus one byte per line ending) are bounded by max, beyond
// which next fails with errEventTooLarge without buffering more; a pending event at EOF is
// dispatched even without its blank line. A read error other than io.EOF is returned after the
// complete events before it.
type eventReader struct {
	src  io.Reader
	buf  []byte
	r, w int // unread bytes are buf[r:w]
	// noLF and noCR are indices into buf such that buf[r:noLF] holds no '\n' and buf[r:noCR]
	// holds no '\r' (when they are > r): they keep the end-of-line search linear.
	noLF, noCR int
	max        int

	data    []byte
	name    []byte
	hasData bool
	hasName bool
	size    int
	dirty   bool // the previous call dispatched; reset the event state first

	field     fieldKind // field of the line being continued (inLine)
	inLine    bool      // buf was full without a line ending: the current line continues
	skipLF    bool      // the last line ended with '\r'; a following '\n' belongs to it
	eof       bool      // src returned io.EOF
	readErr   error     // src returned this error; reported once the buffered lines are used
	err       error     // sticky error returned by next
	bytesRead int64
}

func newEventReader(src io.Reader, maxEvent, bufSize int) *eventReader {
	r := &eventReader{}
	r.reset(src, maxEvent, bufSize)
	return r
}

// reset prepares r for a new stream, keeping its buffers when they fit.
func (r *eventReader) reset(src io.Reader, maxEvent, bufSize int) {
	if bufSize < minReadBufSize {
		bufSize = minReadBufSize
	}
	buf := r.buf
	if cap(buf) < bufSize {
		buf = make([]byte, bufSize)
	}
	data, name := r.data[:0], r.name[:0]
	*r = eventReader{src: src, buf: buf[:bufSize], max: maxEvent, data: data, name: name}
}

func (r *eventReader) resetEvent() {
	r.data = r.data[:0]
	r.name = r.name[:0]
	r.hasData, r.hasName = false, false
	r.size = 0
	r.dirty = false
}

// next returns the next event, io.EOF at the end of the stream, errEventTooLarge, or the
// source's read error. Errors are sticky.
func (r *eventReader) next() (rawEvent, error) {
	if r.dirty {
		r.resetEvent()
	}
	for {
		if r.err != nil {
			return rawEvent{}, r.err
		}
		if r.skipLF {
			if r.r < r.w {
				if r.buf[r.r] == '\n' {
					r.r++
				}
				r.skipLF = false
			} else if r.eof || r.readErr != nil {
				r.skipLF = false
			} else {
				r.fill()
				continue
			}
		}
		if r.r < r.w {
			if i := r.findEOL(); i >= 0 {
				line := r.buf[r.r:i]
				r.skipLF = r.buf[i] == '\r'
				r.r = i + 1
				cont := r.inLine
				r.inLine = false
				if !cont && len(line) == 0 {
					if r.hasData || r.hasName {
						return r.dispatch(false), nil
					}
					r.size = 0 // a block of comments or ignored fields
					continue
				}
				if err := r.line(line, cont, true, 1); err != nil {
					r.err = err
					return rawEvent{}, err
				}
				continue
			}
			if r.r == 0 && r.w == len(r.buf) {
				// A line longer than the buffer: consume it in fragments.
				frag := r.buf[:r.w]
				r.r = r.w
				cont := r.inLine
				r.inLine = true
				if err := r.line(frag, cont, false, 0); err != nil {
					r.err = err
					return rawEvent{}, err
				}
				continue
			}
		}
		if r.readErr != nil {
			r.err = r.readErr
			return rawEvent{}, r.err
		}
		if r.eof {
			partial := false
			if r.r < r.w || r.inLine {
				// The last line has no line ending.
				partial = true
				line := r.buf[r.r:r.w]
				r.r = r.w
				cont := r.inLine
				r.inLine = false
				if cont || len(line) > 0 {
					if err := r.line(line, cont, true, 0); err != nil {
						r.err = err
						return rawEvent{}, err
					}
				}
			}
			r.err = io.EOF
			if r.hasData || r.hasName {
				return r.dispatch(partial), nil
			}
			return rawEvent{}, io.EOF
		}
		r.fill()
	}
}

func (r *eventReader) dispatch(partial bool) rawEvent {
	r.dirty = true
	return rawEvent{name: r.name, data: r.data, hasName: r.hasName, hasData: r.hasData, partial: partial}
}

// findEOL returns the index in buf of the first '\r' or '\n' in buf[r:w], or -1.
func (r *eventReader) findEOL() int {
	lf := -1
	from := max(r.r, r.noLF)
	if from < r.w {
		if k := bytes.IndexByte(r.buf[from:r.w], '\n'); k >= 0 {
			lf = from + k
		} else {
			r.noLF = r.w
		}
	}
	lim := r.w
	if lf >= 0 {
		lim = lf
	}
	from = max(r.r, r.noCR)
	if from < lim {
		if k := bytes.IndexByte(r.buf[from:lim], '\r'); k >= 0 {
			return from + k
		}
	}
	r.noCR = lim
	return lf
}

// fill compacts the buffer and reads once from src.
func (r *eventReader) fill() {
	if r.r == r.w {
		r.r, r.w, r.noLF, r.noCR = 0, 0, 0, 0
	} else if r.r > 0 {
		d := r.r
		copy(r.buf, r.buf[r.r:r.w])
		r.w -= d
		r.r = 0
		r.noLF = max(r.noLF-d, 0)
		r.noCR = max(r.noCR-d, 0)
	}
	for i := 0; i < maxEmptyReads; i++ {
		n, err := r.src.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.readErr = errors.New("sse: invalid Read count")
			return
		}
		r.w += n
		r.bytesRead += int64(n)
		if err == io.EOF {
			r.eof = true
			return
		}
		if err != nil {
			r.readErr = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.readErr = io.ErrNoProgress
}

// line processes one line, or one fragment of a long line. cont is true for the fragments
// after the first; complete is true when the line ends here; eol is the size counted for its
// line ending (1, or 0 at EOF and for fragments).
func (r *eventReader) line(b []byte, cont, complete bool, eol int) error {
	r.size += len(b) + eol
	if r.size > r.max {
		return errEventTooLarge
	}
	if !cont {
		r.field = fieldIgnore
		if len(b) > 0 && b[0] == ':' {
			return nil // comment
		}
		var name, value []byte
		if i := bytes.IndexByte(b, ':'); i >= 0 {
			name, value = b[:i], b[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		} else if complete {
			name = b // a field with an empty value
		} else {
			return nil // a field name longer than the buffer: unknown field
		}
		switch string(name) {
		case "data":
			r.field = fieldData
			if r.hasData {
				r.appendData([]byte{'\n'})
			}
			r.hasData = true
		case "event":
			r.field = fieldEvent
			r.name = r.name[:0]
			r.hasName = true
		default:
			return nil // id, retry and unknown fields are ignored
		}
		b = value
	}
	switch r.field {
	case fieldData:
		r.appendData(b)
	case fieldEvent:
		r.name = append(r.name, b...)
	}
	return nil
}

// appendData appends p to the data buffer. The size check in line guarantees the buffer
// never needs more than max bytes; growth doubles and jumps to max past max/2, so reaching
// the limit allocates at most about 1.5×max in total.
func (r *eventReader) appendData(p []byte) {
	need := len(r.data) + len(p)
	if need > cap(r.data) {
		n := max(2*cap(r.data), need, 512)
		n = 1 << bits.Len(uint(n-1)) // a power of two, so the jump below happens at max/2
		if n >= r.max/2 {
			n = max(r.max, need)
		}
		nb := make([]byte, len(r.data), n)
		copy(nb, r.data)
		r.data = nb
	}
	r.data = append(r.data, p...)
}
