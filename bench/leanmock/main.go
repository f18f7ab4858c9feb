// Command leanmock is the benchmark's light server: the difymock simple chatflow's stream,
// byte for byte in shape (the same events, sizes and writes), from a server that does as
// little as it can in user space, so that a generator on the other core gets further up its
// own core before the server's is full. difymock spends ~40 % of its CPU in user space
// (net/http, its event encoder, timers), leanmock ~5 %; the rest, the kernel's TCP on
// loopback (which also does the receiver's half on the sender's core), is what bounds it.
// leanmock pre-renders each stream's events once into one buffer, frames them as HTTP/1.1
// chunks by hand and writes each with one syscall, in the order and at the times difymock
// does:
//
//	head + "event: ping" | workflow_started | node_started | node_finished | node_started
//	(first token at received + ttft) message x tokens, delay apart
//	node_finished | message_end | workflow_finished | the last chunk
//
// It serves POST /v1/chat-messages (any key, any body up to 1 MiB), and the truth the bench
// reads from difymock: GET /_mock/stats (counts, in_flight, per-request records with
// received, first_token_write and first_token, Unix ns: when the request was read, when the
// first token's write began and when it returned; ?records=0 leaves the records out) and
// POST /_mock/reset. It is a benchmark tool, not a Dify: no keys, no apps, no errors.
//
//	leanmock -addr 127.0.0.1:5002 -ttft 200ms -token-delay 5ms -tokens 20
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "leanmock:", err)
		os.Exit(1)
	}
}

type config struct {
	addr   string
	ttft   time.Duration
	delay  time.Duration
	tokens int
	pad    int
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("leanmock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5002", "listen address")
	fs.DurationVar(&c.ttft, "ttft", 200*time.Millisecond, "first answer token after the request")
	fs.DurationVar(&c.delay, "token-delay", 5*time.Millisecond, "gap between answer tokens")
	fs.IntVar(&c.tokens, "tokens", 20, "answer tokens per stream (at least 2)")
	fs.IntVar(&c.pad, "pad", 0, "bytes of text added to each answer chunk after the query's (0: difymock's chunks)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.tokens < 2 || c.ttft < 0 || c.delay < 0 || c.pad < 0 || c.pad > 1<<20 {
		return errors.New("-tokens must be at least 2, the durations not negative and -pad from 0 to 1048576")
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	return serve(ctx, ln, c)
}

// serve accepts connections on ln until ctx ends or Accept fails, then closes the listener
// and every open connection and waits for their goroutines.
func serve(ctx context.Context, ln net.Listener, c config) error {
	s := &server{cfg: c, truth: newTruth(), t: newTemplates(c.tokens, c.pad), ids: newIDs(), conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	shutdown := func() {
		_ = ln.Close()
		s.mu.Lock()
		s.closed = true
		for conn := range s.conns {
			_ = conn.Close()
		}
		s.mu.Unlock()
	}
	defer shutdown() // before wg.Wait: the connections' goroutines end when their conns close
	stop := context.AfterFunc(ctx, shutdown)
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = conn.Close()
			return nil
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		wg.Go(func() {
			s.serve(conn)
			s.mu.Lock()
			delete(s.conns, conn)
			s.mu.Unlock()
		})
	}
}

type server struct {
	cfg   config
	truth *truth
	t     *templates // read-only once built
	ids   *ids

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
}

// maxBody bounds a request body; a larger one closes the connection.
const maxBody = 1 << 20

// serve reads requests off one keep-alive connection until it closes or errs.
func (s *server) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 4096)
	st := &stream{t: s.t, ids: s.ids}
	for {
		req, err := readRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_, _ = conn.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}
			return
		}
		received := time.Now()
		var ok bool
		switch {
		case req.method == "POST" && req.path == "/v1/chat-messages":
			ok = s.chat(conn, st, req, received)
		case req.method == "GET" && req.path == "/_mock/stats":
			ok = writeJSON(conn, s.truth.stats(!bytes.Contains(req.query, []byte("records=0"))))
		case req.method == "POST" && req.path == "/_mock/reset":
			s.truth.reset()
			ok = writeJSON(conn, []byte("{}"))
		default:
			_, err = conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
			ok = err == nil
		}
		if !ok || req.close {
			return
		}
	}
}

// chat streams one answer; false when the client went away (the record says so).
func (s *server) chat(conn net.Conn, st *stream, req *request, received time.Time) bool {
	c := s.cfg
	st.render(c.tokens, conversationID(req.body), received)
	s.truth.begin()
	rec := record{messageID: st.messageID, received: received.UnixNano(), outcome: "ok"}
	defer func() { s.truth.end(rec) }()
	first := received.Add(c.ttft)
	for i, w := range st.writes {
		if i >= st.firstToken {
			// Absolute times, as difymock's waits: a late write does not delay the rest.
			at := first.Add(time.Duration(min(i-st.firstToken, c.tokens-1)) * c.delay)
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
		}
		if i == st.firstToken {
			rec.firstTokenWrite = time.Now().UnixNano()
		}
		if _, err := conn.Write(st.buf[w.from:w.to]); err != nil {
			rec.outcome = "client_closed"
			return false
		}
		if i >= st.firstToken && i < st.firstToken+c.tokens {
			rec.tokens++
		}
		if i == st.firstToken {
			rec.firstToken = time.Now().UnixNano()
		}
	}
	return true
}

// conversationID is the body's non-empty "conversation_id", echoed back (a follow-up turn).
func conversationID(body []byte) []byte {
	const key = `"conversation_id":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j <= 0 || j > 64 {
		return nil
	}
	return rest[:j]
}

func writeJSON(conn net.Conn, body []byte) bool {
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	_, err := conn.Write(append([]byte(head), body...))
	return err == nil
}
