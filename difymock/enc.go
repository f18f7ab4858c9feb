package difymock

import (
	"bytes"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// enc is an append-style JSON writer that keeps keys in the order they are
// written. It has two styles:
//
//   - compact (orjson, used for SSE frames and flask-restx bodies): no spaces,
//     raw UTF-8, only '"', '\\' and control characters escaped;
//   - dumps (Python json.dumps, used for blocking chat responses): ", " and
//     ": " separators and every non-ASCII rune escaped as \uXXXX.
//
// Separators are inserted automatically: key and elem add a comma unless
// the previous byte opened an object or array.
type enc struct {
	b     []byte
	dumps bool
}

const hexDigits = "0123456789abcdef"

// bufPool recycles frame buffers. Buffers that grew past maxPooledBuf (the
// big-event faults) are dropped so that the pool stays small.
type bufPool struct{ p sync.Pool }

const maxPooledBuf = 64 << 10

func (bp *bufPool) get() *[]byte {
	if v, ok := bp.p.Get().(*[]byte); ok {
		*v = (*v)[:0]
		return v
	}
	b := make([]byte, 0, 2048)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	bp.p.Put(b)
}

func (e *enc) sep() {
	if n := len(e.b); n > 0 {
		switch e.b[n-1] {
		case '{', '[':
			return
		}
		if e.dumps {
			e.b = append(e.b, ',', ' ')
		} else {
			e.b = append(e.b, ',')
		}
	}
}

func (e *enc) open() *enc  { e.sep(); e.b = append(e.b, '{'); return e }
func (e *enc) close() *enc { e.b = append(e.b, '}'); return e }

// obj starts an object as a value (after key); openArr likewise.
func (e *enc) obj() *enc      { e.b = append(e.b, '{'); return e }
func (e *enc) arr() *enc      { e.b = append(e.b, '['); return e }
func (e *enc) endArr() *enc   { e.b = append(e.b, ']'); return e }
func (e *enc) elem() *enc     { e.sep(); return e }
func (e *enc) null() *enc     { e.b = append(e.b, "null"...); return e }
func (e *enc) emptyObj() *enc { e.b = append(e.b, '{', '}'); return e }
func (e *enc) emptyArr() *enc { e.b = append(e.b, '[', ']'); return e }

func (e *enc) key(k string) *enc {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, k...) // keys are ASCII identifiers
	if e.dumps {
		e.b = append(e.b, '"', ':', ' ')
	} else {
		e.b = append(e.b, '"', ':')
	}
	return e
}

// ukey writes an arbitrary (escaped) key.
func (e *enc) ukey(k string) *enc {
	e.sep()
	e.b = appendString(e.b, k, e.dumps)
	if e.dumps {
		e.b = append(e.b, ':', ' ')
	} else {
		e.b = append(e.b, ':')
	}
	return e
}

func (e *enc) str(s string) *enc {
	e.b = appendString(e.b, s, e.dumps)
	return e
}

// ujson writes s as a JSON string the way ujson does by default: ASCII only (\uXXXX) and
// "/" escaped as "\/".
func (e *enc) ujson(s string) *enc {
	start := len(e.b)
	e.b = appendString(e.b, s, true)
	if bytes.IndexByte(e.b[start:], '/') < 0 {
		return e
	}
	out := append([]byte(nil), e.b[start:]...)
	e.b = e.b[:start]
	for _, c := range out {
		if c == '/' {
			e.b = append(e.b, '\\')
		}
		e.b = append(e.b, c)
	}
	return e
}

func (e *enc) int(v int64) *enc { e.b = strconv.AppendInt(e.b, v, 10); return e }

func (e *enc) bool(v bool) *enc { e.b = strconv.AppendBool(e.b, v); return e }

func (e *enc) float(v float64) *enc { e.b = appendPyFloat(e.b, v); return e }

func (e *enc) raw(j []byte) *enc { e.b = append(e.b, j...); return e }

// Convenience for "key":value pairs.
func (e *enc) kstr(k, v string) *enc       { return e.key(k).str(v) }
func (e *enc) kint(k string, v int64) *enc { return e.key(k).int(v) }
func (e *enc) knull(k string) *enc         { return e.key(k).null() }
func (e *enc) kbool(k string, v bool) *enc { return e.key(k).bool(v) }

// appendString appends s as a JSON string. With ascii, it escapes like
// Python's json.dumps(ensure_ascii=True): everything outside ' '..'~' as
// \uXXXX (UTF-16 surrogate pairs above U+FFFF). Without, like orjson: raw
// UTF-8. Invalid UTF-8 is passed through raw in compact mode (the caller
// owns that choice; request strings were already sanitised by the JSON
// decoder) and escaped as U+FFFD in ascii mode.
func appendString(b []byte, s string, ascii bool) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s, ascii)
	return append(b, '"')
}

// appendEscaped is appendString without the quotes.
func appendEscaped(b []byte, s string, ascii bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0x7f {
			i++
			continue
		}
		if c >= 0x80 && !ascii {
			i++
			continue
		}
		if c == 0x7f && !ascii {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
			i++
		case '\\':
			b = append(b, '\\', '\\')
			i++
		case '\n':
			b = append(b, '\\', 'n')
			i++
		case '\r':
			b = append(b, '\\', 'r')
			i++
		case '\t':
			b = append(b, '\\', 't')
			i++
		case '\b':
			b = append(b, '\\', 'b')
			i++
		case '\f':
			b = append(b, '\\', 'f')
			i++
		default:
			if c < 0x80 { // other control characters and DEL (ascii mode)
				b = appendU(b, rune(c))
				i++
				break
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r > 0xFFFF {
				r -= 0x10000
				b = appendU(b, 0xD800+(r>>10))
				b = appendU(b, 0xDC00+(r&0x3FF))
			} else {
				b = appendU(b, r)
			}
			i += size
		}
		start = i
	}
	return append(b, s[start:]...)
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[(r>>12)&0xF], hexDigits[(r>>8)&0xF], hexDigits[(r>>4)&0xF], hexDigits[r&0xF])
}

// appendPyFloat formats v like Python's repr(float) (and orjson): shortest
// round-trip digits, always with a '.', exponent form below 1e-4 and at or
// above 1e16 ("1e-05", "1e+16").
func appendPyFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	if v == 0 {
		return append(b, "0.0"...)
	}
	a := math.Abs(v)
	if a >= 1e-4 && a < 1e16 {
		start := len(b)
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
		for _, c := range b[start:] {
			if c == '.' {
				return b
			}
		}
		return append(b, '.', '0')
	}
	// Exponent form: Go gives "1e-05" / "1.5e+16", which matches Python.
	return strconv.AppendFloat(b, v, 'e', -1, 64)
}
