package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/tasks"
)

// cannedTransport answers every request with the same recorded SSE body, so the benchmarks
// below measure the user-space cost of one stream without sockets or the kernel. Each Read
// returns at most one event, as a socket does when events arrive apart.
type cannedTransport struct{ body []byte }

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
		Body:          &eventReader{rest: c.body},
		ContentLength: -1, Request: req,
	}, nil
}

type eventReader struct{ rest []byte }

func (r *eventReader) Read(p []byte) (int, error) {
	if len(r.rest) == 0 {
		return 0, io.EOF
	}
	n := bytes.Index(r.rest, []byte("\n\n"))
	if n < 0 {
		n = len(r.rest)
	} else {
		n += 2
	}
	n = copy(p, r.rest[:n])
	r.rest = r.rest[n:]
	return n, nil
}

func (r *eventReader) Close() error { return nil }

// mockBody records one streaming answer of the mock's simple chatflow (tokens answer chunks,
// no delays): the exact bytes the load benchmark's generators read.
func mockBody(tb testing.TB, tokens string) []byte {
	tb.Helper()
	srv := difymock.New(difymock.Config{})
	req := httptest.NewRequestWithContext(tb.Context(), http.MethodPost, "/v1/chat-messages",
		strings.NewReader(`{"inputs":{},"query":"hello","response_mode":"streaming","user":"b"}`))
	req.Header.Set("Authorization", "Bearer "+difymock.SimpleChatKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Mock-TTFT", "0s")
	req.Header.Set("X-Mock-Token-Delay", "0s")
	req.Header.Set("X-Mock-Tokens", tokens)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		tb.Fatalf("mock: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// countEvents counts the data events (the floor's data: lines; a 1.13 relay's leading ping has none).
func countEvents(body []byte) int {
	n := bytes.Count(body, []byte("\ndata:"))
	if bytes.HasPrefix(body, []byte("data:")) {
		n++
	}
	return n
}

// BenchmarkPerStream is one whole chat stream of the mock's simple chatflow through
//
//   - difyload: tasks.ChatUser's RunTask (request body, sse.Client.Stream with its timers,
//     framing, validation and classification of every event, the three Locust rows into
//     metrics.Stats, the LLM histograms and a JSONL line), with Stats drained every 1,000
//     streams like a worker's report;
//   - floor: the bench/floor client's loop (net/http, bufio.Reader, counting data: lines).
//
// Both use the same canned http.Transport, so the difference is difyload's user-space cost
// per stream. Reported per event: ns/event and allocs/event.
func BenchmarkPerStream(b *testing.B) {
	for _, shape := range []struct{ name, tokens string }{{"fast20", "20"}, {"slow100", "100"}} {
		body := mockBody(b, shape.tokens)
		events := countEvents(body)
		client := &http.Client{Transport: cannedTransport{body: body}}
		b.Run("difyload/"+shape.name, func(b *testing.B) {
			stats := metrics.NewStats()
			llm := metrics.NewLLM(metrics.SLO{})
			obs := tasks.NewLLMObserver(tasks.LLMObserverConfig{LLM: llm, JSONL: metrics.NewJSONLWriter(io.Discard)})
			cfg := tasks.Config{Host: "http://127.0.0.1:5001", SimpleWeight: 1, Defaults: tasks.Keys{SimpleAppKey: difymock.SimpleChatKey}}
			cls, err := tasks.NewChatUser(cfg, sse.NewClient(sse.Config{Client: client}), stats, obs)
			if err != nil {
				b.Fatal(err)
			}
			u, err := cls.NewUser(1, runner.Env{WorkerIndex: -1})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := u.RunTask(ctx); err != nil {
					b.Fatal(err)
				}
				if i%1000 == 999 {
					stats.Drain(time.Now())
				}
			}
			perEvent(b, events)
			if r := stats.Drain(time.Now()); r.Total.NumFailures != 0 {
				b.Fatalf("failures: %+v", r.Errors)
			}
		})
		b.Run("floor/"+shape.name, func(b *testing.B) {
			br := bufio.NewReaderSize(nil, 16<<10)
			reqBody := []byte(`{"inputs":{},"query":"hello","response_mode":"streaming","user":"floor","conversation_id":""}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, "http://127.0.0.1:5001/v1/chat-messages", bytes.NewReader(reqBody))
				req.Header.Set("Authorization", "Bearer "+difymock.SimpleChatKey)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				br.Reset(resp.Body)
				n := 0
				for {
					line, err := br.ReadSlice('\n')
					if bytes.HasPrefix(line, []byte("data:")) {
						n++
					}
					if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
						break
					}
				}
				_ = resp.Body.Close()
				if n != events {
					b.Fatalf("%d data lines, want %d", n, events)
				}
			}
			perEvent(b, events)
		})
	}
}

func perEvent(b *testing.B, events int) {
	b.StopTimer()
	el := b.Elapsed()
	b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/float64(events), "ns/event")
	b.ReportMetric(float64(events), "events/stream")
}

// BenchmarkPerStreamParallel runs the difyload path of BenchmarkPerStream from GOMAXPROCS
// goroutines sharing one client, Stats, LLM histograms and JSONL writer, as a worker's users
// do. Run with -cpu 1,2: the ratio of streams/s is the user-space part of the worker's
// multi-core scaling (shared locks, atomics, allocation), without the kernel and the mock.
func BenchmarkPerStreamParallel(b *testing.B) {
	body := mockBody(b, "20")
	client := &http.Client{Transport: cannedTransport{body: body}}
	stats := metrics.NewStats()
	llm := metrics.NewLLM(metrics.SLO{})
	obs := tasks.NewLLMObserver(tasks.LLMObserverConfig{LLM: llm, JSONL: metrics.NewJSONLWriter(io.Discard)})
	cfg := tasks.Config{Host: "http://127.0.0.1:5001", SimpleWeight: 1, Defaults: tasks.Keys{SimpleAppKey: difymock.SimpleChatKey}}
	cls, err := tasks.NewChatUser(cfg, sse.NewClient(sse.Config{Client: client}), stats, obs)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var id atomicCounter
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u, err := cls.NewUser(id.next(), runner.Env{WorkerIndex: -1})
		if err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := u.RunTask(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "streams/s")
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int { return int(c.n.Add(1)) }
