package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// request is what leanmock reads of an HTTP/1.1 request; its slices are reused.
type request struct {
	method, path string
	query        []byte
	body         []byte
	close        bool
}

var errBadRequest = errors.New("bad request")

// readRequest reads one request (head and Content-Length body). io.EOF: the client closed
// between requests.
func readRequest(br *bufio.Reader) (*request, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if len(line) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: request line: %w", errBadRequest, err)
	}
	parts := bytes.Fields(line)
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: request line %q", errBadRequest, line)
	}
	r := &request{method: string(parts[0])}
	target := parts[1]
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		r.query = append([]byte(nil), target[i+1:]...)
		target = target[:i]
	}
	r.path = string(target)
	length := 0
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("%w: header: %w", errBadRequest, err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("%w: header %q", errBadRequest, h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 || n > maxBody {
				return nil, fmt.Errorf("%w: Content-Length %q", errBadRequest, value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return nil, fmt.Errorf("%w: chunked request bodies are not served", errBadRequest)
		case bytes.EqualFold(name, []byte("Connection")):
			r.close = bytes.EqualFold(value, []byte("close"))
		}
	}
	r.body = make([]byte, length)
	if _, err := io.ReadFull(br, r.body); err != nil {
		return nil, fmt.Errorf("%w: body: %w", errBadRequest, err)
	}
	return r, nil
}
