package difymock

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Capacity test: the mock runs in a child process (this test binary with
// DIFYMOCK_CAPACITY_SERVE=1) so that its RSS is measured alone and each
// process needs only about N file descriptors. The parent opens N slow
// streams with raw net.Dial clients (no goroutine per stream on the client
// side once open) and asks the child for its memory figures.
//
//	go test ./difymock -run TestCapacity -v                           # N=2000
//	DIFYMOCK_CAPACITY_N=20000 go test ./difymock -run TestCapacity -v # see CAPACITY.md
const (
	capacityServeEnv = "DIFYMOCK_CAPACITY_SERVE"
	capacityNEnv     = "DIFYMOCK_CAPACITY_N"
)

type memStats struct {
	RSS        int64 `json:"rss"`
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
	Sys        int64 `json:"sys"`
	Goroutines int   `json:"goroutines"`
}

func readMem() memStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{HeapInuse: int64(ms.HeapInuse), StackInuse: int64(ms.StackInuse), Sys: int64(ms.Sys), Goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				m.RSS = kb << 10
			}
		}
	}
	return m
}

// capacityServe is the child: serve on 127.0.0.1:0, print the address, then
// answer each "stats" line on stdin with a JSON memStats line; exit on EOF.
func capacityServe(stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	s := New(Config{MaxRecords: -1})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	fmt.Fprintf(stdout, "ADDR %s\n", ln.Addr())
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() == "stats" {
			b, _ := json.Marshal(readMem())
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func TestCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("capacity test skipped in -short mode")
	}
	n := 2000
	if v := os.Getenv(capacityNEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q", capacityNEnv, v)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), capacityServeEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	}()
	out := bufio.NewScanner(stdout)
	if !out.Scan() {
		t.Fatal("no address from server process")
	}
	addr := strings.TrimPrefix(out.Text(), "ADDR ")
	stats := func() memStats {
		fmt.Fprintln(stdin, "stats")
		if !out.Scan() {
			t.Fatal("server process gone")
		}
		var m memStats
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := stats()

	body := chatBody("streaming")
	reqText := fmt.Sprintf("POST /v1/chat-messages HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"X-Mock-TTFT: 0s\r\nX-Mock-Token-Delay: 10s\r\nX-Mock-Tokens: 100\r\nContent-Length: %d\r\n\r\n%s", addr, ComplexChatKey, len(body), body)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for i := range next {
				c, err := dialStream(t.Context(), addr, reqText, buf)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("stream %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	opened := time.Since(start)
	time.Sleep(time.Second)
	loaded := stats()
	tr := serverTruth(t, addr)
	if tr.InFlight != int64(n) {
		t.Errorf("server in flight %d, want %d", tr.InFlight, n)
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(n) / 1024 }
	t.Logf("streams=%d opened in %v (race=%v)", n, opened.Round(time.Millisecond), raceEnabled)
	t.Logf("server RSS %.1f MiB -> %.1f MiB: %.1f KiB/stream", float64(base.RSS)/(1<<20), float64(loaded.RSS)/(1<<20), per(loaded.RSS, base.RSS))
	t.Logf("server heap_inuse %.1f KiB/stream, stack_inuse %.1f KiB/stream, goroutines %d -> %d",
		per(loaded.HeapInuse, base.HeapInuse), per(loaded.StackInuse, base.StackInuse), base.Goroutines, loaded.Goroutines)
}

// dialStream opens one stream and reads until the first answer chunk.
func dialStream(ctx context.Context, addr, reqText string, buf []byte) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte(reqText)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	seen := 0
	for {
		m, err := c.Read(buf[seen:])
		if err != nil {
			c.Close()
			return nil, err
		}
		seen += m
		if strings.Contains(string(buf[:seen]), `"answer":"`) {
			break
		}
		if seen == len(buf) {
			c.Close()
			return nil, fmt.Errorf("no answer chunk in %d bytes", seen)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}

func serverTruth(t *testing.T, addr string) Truth {
	t.Helper()
	cl := newClient()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/_mock/stats?records=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr Truth
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %v %d", err, resp.StatusCode)
	}
	return tr
}
