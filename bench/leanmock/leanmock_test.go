package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const body = `{"inputs":{},"query":"hello","response_mode":"streaming","user":"floor","conversation_id":""}`

// startLean serves leanmock on a loopback port until the test ends.
func startLean(t *testing.T, c config) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { assert.NoError(t, serve(ctx, ln, c)) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

// fetch posts body and returns each data line, in order.
func fetch(t *testing.T, url, conversation string) []string {
	t.Helper()
	b := strings.Replace(body, `"conversation_id":""`, `"conversation_id":"`+conversation+`"`, 1)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/chat-messages", strings.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+difymock.SimpleChatKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			lines = append(lines, l)
		}
	}
	require.NoError(t, sc.Err())
	return lines
}

var (
	uuidRE = regexp.MustCompile(`"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"`)
	timeRE = regexp.MustCompile(`("(created_at|finished_at)":)[0-9]+`)
	numRE  = regexp.MustCompile(`("(elapsed_time|latency|time_to_first_token|time_to_generate|completion_price|total_price)":"?)[0-9.]+`)
)

// shape is a line with its ids, times and measured numbers masked: what must agree.
func shape(l string) string {
	l = uuidRE.ReplaceAllString(l, `"ID"`)
	l = timeRE.ReplaceAllString(l, "${1}T")
	return numRE.ReplaceAllString(l, "${1}N")
}

// TestSameStreamAsDifymock: leanmock's simple chatflow is difymock's, event for event and
// byte for byte once ids, times and timings are masked, so the generators parse the same
// stream from both.
func TestSameStreamAsDifymock(t *testing.T) {
	const tokens = 20
	dm := httptest.NewServer(difymock.New(difymock.Config{TTFT: 5 * time.Millisecond, TokenDelay: time.Millisecond, Tokens: tokens}))
	defer dm.Close()
	lean := startLean(t, config{ttft: 5 * time.Millisecond, delay: time.Millisecond, tokens: tokens})

	want, got := fetch(t, dm.URL, ""), fetch(t, lean, "")
	require.Len(t, got, len(want))
	require.Len(t, got, 1+4+tokens+3) // ping, 4 workflow events, the tokens, 3 after
	for i := range want {
		assert.Equal(t, shape(want[i]), shape(got[i]), "line %d", i)
	}
}

// TestPad: -pad lengthens each filler chunk by exactly that many bytes, the first two chunks
// ("You said: ", the query) stay, and the full answer in the closing events is the chunks'
// text: every line is still one JSON event.
func TestPad(t *testing.T) {
	const tokens, pad = 6, 100
	lean := startLean(t, config{ttft: time.Millisecond, delay: 0, tokens: tokens, pad: pad})
	type event struct {
		Event  string `json:"event"`
		Answer string `json:"answer"`
		Data   struct {
			Outputs struct {
				Answer *string `json:"answer"`
			} `json:"outputs"`
		} `json:"data"`
	}
	var chunks []string
	var full []string
	for _, l := range fetch(t, lean, "")[1:] {
		var e event
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &e), l)
		if e.Event == "message" {
			chunks = append(chunks, e.Answer)
		}
		if e.Data.Outputs.Answer != nil {
			full = append(full, *e.Data.Outputs.Answer)
		}
	}
	require.Len(t, chunks, tokens)
	assert.Equal(t, []string{"You said: ", "hello"}, chunks[:2])
	for i, filler := range []string{" token", " from", " the", " difymock"} { // difymock's, from chunk 2
		c := chunks[2+i]
		assert.True(t, strings.HasPrefix(c, filler), "chunk %d: %q", 2+i, c)
		assert.Len(t, c, len(filler)+pad, "chunk %d", 2+i)
	}
	assert.Equal(t, []string{strings.Join(chunks, ""), strings.Join(chunks, "")}, full) // node_finished, workflow_finished
}

// TestConversationEchoed: a follow-up turn's conversation_id comes back in every event.
func TestConversationEchoed(t *testing.T) {
	lean := startLean(t, config{ttft: time.Millisecond, delay: 0, tokens: 3})
	const conv = "0b5e5d4e-1f2a-4c3b-9d8e-7f6a5b4c3d2e"
	for _, l := range fetch(t, lean, conv)[1:] {
		assert.Contains(t, l, `"conversation_id":"`+conv+`"`)
	}
}

type stats struct {
	Counts   map[string]map[string]int `json:"counts"`
	InFlight int                       `json:"in_flight"`
	Records  []struct {
		MessageID  string `json:"message_id"`
		Outcome    string `json:"outcome"`
		Tokens     int    `json:"tokens"`
		Received   int64  `json:"received"`
		FirstToken int64  `json:"first_token"`
		Write      int64  `json:"first_token_write"`
	} `json:"records"`
}

func getStats(t *testing.T, url string) stats {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var s stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// TestTruth: the records the bench joins on (message_id, received, first_token), the counts,
// records=0, reset, and a client that leaves mid-stream.
func TestTruth(t *testing.T) {
	const ttft = 20 * time.Millisecond
	lean := startLean(t, config{ttft: ttft, delay: time.Millisecond, tokens: 4})
	lines := fetch(t, lean, "")
	var msg struct {
		MessageID string `json:"message_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &msg))

	s := getStats(t, lean+"/_mock/stats")
	require.Len(t, s.Records, 1)
	r := s.Records[0]
	assert.Equal(t, map[string]int{"ok": 1}, s.Counts["chat-messages"])
	assert.Equal(t, msg.MessageID, r.MessageID)
	assert.Equal(t, "ok", r.Outcome)
	assert.Equal(t, 4, r.Tokens)
	assert.GreaterOrEqual(t, r.Write, r.Received+int64(ttft))
	assert.GreaterOrEqual(t, r.FirstToken, r.Write)
	assert.Empty(t, getStats(t, lean+"/_mock/stats?records=0").Records)

	// A client that goes away before the first token: counted apart, never "ok".
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", strings.TrimPrefix(lean, "http://"))
	require.NoError(t, err)
	_, err = io.WriteString(conn, "POST /v1/chat-messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	require.NoError(t, err)
	head := make([]byte, 16)
	_, err = io.ReadFull(conn, head)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool { return getStats(t, lean+"/_mock/stats").Counts["chat-messages"]["client_closed"] == 1 },
		5*time.Second, 10*time.Millisecond)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, lean+"/_mock/reset", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	s = getStats(t, lean+"/_mock/stats")
	assert.Empty(t, s.Records)
	assert.Empty(t, s.Counts["chat-messages"])
	assert.Zero(t, s.InFlight)
}

// TestBadRequests: what leanmock does not serve gets a 400 and a closed connection.
func TestBadRequests(t *testing.T) {
	lean := startLean(t, config{ttft: time.Millisecond, tokens: 2})
	for name, req := range map[string]string{
		"chunked body":    "POST /v1/chat-messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"bad length":      "POST /v1/chat-messages HTTP/1.1\r\nContent-Length: x\r\n\r\n",
		"no version":      "GET /\r\n\r\n",
		"header no colon": "GET / HTTP/1.1\r\nnonsense\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", strings.TrimPrefix(lean, "http://"))
			require.NoError(t, err)
			defer conn.Close()
			_, err = io.WriteString(conn, req)
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			got, err := io.ReadAll(conn)
			require.NoError(t, err) // the server closed it
			assert.True(t, strings.HasPrefix(string(got), "HTTP/1.1 400 "), "%q", got)
		})
	}
}

// TestUnknownPath: 404, and the connection stays open for the next request.
func TestUnknownPath(t *testing.T) {
	lean := startLean(t, config{ttft: time.Millisecond, tokens: 2})
	for range 2 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, lean+"/v1/nothing", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	}
}
