package difymock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func fastConfig() Config { return Config{TTFT: -1, TokenDelay: -1, RetrievalLatency: -1, Tokens: 5} }

func TestKeys(t *testing.T) {
	t.Parallel()
	alnum := func(s string) bool {
		for _, c := range s {
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
				return false
			}
		}
		return true
	}
	for _, k := range []string{SimpleChatKey, ComplexChatKey, AgentChatKey} {
		rest, ok := strings.CutPrefix(k, "app-")
		if !ok || len(rest) != 24 || !alnum(rest) {
			t.Errorf("app key %q is not app- + 24 alphanumerics", k)
		}
	}
	if rest, ok := strings.CutPrefix(DatasetKey, "dataset-"); !ok || len(rest) != 24 || !alnum(rest) {
		t.Errorf("dataset key %q is not dataset- + 24 alphanumerics", DatasetKey)
	}
	if !isUUID(DefaultDatasetID) {
		t.Errorf("DefaultDatasetID %q is not a UUID", DefaultDatasetID)
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: -1, TokenDelay: -1, RetrievalLatency: -1, Tokens: 2, DatasetIDs: []string{"11111111-2222-4333-8444-555555555555"}})
	ts := startServer(t, s)
	chat := chatBody("streaming")
	ret := func(id string) string { return "/v1/datasets/" + id + "/retrieve" }
	long := `{"query":"` + strings.Repeat("é", 251) + `"}`
	cases := []struct {
		name   string
		c      call
		status int
		code   string
		msg    string
	}{
		{"no auth", call{path: "/v1/chat-messages", body: chat}, 401, "unauthorized", "Authorization header must be provided and start with 'Bearer'"},
		{"no space", call{path: "/v1/chat-messages", body: chat, hdr: map[string]string{"Authorization": "Bearer"}}, 401, "unauthorized", "Authorization header must be provided and start with 'Bearer'"},
		{"basic", call{path: "/v1/chat-messages", body: chat, hdr: map[string]string{"Authorization": "Basic " + SimpleChatKey}}, 401, "unauthorized", "Authorization scheme must be 'Bearer'"},
		{"unknown key", call{path: "/v1/chat-messages", key: "app-000000000000000000000000", body: chat}, 401, "unauthorized", "Access token is invalid"},
		{"dataset key on chat", call{path: "/v1/chat-messages", key: DatasetKey, body: chat}, 401, "unauthorized", "Access token is invalid"},
		{"app key on retrieve", call{path: ret(DefaultDatasetID), key: SimpleChatKey, body: `{"query":"q"}`}, 401, "unauthorized", "Access token is invalid"},
		{"dataset key on parameters", call{method: "GET", path: "/v1/parameters", key: DatasetKey, ctype: "-"}, 401, "unauthorized", "Access token is invalid"},
		{"lower-case scheme ok", call{path: "/v1/chat-messages", body: chat, hdr: map[string]string{"Authorization": "bearer " + SimpleChatKey}}, 200, "", ""},
		{"415", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, ctype: "text/plain"}, 415, "unsupported_media_type", "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."},
		{"415 missing", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, ctype: "-"}, 415, "unsupported_media_type", "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."},
		{"json charset ok", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, ctype: "application/json; charset=utf-8"}, 200, "", ""},
		{"bad json", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{`}, 400, "bad_request", "The browser (or proxy) sent a request that this server could not understand."},
		{"user missing", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"query":"q"}`}, 400, "invalid_param", "Arg user must be provided."},
		{"user empty", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"query":"q","user":""}`}, 400, "invalid_param", "Arg user must be provided."},
		{"query missing", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"user":"u"}`}, 400, "invalid_param", "1 validation error for ChatRequestPayload\nquery\n  Field required"},
		{"inputs missing", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"query":"q","user":"u"}`}, 400, "invalid_param", "1 validation error for ChatRequestPayload\ninputs\n  Field required"},
		{"inputs not object", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":[],"query":"q","user":"u"}`}, 400, "invalid_param", "1 validation error for ChatRequestPayload\ninputs\n  Input should be a valid dictionary"},
		{"bad mode", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"query":"q","user":"u","response_mode":"fast"}`}, 400, "invalid_param", "1 validation error for ChatRequestPayload\nresponse_mode\n  Input should be 'blocking' or 'streaming'"},
		{"bad conversation", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"query":"q","user":"u","conversation_id":"nope"}`}, 400, "invalid_param", "conversation_id must be a valid UUID"},
		{"null conversation ok", call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{},"query":"q","user":"u","conversation_id":null,"response_mode":"streaming"}`}, 200, "", ""},
		{"unknown conversation", call{path: "/v1/chat-messages", key: ChatAppKey, body: `{"inputs":{},"query":"q","user":"u","conversation_id":"` + DefaultDatasetID + `","response_mode":"streaming"}`}, 404, "not_found", "Conversation Not Exists."},
		{"empty query", call{path: "/v1/chat-messages", key: ChatAppKey, body: `{"inputs":{},"query":" ","user":"u","response_mode":"streaming"}`}, 400, "invalid_param", "Query is required"},
		{"wrong route", call{path: "/v1/workflows/run", key: ChatAppKey, body: `{"inputs":{},"user":"u"}`}, 400, "not_workflow_app", "Please check if your app mode matches the right API route."},
		{"agent blocking", call{path: "/v1/chat-messages", key: AgentChatKey, body: chatBody("blocking")}, 400, "invalid_param", "Agent Chat App does not support blocking mode"},
		{"429 fault", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-Fault": "429"}}, 429, "too_many_requests", "Too many requests. Please try again later. The current maximum concurrent requests allowed for 5b3d9a61-7c2e-4f80-9d14-2a6b8c0e1f31 is 10."},
		{"401 fault", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-Fault": "401"}}, 401, "unauthorized", "Access token is invalid"},
		{"500 fault", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-Fault": "500"}}, 500, "internal_server_error", "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."},
		{"bad ttft header", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-TTFT": "soon"}}, 400, "invalid_param", `X-Mock-Ttft: invalid duration "soon"`},
		{"unknown fault header", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-Fault": "meteor"}}, 400, "invalid_param", `X-Mock-Fault: unknown fault "meteor"`},
		{"bad tokens header", call{path: "/v1/chat-messages", key: SimpleChatKey, body: chat, hdr: map[string]string{"X-Mock-Tokens": "0"}}, 400, "invalid_param", `X-Mock-Tokens: want an integer in 1..1000000, got "0"`},
		{"unknown dataset", call{path: ret("00000000-0000-4000-8000-000000000000"), key: DatasetKey, body: `{"query":"q"}`}, 404, "not_found", "Dataset not found."},
		{"configured dataset", call{path: ret("11111111-2222-4333-8444-555555555555"), key: DatasetKey, body: `{"query":"q"}`}, 200, "", ""},
		{"query too long", call{path: ret(DefaultDatasetID), key: DatasetKey, body: long}, 400, "invalid_param", "Query cannot exceed 250 characters"},
		{"query 250 ok", call{path: ret(DefaultDatasetID), key: DatasetKey, body: `{"query":"` + strings.Repeat("é", 250) + `"}`}, 200, "", ""},
		{"bad search method", call{path: ret(DefaultDatasetID), key: DatasetKey, body: `{"query":"q","retrieval_model":{"search_method":"magic","reranking_enable":false,"top_k":2,"score_threshold_enabled":false}}`}, 400, "invalid_param", "Retrieval method is required"},
		{"retrieve 415", call{path: ret(DefaultDatasetID), key: DatasetKey, body: `{"query":"q"}`, ctype: "text/plain"}, 415, "unsupported_media_type", "Did not attempt to load JSON data because the request Content-Type was not 'application/json'."},
		{"retrieve 429", call{path: ret(DefaultDatasetID), key: DatasetKey, body: `{"query":"q"}`, hdr: map[string]string{"X-Mock-Fault": "429"}}, 429, "too_many_requests", "Too many requests. Please try again later. The current maximum concurrent requests allowed for " + DefaultDatasetID + " is 10."},
		{"retrieve_500", call{path: ret(DefaultDatasetID), key: DatasetKey, body: `{"query":"q"}`, hdr: map[string]string{"X-Mock-Fault": "retrieve_500"}}, 500, "internal_server_error", "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."},
		{"unknown path", call{method: "GET", path: "/v1/nothing", key: SimpleChatKey}, 404, "not_found", notFoundMsg},
		{"GET chat", call{method: "GET", path: "/v1/chat-messages", key: SimpleChatKey}, 405, "method_not_allowed", "The method is not allowed for the requested URL."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body, err := tc.c.do(t, ts.URL)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if resp.Header.Get("X-Version") != "1.13.3" || resp.Header.Get("X-Env") != "PRODUCTION" {
				t.Errorf("missing X-Version/X-Env: %v", resp.Header)
			}
			if tc.status == 200 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), map[bool]string{true: `Bearer realm="api"`}[tc.status == 401]; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			e := enc{}
			e.open().kstr("code", tc.code).kstr("message", tc.msg).kint("status", int64(tc.status)).close()
			// flask-restx serializes with ujson: "/" is escaped as "\/".
			want := strings.ReplaceAll(string(e.b), "/", `\/`) + "\n"
			if string(body) != want {
				t.Errorf("body\n got %q\nwant %q", body, want)
			}
		})
	}
}

// streamFrames posts a streaming chat and returns the frames and the time
// from sending to the first answer chunk.
func streamFrames(t *testing.T, base, key string, hdr map[string]string) ([]sseEvent, time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/v1/chat-messages", strings.NewReader(chatBody("streaming")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := newClient()
	start := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read line by line to time the first answer chunk.
	var ttft time.Duration
	var buf bytes.Buffer
	tmp := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(tmp)
		buf.Write(tmp[:n])
		if ttft == 0 && bytes.Contains(buf.Bytes(), []byte(`"answer":"`)) {
			ttft = time.Since(start)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	evs, err := readSSE(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return evs, ttft
}

type frame struct {
	Event    string          `json:"event"`
	Answer   *string         `json:"answer"`
	Metadata json.RawMessage `json:"metadata"`
}

func TestHeaderOverrides(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: -1, TokenDelay: -1, Tokens: 3, Faults: map[string]float64{"429": 1}})
	ts := startServer(t, s)
	for _, key := range []string{SimpleChatKey, ComplexChatKey, AgentChatKey} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			evs, ttft := streamFrames(t, ts.URL, key, map[string]string{
				"X-Mock-Fault": "none", "X-Mock-Tokens": "7", "X-Mock-TTFT": "120ms",
				"X-Mock-Token-Delay": "2ms", "X-Mock-Ping-Interval": "25ms", "X-Mock-Jitter": "1ms",
			})
			if ttft < 119*time.Millisecond { // 120ms ± 1ms jitter
				t.Errorf("first token after %v, want >= 119ms", ttft)
			}
			chunks, pings, pingsBeforeFirst := 0, 0, 0
			var usage struct {
				Usage struct {
					CompletionTokens int     `json:"completion_tokens"`
					Latency          float64 `json:"latency"`
					TTFT             float64 `json:"time_to_first_token"`
					TotalPrice       string  `json:"total_price"`
				} `json:"usage"`
			}
			last := ""
			for _, ev := range evs {
				if ev.event == "ping" {
					if ev.data != "" {
						t.Errorf("ping with data %q", ev.data)
					}
					pings++
					if chunks == 0 {
						pingsBeforeFirst++
					}
					continue
				}
				var f frame
				if err := json.Unmarshal([]byte(ev.data), &f); err != nil {
					t.Fatalf("bad frame %q: %v", ev.data, err)
				}
				last = f.Event
				if (f.Event == "message" || f.Event == "agent_message") && f.Answer != nil && *f.Answer != "" {
					chunks++
				}
				if f.Event == "message_end" {
					if err := json.Unmarshal(f.Metadata, &usage); err != nil {
						t.Fatal(err)
					}
				}
			}
			if chunks != 7 || usage.Usage.CompletionTokens != 7 {
				t.Errorf("chunks %d, completion_tokens %d, want 7", chunks, usage.Usage.CompletionTokens)
			}
			if pingsBeforeFirst < 3 {
				t.Errorf("%d pings before the first token (TTFT 120ms, ping 25ms), want >= 3", pingsBeforeFirst)
			}
			if usage.Usage.TTFT < 0.119 || usage.Usage.Latency < usage.Usage.TTFT || usage.Usage.TotalPrice == "" {
				t.Errorf("usage %+v", usage.Usage)
			}
			// 1.13.x (the default) relays chatflows and ends at workflow_finished, after
			// message_end; the agent ends at message_end.
			if last != "message_end" && last != "workflow_finished" {
				t.Errorf("last event %q", last)
			}
		})
	}
	// Without the header the server-wide 429 applies.
	resp, _, err := call{path: "/v1/chat-messages", key: SimpleChatKey, body: chatBody("streaming")}.do(t, ts.URL)
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("server-wide fault: %v %v", resp, err)
	}
}

func TestNoPingsWhenFast(t *testing.T) {
	t.Parallel()
	ts := startServer(t, New(fastConfig()))
	evs, _ := streamFrames(t, ts.URL, SimpleChatKey, nil)
	for i, ev := range evs {
		// A 1.13 relay sends one ping first, before the run starts; the run itself has none.
		if ev.event == "ping" && i > 0 {
			t.Fatal("fast reply has a ping")
		}
	}
	if len(evs) == 0 || evs[0].event != "ping" {
		t.Fatal("a relayed 1.13 chatflow starts with a ping")
	}
}

func TestTruthCounts(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: time.Millisecond, TokenDelay: time.Millisecond, RetrievalLatency: time.Millisecond, Tokens: 4, MaxRecords: 50})
	ts := startServer(t, s)
	type kind struct {
		c       call
		outcome string
		ep      string
	}
	chat := func(key, fault, mode string) call {
		return call{path: "/v1/chat-messages", key: key, body: chatBody(mode), hdr: map[string]string{"X-Mock-Fault": fault, "X-Mock-Stall": "5ms"}}
	}
	ret := func(fault string) call {
		return call{path: "/v1/datasets/" + DefaultDatasetID + "/retrieve", key: DatasetKey, body: `{"query":"q"}`, hdr: map[string]string{"X-Mock-Fault": fault, "X-Mock-Stall": "5ms"}}
	}
	kinds := []kind{
		{chat(SimpleChatKey, "none", "streaming"), "ok", EndpointChat},
		{chat(ComplexChatKey, "none", "blocking"), "ok", EndpointChat},
		{chat(AgentChatKey, "429", "streaming"), "http_429", EndpointChat},
		{chat(ComplexChatKey, "500", "streaming"), "http_500", EndpointChat},
		{chat(ComplexChatKey, "error_event", "streaming"), "error_event", EndpointChat},
		{chat(SimpleChatKey, "workflow_failed", "streaming"), "workflow_failed", EndpointChat},
		{chat(AgentChatKey, "no_terminal", "streaming"), "no_terminal", EndpointChat},
		{chat(SimpleChatKey, "reset", "streaming"), "reset", EndpointChat},
		{chat(ComplexChatKey, "big_event", "streaming"), "big_event", EndpointChat},
		{chat(ComplexChatKey, "terminal_swap", "streaming"), "terminal_swap", EndpointChat},
		{chat(AgentChatKey, "stall", "streaming"), "stall", EndpointChat},
		{chat(SimpleChatKey, "malformed_json", "streaming"), "malformed_json", EndpointChat},
		{call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{}`}, "http_400", EndpointChat},
		{ret("none"), "ok", EndpointRetrieve},
		{ret("retrieve_500"), "http_500", EndpointRetrieve},
		{ret("stall"), "stall", EndpointRetrieve},
		{call{method: "GET", path: "/v1/parameters", key: AgentChatKey, ctype: "-"}, "ok", EndpointParameters},
	}
	const perKind = 12
	want := map[string]map[string]int64{}
	var wg sync.WaitGroup
	for _, k := range kinds {
		if want[k.ep] == nil {
			want[k.ep] = map[string]int64{}
		}
		want[k.ep][k.outcome] += perKind
		for range perKind {
			wg.Go(func() { _, _, _ = k.c.do(t, ts.URL) })
		}
	}
	wg.Wait()
	// A reset/handler may finish just after the client saw the end.
	got := waitIdle(t, s)
	if fmt.Sprint(got.Counts) != fmt.Sprint(want) {
		t.Errorf("counts\n got %v\nwant %v", got.Counts, want)
	}
	if len(got.Records) != 50 || got.RecordsDropped != int64(len(kinds)*perKind-50) {
		t.Errorf("records %d dropped %d", len(got.Records), got.RecordsDropped)
	}
	// Stats endpoint and reset.
	resp, body, err := call{method: "GET", path: "/_mock/stats?records=0", ctype: "-"}.do(t, ts.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	var viaHTTP Truth
	if err := json.Unmarshal(body, &viaHTTP); err != nil || len(viaHTTP.Records) != 0 || fmt.Sprint(viaHTTP.Counts) != fmt.Sprint(want) {
		t.Errorf("stats: %v %s", err, body)
	}
	if resp, _, err := (call{path: "/_mock/reset", ctype: "-"}).do(t, ts.URL); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	if tr := s.Truth(); len(tr.Counts) != 0 || len(tr.Records) != 0 {
		t.Errorf("after reset: %+v", tr)
	}
}

// waitIdle waits until no request is in flight and returns the truth.
func waitIdle(t *testing.T, s *Server) Truth {
	t.Helper()
	for range 500 {
		if tr := s.Truth(); tr.InFlight == 0 {
			return tr
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("requests still in flight")
	return Truth{}
}

func TestClientGoneAndStallExit(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: -1, TokenDelay: time.Hour, Tokens: 3})
	ts := startServer(t, s)
	for _, tc := range []struct{ fault, outcome string }{{"none", "client_gone"}, {"stall", "stall"}, {"partial_line", "partial_line"}} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat-messages", strings.NewReader(chatBody("streaming")))
		req.Header.Set("Authorization", "Bearer "+SimpleChatKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Mock-Fault", tc.fault)
		req.Header.Set("X-Mock-Stall", "1h")
		cl := newClient()
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		var got []byte
		for !bytes.Contains(got, []byte(`"answer":"You said: "`)) {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		resp.Body.Close()
		tr := waitIdle(t, s)
		if tr.Counts[EndpointChat][tc.outcome] != 1 {
			t.Errorf("fault %s: counts %v", tc.fault, tr.Counts)
		}
		s.Reset()
	}
}

func TestTimings(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: 60 * time.Millisecond, TokenDelay: 5 * time.Millisecond, Tokens: 5})
	ts := startServer(t, s)
	for _, key := range []string{SimpleChatKey, ComplexChatKey, AgentChatKey} {
		if _, _, err := (call{path: "/v1/chat-messages", key: key, body: chatBody("streaming")}).do(t, ts.URL); err != nil {
			t.Fatal(err)
		}
	}
	tr := waitIdle(t, s)
	if len(tr.Records) != 3 {
		t.Fatalf("records %+v", tr.Records)
	}
	for _, r := range tr.Records {
		if r.Outcome != "ok" || r.Tokens != 5 || r.MessageID == "" || r.User != "load-u-0001" || r.Mode != "streaming" {
			t.Errorf("record %+v", r)
		}
		if r.FirstToken < r.Received+int64(60*time.Millisecond) {
			t.Errorf("first token %v after receipt, want >= 60ms", time.Duration(r.FirstToken-r.Received))
		}
		if r.Terminal < r.Received+int64(60*time.Millisecond+4*5*time.Millisecond) || r.Terminal < r.FirstToken {
			t.Errorf("terminal %v after receipt, want >= 80ms", time.Duration(r.Terminal-r.Received))
		}
	}
}

func TestParseFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want map[string]float64
		err  bool
	}{
		{"", map[string]float64{}, false},
		{"429=0.1,error_event=0.05", map[string]float64{"429": 0.1, "error_event": 0.05}, false},
		{" stall ", map[string]float64{"stall": 1}, false},
		{"meteor=0.1", nil, true},
		{"429=2", nil, true},
		{"429=-0.1", nil, true},
		{"429=0.6,500=0.6", nil, true},
		{"429=x", nil, true},
		{"429=0.1,429=0.2", nil, true},
	}
	for _, tc := range cases {
		got, err := ParseFaults(tc.in)
		if (err != nil) != tc.err || (!tc.err && fmt.Sprint(got) != fmt.Sprint(tc.want)) {
			t.Errorf("ParseFaults(%q) = %v, %v", tc.in, got, err)
		}
	}
	if err := (Config{Faults: map[string]float64{"nope": 1}}).Validate(); err == nil {
		t.Error("Validate accepted an unknown fault")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config invalid: %v", err)
	}
	tab := newFaultTable(map[string]float64{"429": 0.25, "401": 0.25})
	for u, want := range map[float64]faultID{0: f401, 0.3: f429, 0.6: fNone} {
		if got := tab.pick(u); got != want {
			t.Errorf("pick(%v) = %v, want %v", u, got, want)
		}
	}
}

func TestEncoding(t *testing.T) {
	t.Parallel()
	floats := map[float64]string{0: "0.0", 1: "1.0", 0.0021: "0.0021", 1.203: "1.203", 0.00001: "1e-05", 1e16: "1e+16", 123456.5: "123456.5"}
	for v, want := range floats {
		if got := string(appendPyFloat(nil, v)); got != want {
			t.Errorf("float %v: %q, want %q", v, got, want)
		}
	}
	strs := []struct{ in, compact, dumps string }{
		{"a\"b\\c", `"a\"b\\c"`, `"a\"b\\c"`},
		{"é😀", `"é😀"`, `"\u00e9\ud83d\ude00"`},
		{"\n\t\x01\x7f</>", `"\n\t\u0001` + "\x7f" + `</>"`, `"\n\t\u0001\u007f</>"`},
	}
	for _, s := range strs {
		if got := string(appendString(nil, s.in, false)); got != s.compact {
			t.Errorf("compact %q: %s, want %s", s.in, got, s.compact)
		}
		if got := string(appendString(nil, s.in, true)); got != s.dumps {
			t.Errorf("dumps %q: %s, want %s", s.in, got, s.dumps)
		}
	}
	if got := price(2250 + 1800); got != "0.0000405" {
		t.Errorf("price %q", got)
	}
}

func TestListenAndServe(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"", ":5001", "0.0.0.0:5001", "[::]:5001", "example.com:80", "10.0.0.1:80"} {
		if err := ListenAndServe(context.Background(), addr, Config{}, false); err == nil {
			t.Errorf("ListenAndServe(%q) accepted a non-loopback address", addr)
		}
	}
	if err := ListenAndServe(context.Background(), "127.0.0.1:0", Config{Tokens: -1}, false); err == nil {
		t.Error("invalid config accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ListenAndServe(ctx, "127.0.0.1:0", Config{}, false) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe: %v", err)
	}
}

func TestServeShutdownWithOpenStream(t *testing.T) {
	t.Parallel()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{TTFT: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody("streaming")
	fmt.Fprintf(conn, "POST /v1/chat-messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", SimpleChatKey, len(body), body)
	buf := make([]byte, 4096)
	if _, err := conn.Read(buf); err != nil { // headers + preamble
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v", err)
	}
	if tr := s.Truth(); tr.InFlight != 0 || tr.Counts[EndpointChat]["client_gone"] != 1 {
		t.Errorf("after shutdown: %+v", tr.Counts)
	}
}
