package metrics

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PyRepr returns Python's repr() of the str s.
//
// Quoting follows CPython: single quotes unless s contains a single quote and
// no double quote. Backslash, the chosen quote, \t, \n and \r are escaped;
// other characters that Python's str.isprintable rejects (categories Cc, Cf,
// Cs, Co, Cn, Zl, Zp and Zs other than the ASCII space) become \xNN (≤ 0xff),
// \uNNNN (≤ 0xffff) or \UNNNNNNNN, with lower-case hex; everything else,
// including printable non-ASCII, is kept as is.
//
// Printability comes from Go's unicode tables (Unicode 15), whereas Python
// 3.11 uses Unicode 14: characters first assigned in Unicode 15 are kept here
// but escaped by that Python. Invalid UTF-8 bytes (which a Python str cannot
// hold) are treated as U+FFFD, one per byte.
func PyRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteByte(quote)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case pyPrintable(r):
			b.WriteRune(r)
		case r <= 0xff:
			writeHexEscape(&b, 'x', uint32(r), 2)
		case r <= 0xffff:
			writeHexEscape(&b, 'u', uint32(r), 4)
		default:
			writeHexEscape(&b, 'U', uint32(r), 8)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// pyPrintable approximates Python's str.isprintable for one character:
// letters, marks, numbers, punctuation, symbols and the ASCII space.
func pyPrintable(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= ' ' && r != 0x7f
	}
	return unicode.IsPrint(r)
}

func writeHexEscape(b *strings.Builder, kind byte, v uint32, digits int) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('\\')
	b.WriteByte(kind)
	for i := digits - 1; i >= 0; i-- {
		b.WriteByte(hexDigits[(v>>(4*uint(i)))&0xf])
	}
}

// ErrorKey returns the key under which Locust 2.46's StatsError.create_key
// files a failure whose error is the plain str failure:
//
//	sha256(f"{method}.{name}.{parse_error(failure)!r}".encode()).hexdigest()
//
// parse_error leaves a str unchanged except for masking an
// "object at 0x…>" address (see [ParseError]). A Python 2.12.1 worker would
// hash repr(repr(failure)) instead; see the package documentation.
func ErrorKey(method, name, failure string) string {
	sum := sha256.Sum256([]byte(method + "." + name + "." + PyRepr(ParseError(failure))))
	return hex.EncodeToString(sum[:])
}

// ParseError is Locust 2.46's StatsError.parse_error for a str error: the
// text is returned unchanged unless it contains "object at 0x", in which case
// every occurrence of the address (from "0x" up to the next ">") is replaced
// by "0x....". It is the "error" text a Python 2.46 worker puts on the wire,
// and the text [Stats] reports in ErrorEntry.Error.
func ParseError(s string) string {
	const target = "object at 0x"
	i := strings.Index(s, target)
	if i < 0 {
		return s
	}
	start := i + len(target) - 2
	end := strings.IndexByte(s[start:], '>')
	if end < 0 {
		return s
	}
	return strings.ReplaceAll(s, s[start:start+end], "0x....")
}
