package h1

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
)

const (
	// writeBufSize is the initial size of a pooled request buffer.
	writeBufSize = 1 << 10
	// maxPooledWriteBuf: buffers grown beyond this (large bodies) are not pooled.
	maxPooledWriteBuf = 64 << 10
)

func (t *Transport) getWriteBuf() *[]byte {
	if b, ok := t.writeBufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, writeBufSize)
	return &b
}

func (t *Transport) putWriteBuf(b *[]byte) {
	if cap(*b) <= maxPooledWriteBuf {
		t.writeBufs.Put(b)
	}
}

// encode writes the whole request (head and body) into one pooled buffer and closes the
// request body.
func (t *Transport) encode(req *http.Request) (*[]byte, error) {
	bp := t.getWriteBuf()
	b := *bp
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	if _, ok := req.Header["User-Agent"]; !ok {
		b = append(b, "User-Agent: Go-http-client/1.1\r\n"...)
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		}
		if !validName(k) {
			*bp = b
			t.putWriteBuf(bp)
			return nil, fmt.Errorf("h1: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !validValue(v) {
				*bp = b
				t.putWriteBuf(bp)
				return nil, fmt.Errorf("h1: invalid header field value for %q", k)
			}
			if k == "User-Agent" && v == "" {
				continue
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	n := req.ContentLength
	if req.Body == nil || req.Body == http.NoBody {
		n = 0
	}
	if n > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if n > 0 {
		head := len(b)
		b = append(b, make([]byte, n)...)
		m, err := io.ReadFull(req.Body, b[head:])
		_ = req.Body.Close()
		if err != nil {
			*bp = b
			t.putWriteBuf(bp)
			return nil, fmt.Errorf("h1: request body: read %d of %d bytes: %w", m, n, err)
		}
	} else if req.Body != nil {
		_ = req.Body.Close()
	}
	*bp = b
	return bp, nil
}

// validName reports whether s is an HTTP token.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isToken(s[i]) {
			return false
		}
	}
	return true
}

// validValue rejects the bytes that would split or end a header line.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
