package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
)

// maxQuoted bounds the bytes of a bad line quoted in a ProtocolError.
const maxQuoted = 64

// head reads response heads with a byte budget.
type head struct {
	rd     *reader
	budget int    // bytes of head left (MaxHeaderBytes)
	limit  int    // the configured limit, for the error
	line   []byte // assembled line when it did not fit the read buffer
}

// readLine returns one line without its CRLF (or LF). Its bytes are valid until the next call.
func (h *head) readLine() ([]byte, error) {
	h.line = h.line[:0]
	for {
		frag, err := h.rd.readSlice('\n')
		h.budget -= len(frag)
		if h.budget < 0 {
			return nil, &ProtocolError{What: fmt.Sprintf("response head larger than %d bytes", h.limit)}
		}
		switch {
		case err == nil:
			if len(h.line) > 0 {
				h.line = append(h.line, frag...)
				frag = h.line
			}
			frag = frag[:len(frag)-1]
			if n := len(frag); n > 0 && frag[n-1] == '\r' {
				frag = frag[:n-1]
			}
			return frag, nil
		case errors.Is(err, errBufferFull):
			h.line = append(h.line, frag...)
		case errors.Is(err, io.EOF):
			if len(frag) == 0 && len(h.line) == 0 {
				return nil, err
			}
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// readResponse reads the status line and headers of the final response (1xx skipped) and
// works out the body's framing.
func (t *Transport) readResponse(rd *reader, req *http.Request, trace *httptrace.ClientTrace) (*http.Response, *body, error) {
	h := &head{rd: rd, budget: t.cfg.MaxHeaderBytes, limit: t.cfg.MaxHeaderBytes}
	first := true
	for {
		if first && trace != nil && trace.GotFirstResponseByte != nil {
			if _, err := rd.peek(1); err != nil {
				return nil, nil, err
			}
			trace.GotFirstResponseByte()
		}
		line, err := h.readLine()
		if err != nil {
			if first && errors.Is(err, io.EOF) {
				return nil, nil, io.EOF // closed before answering
			}
			return nil, nil, err
		}
		first = false
		resp, err := parseStatus(line)
		if err != nil {
			return nil, nil, err
		}
		hdr, err := h.readHeader()
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				return nil, nil, &ProtocolError{What: "unexpected 101 Switching Protocols"}
			}
			if trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(hdr)); err != nil {
					return nil, nil, err
				}
			}
			continue
		}
		resp.Header = hdr
		resp.Request = req
		b, err := t.framing(resp, req)
		if err != nil {
			return nil, nil, err
		}
		return resp, b, nil
	}
}

// parseStatus parses "HTTP/1.x SSS reason".
func parseStatus(line []byte) (*http.Response, error) {
	bad := func() error { return &ProtocolError{What: "malformed status line " + quote(line)} }
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return nil, bad()
	}
	minor := line[7]
	if minor != '0' && minor != '1' {
		return nil, bad()
	}
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return nil, bad()
	}
	if len(line) > 12 && line[12] != ' ' {
		return nil, bad()
	}
	status := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: int(minor - '0')}
	resp.Proto = protoString(resp.ProtoMinor)
	resp.Status = statusString(status, line[9:])
	return resp, nil
}

func protoString(minor int) string {
	if minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// statusString is "200 OK": net/http's text when the server's matches it (no allocation).
func statusString(code int, s []byte) string {
	if text := http.StatusText(code); len(s) == 4+len(text) && string(s[4:]) == text {
		switch code {
		case http.StatusOK:
			return "200 OK"
		case http.StatusTooManyRequests:
			return "429 Too Many Requests"
		}
	}
	return string(s)
}

// readHeader reads header lines up to the blank line.
func (h *head) readHeader() (http.Header, error) {
	hdr := make(http.Header, 8)
	for {
		line, err := h.readLine()
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
		if len(line) == 0 {
			return hdr, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, &ProtocolError{What: "obsolete header line folding " + quote(line)}
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 || !validName(string(line[:i])) {
			return nil, &ProtocolError{What: "malformed header line " + quote(line)}
		}
		v := bytes.TrimLeft(line[i+1:], " \t")
		v = bytes.TrimRight(v, " \t")
		if bytes.IndexByte(v, 0) >= 0 || bytes.IndexByte(v, '\r') >= 0 {
			return nil, &ProtocolError{What: "invalid byte in header value " + quote(line)}
		}
		k := canonicalKey(line[:i])
		hdr[k] = append(hdr[k], string(v))
	}
}

// canonicalKey returns the canonical form of a header name, without allocating for the
// names Dify and common servers send.
func canonicalKey(b []byte) string {
	switch string(b) {
	case "Content-Type", "content-type":
		return "Content-Type"
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Transfer-Encoding", "transfer-encoding":
		return "Transfer-Encoding"
	case "Connection", "connection":
		return "Connection"
	case "Date", "date":
		return "Date"
	case "Server", "server":
		return "Server"
	case "Cache-Control", "cache-control":
		return "Cache-Control"
	case "X-Version", "x-version":
		return "X-Version"
	case "X-Env", "x-env":
		return "X-Env"
	case "Keep-Alive", "keep-alive":
		return "Keep-Alive"
	case "Trailer", "trailer":
		return "Trailer"
	case "Access-Control-Allow-Origin", "access-control-allow-origin":
		return "Access-Control-Allow-Origin"
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// framing decides how the body is delimited and whether the connection can be reused.
func (t *Transport) framing(resp *http.Response, req *http.Request) (*body, error) {
	b := &body{}
	hdr := resp.Header
	resp.Close = req.Close || hasToken(hdr["Connection"], "close") ||
		(resp.ProtoMinor == 0 && !hasToken(hdr["Connection"], "keep-alive"))
	b.keep = !resp.Close
	noBody := req.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified
	te := hdr["Transfer-Encoding"]
	cl := hdr["Content-Length"]
	switch {
	case noBody:
		b.mode = modeNone
		resp.ContentLength = 0
		if req.Method == http.MethodHead {
			resp.ContentLength = -1
			if n, ok := parseLength(cl); ok {
				resp.ContentLength = n
			}
		}
	case len(te) > 0:
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return nil, &ProtocolError{What: fmt.Sprintf("unsupported transfer encoding %q", te)}
		}
		delete(hdr, "Content-Length") // RFC 9112 6.3: chunked wins; such a message is not reused
		if len(cl) > 0 {
			b.keep, resp.Close = false, true
		}
		b.mode = modeChunked
		resp.ContentLength = -1
		resp.TransferEncoding = []string{"chunked"}
	case len(cl) > 0:
		n, ok := parseLength(cl)
		if !ok {
			return nil, &ProtocolError{What: fmt.Sprintf("invalid Content-Length %q", cl)}
		}
		resp.ContentLength = n
		b.mode, b.remain = modeLength, n
		if n == 0 {
			b.mode = modeNone
		}
	default:
		b.mode = modeClose
		b.keep, resp.Close = false, true
		resp.ContentLength = -1
	}
	return b, nil
}

// parseLength parses Content-Length values; repeated values must agree.
func parseLength(vs []string) (int64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	if len(vs) == 1 && strings.IndexByte(vs[0], ',') < 0 {
		v := strings.TrimSpace(vs[0])
		if v == "" || v[0] == '+' || v[0] == '-' {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	var n int64 = -1
	for _, v := range vs {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" || part[0] == '+' || part[0] == '-' {
				return 0, false
			}
			m, err := strconv.ParseInt(part, 10, 64)
			if err != nil || (n >= 0 && m != n) {
				return 0, false
			}
			n = m
		}
	}
	return n, true
}

// hasToken reports whether a comma-separated header holds tok (case-insensitive).
func hasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(part), tok) {
				return true
			}
		}
	}
	return false
}

func quote(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "…"
	}
	return strconv.Quote(string(b))
}
