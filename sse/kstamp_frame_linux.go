package sse

// respCut finds precise-read cuts in an HTTP/1.1 response read from its first byte. It follows
// the framing (status line, headers, chunk-size lines, chunk trailers) and applies eventCut's
// rule to the body's own bytes only, so framing never makes a cut: a chunk's trailing CRLF
// after an event, which the stateless rule must treat as a possible blank line, costs no read
// of its own. The end of the head is a cut too, so the headers' time is their own segment's.
// When the framing is not what it expects (a malformed size line, a missing CRLF) it falls
// back to eventCut on the raw bytes from there, which is safe from any byte.
//
// The zero value expects a response's first byte.
type respCut struct {
	st    frameState
	prev  byte // the previous body byte (the SSE stream's), for the cut rule
	code  int  // status code, parsed from the status line
	sp    int  // spaces seen on the status line
	empty bool // the head line so far holds nothing but CR
	// te is the match position in "transfer-encoding" at the start of a head line, -1 when
	// the line is some other header; val the match position in "chunked" in its value.
	te, val int
	chunked bool
	size    int64 // chunk-size digits so far, then the bytes of the chunk left
}

type frameState uint8

const (
	fStatus frameState = iota // the status line
	fHead                     // header lines, up to the blank line
	fSize                     // a chunk-size line
	fExt                      // a chunk extension, up to the size line's LF
	fData                     // chunk data: SSE bytes
	fDataCR                   // the CR after chunk data
	fDataLF                   // the LF after chunk data
	fBody                     // a body without chunking: SSE bytes up to its end
	fDone                     // after the last chunk: trailers, nothing to cut
	fRaw                      // framing not understood: eventCut on the raw bytes
)

const (
	teName     = "transfer-encoding"
	chunkedTok = "chunked"
	// maxChunk bounds a chunk size the respCut follows; a larger one is not framing it knows.
	maxChunk = 1 << 40
)

// cut returns how many bytes of b to read: through the first cut, or all of b. rawPrev is
// the byte read just before b, for the raw fallback.
func (f *respCut) cut(rawPrev byte, b []byte) int {
	for i := 0; i < len(b); i++ {
		x := b[i]
		switch f.st {
		case fStatus:
			f.status(x)
		case fHead:
			if f.head(x) {
				return i + 1 // the end of the head
			}
		case fSize:
			f.sizeByte(x)
		case fExt:
			if x == '\n' {
				f.endSize()
			}
		case fData:
			f.size--
			if f.size == 0 {
				f.st = fDataCR
			}
			if f.body(x) {
				return i + 1
			}
		case fDataCR:
			switch x {
			case '\r':
				f.st = fDataLF
			case '\n':
				f.st = fSize
			default:
				f.st = fRaw
			}
		case fDataLF:
			if x == '\n' {
				f.st = fSize
			} else {
				f.st = fRaw
			}
		case fBody:
			if f.body(x) {
				return i + 1
			}
		case fDone:
			return len(b)
		case fRaw:
			p := rawPrev
			if i > 0 {
				p = b[i-1]
			}
			return i + eventCut(p, b[i:])
		}
	}
	return len(b)
}

// body applies the cut rule to one byte of the SSE stream.
func (f *respCut) body(x byte) bool {
	p := f.prev
	f.prev = x
	return isEventEnd(p, x)
}

func (f *respCut) status(x byte) {
	switch {
	case x == '\n':
		f.st, f.te, f.val, f.empty = fHead, 0, 0, true
	case x == ' ':
		f.sp++
	case f.sp == 1 && x >= '0' && x <= '9' && f.code < 1000:
		f.code = f.code*10 + int(x-'0')
	}
}

// head takes one byte of the header lines; true at the LF of the blank line that ends them.
func (f *respCut) head(x byte) bool {
	switch x {
	case '\n':
		if !f.empty {
			f.te, f.val, f.empty = 0, 0, true
			return false
		}
		f.endHead()
		return true
	case '\r':
		return false
	}
	f.empty = false
	switch {
	case f.te >= 0 && f.te < len(teName):
		if lower(x) == teName[f.te] {
			f.te++
		} else {
			f.te = -1
		}
	case f.te == len(teName):
		if x == ':' {
			f.te++ // in the value
		} else if x != ' ' && x != '\t' {
			f.te = -1
		}
	case f.te > len(teName) && f.val < len(chunkedTok):
		switch {
		case lower(x) == chunkedTok[f.val]:
			f.val++
			if f.val == len(chunkedTok) {
				f.chunked = true
			}
		case lower(x) == chunkedTok[0]:
			f.val = 1
		default:
			f.val = 0
		}
	}
	return false
}

// endHead starts the body, or the next head after an interim (1xx) response.
func (f *respCut) endHead() {
	switch {
	case f.code >= 100 && f.code < 200:
		*f = respCut{}
	case f.chunked:
		f.st, f.size = fSize, 0
	default:
		f.st = fBody
	}
}

func (f *respCut) sizeByte(x byte) {
	switch {
	case x >= '0' && x <= '9':
		f.size = f.size<<4 | int64(x-'0')
	case lower(x) >= 'a' && lower(x) <= 'f':
		f.size = f.size<<4 | int64(lower(x)-'a'+10)
	case x == ';':
		f.st = fExt
		return
	case x == '\n':
		f.endSize()
		return
	case x == '\r' || x == ' ' || x == '\t':
		return
	default:
		f.st = fRaw
		return
	}
	if f.size > maxChunk {
		f.st = fRaw
	}
}

func (f *respCut) endSize() {
	if f.size == 0 {
		f.st = fDone
		return
	}
	f.st = fData
}

func lower(x byte) byte {
	if x >= 'A' && x <= 'Z' {
		return x + 'a' - 'A'
	}
	return x
}
