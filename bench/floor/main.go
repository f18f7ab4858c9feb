// Command floor is the benchmark's reference client: the least a Go program can do to
// stream Dify answers. N goroutines POST to /v1/chat-messages in a closed loop with net/http
// and a bufio.Reader, count `data:` lines, and note the first answer token's arrival time and
// the message_id. No SSE semantics, no stats model, no timeouts beyond the run's own.
//
//	floor -url http://127.0.0.1:5001 -users 100 -duration 30s -out floor.jsonl
//
// Each finished stream appends {"message_id","start","first_token"} (unix seconds) to -out.
// At the end it prints one JSON summary line (streams, events, CPU seconds from /proc).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const defaultKey = "app-mocksimplechatflow000000" // difymock.SimpleChatKey

func main() {
	var (
		base     = flag.String("url", "http://127.0.0.1:5001", "mock base URL")
		key      = flag.String("key", defaultKey, "app key")
		users    = flag.Int("users", 10, "concurrent closed-loop streams")
		duration = flag.Duration("duration", 10*time.Second, "run time (0: until SIGTERM)")
		ramp     = flag.Duration("ramp", time.Second, "spread the users' starts over this long")
		out      = flag.String("out", "", "per-stream JSONL file (empty: none)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := run(ctx, *base, *key, *users, *ramp, *out); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

type logger struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *logger) write(id []byte, start, first time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	fmt.Fprintf(l.w, "{\"message_id\":%q,\"start\":%.6f,\"first_token\":%.6f}\n", id,
		float64(start.UnixNano())/1e9, float64(first.UnixNano())/1e9)
	l.mu.Unlock()
}

func run(ctx context.Context, base, key string, users int, ramp time.Duration, out string) error {
	var lg *logger
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		lg = &logger{w: bufio.NewWriterSize(f, 256<<10)}
		defer lg.w.Flush()
	}
	tr := &http.Transport{MaxIdleConns: users + 16, MaxIdleConnsPerHost: users + 16, DisableCompression: true}
	client := &http.Client{Transport: tr}
	body := []byte(`{"inputs":{},"query":"hello","response_mode":"streaming","user":"floor","conversation_id":""}`)
	var streams, events, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < users; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if users > 1 && ramp > 0 {
				select {
				case <-time.After(ramp * time.Duration(i) / time.Duration(users)):
				case <-ctx.Done():
					return
				}
			}
			br := bufio.NewReaderSize(nil, 16<<10)
			for ctx.Err() == nil {
				n, ok := stream(ctx, client, base+"/v1/chat-messages", key, body, br, lg)
				events.Add(n)
				if ok {
					streams.Add(1)
				} else if ctx.Err() == nil {
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(i)
	}
	wg.Wait()
	cpu := selfCPU()
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"streams": streams.Load(), "events": events.Load(), "failed": failed.Load(), "cpu_s": cpu})
}

// The markers a data line is scanned for; stream turns them into byte slices once per
// request, on its stack.
const (
	dataPrefix = "data:"
	msgEvent   = `"event":"message"`
	endEvent   = `"event":"message_end"`
	idKey      = `"message_id":"`
)

// stream runs one request; it returns the data lines read and whether message_end came.
func stream(ctx context.Context, c *http.Client, url, key string, body []byte, br *bufio.Reader, lg *logger) (int64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, false
	}
	br.Reset(resp.Body)
	dataPrefix, msgEvent, endEvent, idKey := []byte(dataPrefix), []byte(msgEvent), []byte(endEvent), []byte(idKey)
	var n int64
	var first time.Time
	var id [36]byte
	done := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && bytes.HasPrefix(line, dataPrefix) {
			n++
			if first.IsZero() && bytes.Contains(line, msgEvent) {
				first = time.Now()
				if i := bytes.Index(line, idKey); i >= 0 && len(line) >= i+len(idKey)+36 {
					copy(id[:], line[i+len(idKey):])
				}
			} else if bytes.Contains(line, endEvent) {
				done = true
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			break
		}
	}
	if done && !first.IsZero() {
		lg.write(id[:], start, first)
	}
	return n, done
}

// selfCPU returns this process's utime+stime in seconds (from /proc/self/stat).
func selfCPU() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}
