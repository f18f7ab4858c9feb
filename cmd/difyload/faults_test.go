package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// closingDify serves chat streams that fail in the ways the mock cannot produce: the server
// closes the TCP connection cleanly (FIN) in the middle of an event, with and without
// chunked encoding; plus failures that leave the connection reusable. It counts what it
// served and the connections it accepted.
type closingDify struct {
	n     atomic.Int64
	conns atomic.Int64
	mu    sync.Mutex
	kinds map[string]int64
}

const (
	kindFINChunked  = "fin mid-event (chunked)"
	kindFINEOF      = "fin mid-event (connection: close)"
	kindErrorEvent  = "error event"
	kindHTML503     = "503 html"
	kindContentType = "wrong content type"
	kindOK          = "ok"
)

// closingKinds is the cycle of answers the fake serves, one per chat request.
func closingKinds() [7]string {
	return [...]string{kindFINChunked, kindFINEOF, kindErrorEvent, kindHTML503, kindContentType, kindOK, kindOK}
}

const (
	evMsg = `{"event":"message","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","answer":"Hi"}`
	evEnd = `{"event":"message_end","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","metadata":{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"latency":0.1}}}`
	evErr = `{"event":"error","message_id":"m","code":"provider_quota_exceeded","status":400,"message":"quota"}`
)

func (d *closingDify) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if r.URL.Path != "/v1/chat-messages" { // retrieve: always fine, not counted
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"query":{"content":"q"},"records":[]}`)
		return
	}
	kinds := closingKinds()
	kind := kinds[int(d.n.Add(1)-1)%len(kinds)]
	defer func() {
		d.mu.Lock()
		d.kinds[kind]++
		d.mu.Unlock()
	}()
	half := "data: " + evMsg[:len(evMsg)/2]
	switch kind {
	case kindFINChunked, kindFINEOF:
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close() // FIN, not RST: nothing is left unread
		if kind == kindFINChunked {
			body := "data: " + evMsg + "\n\n" + half
			fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(body), body)
		} else {
			fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: %s\n\n%s", evMsg, half)
		}
		_ = rw.Flush()
	case kindErrorEvent:
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\ndata: %s\n\n", evMsg, evErr)
	case kindHTML503:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "<html><body>upstream unavailable</body></html>")
	case kindContentType:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"answer":"blocking answer"}`)
	default:
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\ndata: %s\n\n", evMsg, evEnd)
	}
}

// TestServerClosesMidEvent runs `difyload run` against closingDify: every
// request ends as exactly one success or one failure with its stable text, the counts equal
// the server's, and the HTTP/1.1 connection is reused after every failure that leaves it
// usable: only the server's own closes cost a new connection.
func TestServerClosesMidEvent(t *testing.T) {
	t.Parallel()
	d := &closingDify{kinds: map[string]int64{}}
	srv := httptest.NewUnstartedServer(d)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			d.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	const users = 4 // 2 ChatUsers, 2 RetrieveUsers
	_, _, stats, failures, err := runFor(t, nil, "--host", srv.URL, "-u", strconv.Itoa(users), "-r", strconv.Itoa(users))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // every handler has returned: the counts are final
	d.mu.Lock()
	kinds := d.kinds
	d.mu.Unlock()
	total := int64(0)
	for _, n := range kinds {
		total += n
	}
	if kinds[kindFINChunked] == 0 || kinds[kindFINEOF] == 0 {
		t.Fatalf("too little load: %v", kinds)
	}
	rows := requestRows(stats)
	streams := total - kinds[kindHTML503]
	streamFails := kinds[kindFINChunked] + kinds[kindFINEOF] + kinds[kindErrorEvent] + kinds[kindContentType]
	want := map[string][2]string{
		"POST /v1/chat-messages": {strconv.FormatInt(total, 10), strconv.FormatInt(kinds[kindHTML503], 10)},
		"SSE TTFB":               {strconv.FormatInt(kinds[kindFINChunked]+kinds[kindFINEOF]+kinds[kindErrorEvent]+kinds[kindOK], 10), "0"},
		"SSE Full Response":      {strconv.FormatInt(streams, 10), strconv.FormatInt(streamFails, 10)},
	}
	for name, w := range want {
		if rows[name] != w {
			t.Errorf("%s: (requests, failures) %v, the server says %v", name, rows[name], w)
		}
	}
	wantFail := map[string]int64{
		"POST /v1/chat-messages: HTTP 503":                                   kinds[kindHTML503],
		"SSE Full Response: stream ended before message_end":                 kinds[kindFINChunked] + kinds[kindFINEOF],
		"SSE Full Response: stream error: provider_quota_exceeded":           kinds[kindErrorEvent],
		"SSE Full Response: invalid response: content-type application/json": kinds[kindContentType],
	}
	got := map[string]int64{}
	delete(rows, "POST /v1/datasets/[id]/retrieve")
	for _, f := range failures {
		n, _ := strconv.ParseInt(f["Occurrences"], 10, 64)
		got[f["Method"]+" "+f["Name"]+": "+f["Error"]] += n
	}
	for k, n := range wantFail {
		if got[k] != n {
			t.Errorf("failure %q: %d, the server says %d", k, got[k], n)
		}
	}
	if len(got) != len(wantFail) {
		t.Errorf("failures %v, want %v", got, wantFail)
	}
	// Keep-alive: each FIN costs a connection; the other failures do not.
	closing := kinds[kindFINChunked] + kinds[kindFINEOF]
	conns := d.conns.Load()
	t.Logf("%d requests over %d connections; the server closed %d: %v", total, conns, closing, kinds)
	if limit := closing + 2*users + 1; conns > limit {
		t.Errorf("%d connections for %d requests, more than the %d the server closed + 2 per user: not reused after failures", conns, total, closing)
	}
}
