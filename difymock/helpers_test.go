package difymock

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

//nolint:gochecknoglobals // a test flag (go test ./difymock -run Golden -update), the testing package's idiom for goldens
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMain(m *testing.M) {
	// The capacity helper process is a server, not a test run.
	if os.Getenv(capacityServeEnv) != "" {
		os.Exit(capacityServe(os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// deterministic installs the test hooks: sequential ids, a clock that
// starts at 1767769588 s and advances 1 ms per reading, a fixed PRNG seed.
func deterministic(s *Server) {
	var ids, ticks atomic.Int64
	base := time.Unix(1767769588, 0)
	s.newID = func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) }
	s.now = func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
	s.seed = func() (uint64, uint64) { return 1, 2 }
}

// startServer serves s on 127.0.0.1 and closes it at test end.
func startServer(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

// noKeepAlive is a client that does not pool connections (so that no idle
// connection goroutines outlive a test).
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
}

type call struct {
	method, path, key, ctype, body string
	hdr                            map[string]string
	within                         time.Duration // client timeout (0: none)
}

// reply is the head of a response whose body do has read and closed.
type reply struct {
	Proto, Status    string
	StatusCode       int
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
}

func headOf(resp *http.Response) *reply {
	return &reply{Proto: resp.Proto, Status: resp.Status, StatusCode: resp.StatusCode, Header: resp.Header,
		ContentLength: resp.ContentLength, TransferEncoding: resp.TransferEncoding}
}

// do sends the call and reads the whole body (the error is the send's or the read's; the
// reply is nil when nothing came back).
func (c call) do(t testing.TB, base string) (*reply, []byte, error) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.ctype != "-" {
		ct := c.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range c.hdr {
		if k == "Authorization" && v == "-" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	cl := newClient()
	cl.Timeout = c.within
	defer cl.CloseIdleConnections()
	resp, err := cl.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return headOf(resp), b, err
}

// openStream posts body to path with key and returns the response, its body still to read;
// the body and the client's connections are closed at test end.
func openStream(t testing.TB, base, path, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	cl := newClient()
	t.Cleanup(cl.CloseIdleConnections)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func chatBody(mode string) string {
	return `{"inputs":{"city":"SF"},"query":"hello","response_mode":"` + mode + `","user":"load-u-0001","conversation_id":"","auto_generate_name":false}`
}

// transcript renders a response for a golden file: status, headers (sorted,
// without Date), a blank line, then the body with long runs of 'x'
// abbreviated, then the read error if any.
func transcript(resp *reply, body []byte, readErr error) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		if k != "Date" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	if len(resp.TransferEncoding) > 0 {
		fmt.Fprintf(&b, "[transfer-encoding: %s]\n", strings.Join(resp.TransferEncoding, ","))
	}
	fmt.Fprintf(&b, "[content-length: %d]\n\n", resp.ContentLength)
	b.Write(abbreviate(body))
	if readErr != nil {
		msg := readErr.Error()
		if strings.Contains(msg, "reset") {
			msg = "connection reset"
		} else if strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "deadline") {
			msg = "client timeout"
		} else if strings.Contains(msg, "EOF") {
			msg = "unexpected EOF"
		}
		fmt.Fprintf(&b, "\n[read error: %s]\n", msg)
	}
	return b.Bytes()
}

func abbreviate(body []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(body); {
		j := i
		for j < len(body) && body[j] == 'x' {
			j++
		}
		if j-i > 64 {
			fmt.Fprintf(&out, "<x*%d>", j-i)
			i = j
			continue
		}
		if j > i {
			out.Write(body[i:j])
			i = j
			continue
		}
		out.WriteByte(body[i])
		i++
	}
	return out.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./difymock -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// sseEvent is one frame read by readSSE.
type sseEvent struct {
	event string // "ping" for the keep-alive, else ""
	data  string
}

// readSSE is a tiny SSE frame reader for tests: it splits on blank lines
// and returns each frame's event and data fields.
func readSSE(r io.Reader) ([]sseEvent, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	var out []sseEvent
	var cur sseEvent
	has := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if has {
				out = append(out, cur)
			}
			cur, has = sseEvent{}, false
			continue
		}
		has = true
		switch {
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		}
	}
	if has {
		out = append(out, cur)
	}
	return out, sc.Err()
}
