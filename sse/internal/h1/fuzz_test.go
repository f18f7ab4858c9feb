package h1

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

// FuzzResponse feeds arbitrary bytes to the head parser and the body framing: no panic, no
// hang, and either an error or a body no longer than the input.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nclose-delimited",
		"HTTP/1.1 200 OK\nContent-Type: text/event-stream\n\ndata: {}\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"HTTP/1.1 2x0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	tr := New(Config{MaxHeaderBytes: 4 << 10})
	f.Fuzz(func(t *testing.T, in []byte) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://x/", nil)
		c := &conn{nc: &inputConn{r: bytes.NewReader(in), step: 1 + len(in)%13}}
		c.rd.t, c.rd.nc = tr, c.nc
		resp, b, err := tr.readResponse(&c.rd, req, nil) //nolint:bodyclose // b is the body; read to its end below
		if err != nil {
			if resp != nil || b != nil {
				t.Fatal("error with a response")
			}
			return
		}
		if resp.StatusCode < 200 || resp.StatusCode > 599 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if b.mode == modeNone {
			return
		}
		b.rd, b.t, b.resp, b.c = &c.rd, tr, resp, c
		b.stop = func() bool { return true }
		b.keep = false
		out, err := io.ReadAll(io.LimitReader(b, int64(len(in))+1))
		if len(out) > len(in) {
			t.Fatalf("body of %d bytes from %d input bytes", len(out), len(in))
		}
		var pe *ProtocolError
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
			t.Fatalf("unexpected error type %T %v", err, err)
		}
	})
}

// inputConn is a connection whose reads return the fuzz input, step bytes at a time (to
// cut lines and chunks at every place).
type inputConn struct {
	net.Conn
	r    io.Reader
	step int
}

func (c *inputConn) Read(p []byte) (int, error) {
	if len(p) > c.step {
		p = p[:c.step]
	}
	return c.r.Read(p)
}

func (c *inputConn) Close() error { return nil }
