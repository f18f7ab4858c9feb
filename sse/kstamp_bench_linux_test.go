package sse

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// stampPair is a loopback TCP connection: a plain server end and a stamped client end.
func stampPair(b testing.TB, w *watch) (net.Conn, *stampConn) {
	b.Helper()
	ctx := context.Background()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	srv := <-acc
	if srv == nil {
		b.Fatal("accept failed")
	}
	sc, ok := withKernelStamps(nc, w).(*stampConn)
	if !ok {
		b.Fatal("no stampConn")
	}
	b.Cleanup(func() { _ = srv.Close(); _ = sc.Close() })
	return srv, sc
}

// BenchmarkStampRead is the cost of one event of a token stream (a Dify message event
// in one HTTP chunk, written and then read): a stamped read, and one while a watch holds
// the connection (on time, so it does not sweep; BenchmarkWatchSweep is a sweep's cost).
// burst10 writes ten events before one read.
func BenchmarkStampRead(b *testing.B) {
	ev := "5a\r\n" + `data: {"event": "message", "answer": " tok", "message_id": "5ad4cb98-0000-4000-8000-000000000000"}` + "\n\n\r\n"
	for _, bc := range []struct {
		name  string
		watch bool
		burst int
	}{
		{"plain", false, 1},
		{"watched", true, 1},
		{"plain/burst10", false, 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var w *watch
			if bc.watch {
				w = newWatch()
			}
			srv, sc := stampPair(b, w)
			if bc.watch {
				defer sc.endPrecise(sc.beginPrecise())
			}
			msg := []byte(strings.Repeat(ev, bc.burst))
			buf := make([]byte, 4096)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := srv.Write(msg); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(msg); {
					n, err := sc.Read(buf)
					if err != nil && !errors.Is(err, io.EOF) {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}

// BenchmarkWatchSweep is one sweep of a watch with one precise connection and nothing new on
// it (a non-blocking epoll_wait): what a read pays at most every sweepEvery while some
// request waits for its first token.
func BenchmarkWatchSweep(b *testing.B) {
	w := newWatch()
	_, sc := stampPair(b, w)
	defer sc.endPrecise(sc.beginPrecise())
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.next.Store(0)
		w.sweep(0)
	}
}
