package sse

// eventCut returns how many bytes of b to read so that the read ends where an SSE event may
// end: after the first line ending that can start a blank line, or all of b if none can.
// prev is the byte the connection returned just before b (0 at its start).
//
// b is raw connection bytes: HTTP/1.1 framing around the SSE stream, chunk-size lines
// included. An event ends at the first byte of the line ending of its blank line. That byte
// is a '\r' or '\n' right after a '\n' (LF or CRLF line, then a blank line), or a '\r' right
// after a '\r' (CR lines). When a chunk boundary falls between the two line endings, the
// second one follows the chunk-size line's '\n': the same test finds it. So every event end
// is a cut; the other cuts (a blank line of the headers, the CR of a chunk's trailing CRLF
// after an LF, an empty line between events) only cost one more read. A '\n' after a '\r'
// is never a cut: it belongs to a CRLF.
func eventCut(prev byte, b []byte) int {
	p := prev
	for i, x := range b {
		if isEventEnd(p, x) {
			return i + 1
		}
		p = x
	}
	return len(b)
}

// isEventEnd says whether x, after p, can be the first byte of the line ending of a blank
// line: an LF or CR after an LF, or a CR after a CR (never an LF after a CR: that is a CRLF).
func isEventEnd(p, x byte) bool {
	return (x == '\n' || x == '\r') && (p == '\n' || (p == '\r' && x == '\r'))
}
