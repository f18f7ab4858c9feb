package difymock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stopConfig streams slowly enough that a stop after the first answer chunk lands mid-run.
func stopConfig(version string) Config {
	return Config{TTFT: -1, TokenDelay: 5 * time.Second, RetrievalLatency: -1, Tokens: 5, DifyVersion: version}
}

// runUntilFirstChunk starts a streaming request and reads it up to the first answer chunk;
// it returns the chunk's task id, the events so far and a reader for the rest.
func runUntilFirstChunk(t *testing.T, base string, c call) (task string, events []string, rest *bufio.Reader, body io.Closer) {
	t.Helper()
	resp := openStream(t, base, c.path, c.key, c.body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for {
		ev, data, err := nextFrame(br)
		if err != nil {
			resp.Body.Close()
			t.Fatalf("stream ended before the first answer chunk (%v), events %v", err, events)
		}
		events = append(events, ev)
		if ev == "message" || ev == "agent_message" || ev == "text_chunk" {
			var v struct {
				TaskID string `json:"task_id"`
			}
			if err := json.Unmarshal([]byte(data), &v); err != nil || v.TaskID == "" {
				t.Fatalf("no task_id in %s", data)
			}
			return v.TaskID, events, br, resp.Body
		}
	}
}

// nextFrame reads one SSE frame: its event name ("ping" for a keep-alive, else the data's
// "event") and data.
func nextFrame(br *bufio.Reader) (event, data string, err error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" && (event != "" || data != ""):
			if event == "" {
				var v struct {
					Event string `json:"event"`
				}
				_ = json.Unmarshal([]byte(data), &v)
				event = v.Event
			}
			return event, data, nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
}

func postStop(t *testing.T, base, path, key, body string) (int, []byte) {
	t.Helper()
	resp, b, err := call{path: path, key: key, body: body}.do(t, base)
	if resp == nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestStopMidStream: a stop after the first answer chunk ends the stream the way Dify's
// pipeline for the mode and version does, and the truth counts the stop and the stopped run.
func TestStopMidStream(t *testing.T) {
	t.Parallel()
	wfBody := `{"inputs":{"topic":"sun"},"response_mode":"streaming","user":"load-u-0001"}`
	cases := []struct {
		name, version, key, path, body, stopPath string
		app                                      string
		tail                                     []string // the events after the first chunk
		status                                   string   // workflow_finished's status ("" none)
	}{
		{"chatflow_1133", "1.13.3", SimpleChatKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppSimpleChatflow, []string{"workflow_finished"}, "stopped"},
		{"chatflow_1130", "1.13.0", SimpleChatKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppSimpleChatflow, []string{"workflow_finished"}, "stopped"},
		{"chatflow_112", "1.12", SimpleChatKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppSimpleChatflow, []string{"workflow_finished", "message_end"}, "stopped"},
		{"complex_1133", "1.13.3", ComplexChatKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppComplexChatflow, []string{"workflow_finished"}, "stopped"},
		{"chat_1133", "1.13.3", ChatAppKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppChat, []string{"message_end"}, ""},
		{"chat_112", "1.12", ChatAppKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppChat, []string{"message_end"}, ""},
		{"agent_1133", "1.13.3", AgentChatKey, "/v1/chat-messages", chatBody("streaming"), "/v1/chat-messages/%s/stop", AppAgent, []string{"message_end"}, ""},
		{"workflow_1133", "1.13.3", WorkflowAppKey, "/v1/workflows/run", wfBody, "/v1/workflows/tasks/%s/stop", AppWorkflow, []string{"workflow_finished"}, "stopped"},
		{"workflow_112", "1.12", WorkflowAppKey, "/v1/workflows/run", wfBody, "/v1/workflows/tasks/%s/stop", AppWorkflow, []string{"workflow_finished"}, "stopped"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(stopConfig(tc.version))
			ts := startServer(t, s)
			task, _, rest, body := runUntilFirstChunk(t, ts.URL, call{path: tc.path, key: tc.key, body: tc.body})
			defer body.Close()
			code, b := postStop(t, ts.URL, strings.Replace(tc.stopPath, "%s", task, 1), tc.key, `{"user":"load-u-0001"}`)
			if code != http.StatusOK || string(b) != "{\"result\":\"success\"}\n" {
				t.Fatalf("stop: %d %s", code, b)
			}
			var tail []string
			var status string
			for {
				ev, data, err := nextFrame(rest)
				if err != nil {
					break
				}
				if ev == "ping" {
					continue
				}
				tail = append(tail, ev)
				if ev == "workflow_finished" {
					var v struct {
						Data struct {
							Status string          `json:"status"`
							Error  json.RawMessage `json:"error"`
						} `json:"data"`
					}
					if err := json.Unmarshal([]byte(data), &v); err != nil {
						t.Fatal(err)
					}
					status = v.Data.Status
					if string(v.Data.Error) != `"Stopped by user."` {
						t.Errorf("stopped run's error = %s, want \"Stopped by user.\"", v.Data.Error)
					}
				}
			}
			if strings.Join(tail, ",") != strings.Join(tc.tail, ",") || status != tc.status {
				t.Errorf("after the stop: events %v status %q, want %v %q", tail, status, tc.tail, tc.status)
			}
			tr := s.Truth()
			if n := tr.Apps[tc.app].Outcomes[OutcomeStopped]; n != 1 {
				t.Errorf("%s stopped outcomes = %d, want 1 (%v)", tc.app, n, tr.Apps[tc.app].Outcomes)
			}
			if n := tr.Counts[EndpointStop][OutcomeOK]; n != 1 {
				t.Errorf("stop ok = %d, want 1 (%v)", n, tr.Counts)
			}
		})
	}
}

// TestStopIgnoredOrRefused: Dify's stop sets a flag only for a running task of the same
// user and answers success either way; a route of the wrong app mode is 400, no user 400.
func TestStopIgnoredOrRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, key, body string
		wantCode              int
		wantBody              string // substring
		outcome               string
	}{
		{"unknown_task", "/v1/chat-messages/0b7c5d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e/stop", SimpleChatKey, `{"user":"load-u-0001"}`, 200, `{"result":"success"}`, OutcomeStopIgnored},
		{"other_user", "", SimpleChatKey, `{"user":"someone-else"}`, 200, `{"result":"success"}`, OutcomeStopIgnored},
		{"other_app", "", ChatAppKey, `{"user":"load-u-0001"}`, 200, `{"result":"success"}`, OutcomeStopIgnored},
		{"workflow_route_for_chatflow", "/v1/workflows/tasks/x/stop", SimpleChatKey, `{"user":"load-u-0001"}`, 400, `"code":"not_workflow_app"`, "http_400"},
		{"chat_route_for_workflow", "/v1/chat-messages/x/stop", WorkflowAppKey, `{"user":"load-u-0001"}`, 400, `"code":"not_chat_app"`, "http_400"},
		{"chat_route_for_completion", "/v1/chat-messages/x/stop", CompletionAppKey, `{"user":"load-u-0001"}`, 400, `"code":"not_chat_app"`, "http_400"},
		{"no_user", "/v1/chat-messages/x/stop", SimpleChatKey, `{}`, 400, "Arg user must be provided.", "http_400"},
		{"bad_key", "/v1/chat-messages/x/stop", "app-nope", `{"user":"load-u-0001"}`, 401, `"code":"unauthorized"`, "http_401"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := New(stopConfig("1.13.3"))
			ts := startServer(t, s)
			path := tc.path
			var rest *bufio.Reader
			if path == "" {
				// A running simple chatflow of load-u-0001: the stop must not reach it.
				task, _, r, body := runUntilFirstChunk(t, ts.URL, call{path: "/v1/chat-messages", key: SimpleChatKey, body: chatBody("streaming")})
				defer body.Close()
				path, rest = "/v1/chat-messages/"+task+"/stop", r
			}
			code, b := postStop(t, ts.URL, path, tc.key, tc.body)
			if code != tc.wantCode || !bytes.Contains(b, []byte(tc.wantBody)) {
				t.Fatalf("stop: %d %s, want %d %s", code, b, tc.wantCode, tc.wantBody)
			}
			if n := s.Truth().Counts[EndpointStop][tc.outcome]; n != 1 {
				t.Errorf("stop %s = %d, want 1 (%v)", tc.outcome, n, s.Truth().Counts)
			}
			if rest != nil {
				// The run goes on: the next answer chunk comes, not a stopped terminal.
				for {
					ev, _, err := nextFrame(rest)
					if err != nil {
						t.Fatalf("stream ended: %v", err)
					}
					if ev == "ping" {
						continue
					}
					if ev != "message" {
						t.Fatalf("after an ignored stop: %s, want the next message", ev)
					}
					break
				}
			}
		})
	}
}

// TestStopMethod: the stop routes take POST only.
func TestStopMethod(t *testing.T) {
	t.Parallel()
	s := New(stopConfig("1.13.3"))
	ts := startServer(t, s)
	resp, _, err := call{method: http.MethodGet, path: "/v1/chat-messages/x/stop", key: SimpleChatKey}.do(t, ts.URL)
	if resp == nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET stop: %d, want 405", resp.StatusCode)
	}
}

// TestGoldenStopped: a 1.13.3 simple chatflow stopped after its first answer chunk, byte for
// byte (testdata/app_1133_simple_stopped.golden), and the same body is the sse package's
// chatflow_mock_stopped_1133.sse: the ping, the run's events, workflow_finished (stopped),
// where the relay stops.
func TestGoldenStopped(t *testing.T) {
	t.Parallel()
	cfg := goldenConfig()
	cfg.DifyVersion, cfg.TokenDelay = "1.13.3", 5*time.Second
	s := New(cfg)
	deterministic(s)
	ts := startServer(t, s)
	resp := openStream(t, ts.URL, "/v1/chat-messages", SimpleChatKey, chatBody("streaming"))
	defer resp.Body.Close()
	var got bytes.Buffer
	br := bufio.NewReader(io.TeeReader(resp.Body, &got))
	var task string
	for task == "" {
		ev, data, err := nextFrame(br)
		if err != nil {
			t.Fatalf("no answer chunk: %v", err)
		}
		if ev == "message" {
			var v struct {
				TaskID string `json:"task_id"`
			}
			_ = json.Unmarshal([]byte(data), &v)
			task = v.TaskID
		}
	}
	// Let the stream reach its wait for the next chunk (its clock readings are then done,
	// so the body does not depend on when the stop's own readings happen).
	time.Sleep(50 * time.Millisecond)
	if code, b := postStop(t, ts.URL, "/v1/chat-messages/"+task+"/stop", SimpleChatKey, `{"user":"load-u-0001"}`); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, b)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatal(err)
	}
	body := got.Bytes()
	checkGolden(t, "app_1133_simple_stopped", transcript(headOf(resp), body, nil))
	checkSSETranscript(t, "chatflow_mock_stopped_1133.sse", body)
	if bytes.Contains(body, []byte(`"event":"message_end"`)) || !bytes.Contains(body, []byte(`"status":"stopped"`)) {
		t.Errorf("want workflow_finished stopped and no message_end:\n%s", body)
	}
}

// TestStopHumanInput: a human-input chatflow stopped while its human node waits ends with
// workflow_finished (stopped) on a 1.13.x relay, not workflow_paused.
func TestStopHumanInput(t *testing.T) {
	t.Parallel()
	cfg := stopConfig("1.13.3")
	cfg.TTFT = 5 * time.Second
	s := New(cfg)
	ts := startServer(t, s)
	resp := openStream(t, ts.URL, "/v1/chat-messages", HumanInputChatKey, chatBody("streaming"))
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var task string
	for started := 0; started < 2; {
		ev, data, err := nextFrame(br)
		if err != nil {
			t.Fatalf("stream ended early: %v", err)
		}
		if ev == "node_started" {
			started++
			var v struct {
				TaskID string `json:"task_id"`
			}
			_ = json.Unmarshal([]byte(data), &v)
			task = v.TaskID
		}
	}
	if code, b := postStop(t, ts.URL, "/v1/chat-messages/"+task+"/stop", HumanInputChatKey, `{"user":"load-u-0001"}`); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, b)
	}
	var tail []string
	for {
		ev, data, err := nextFrame(br)
		if err != nil {
			break
		}
		if ev != "ping" {
			tail = append(tail, ev)
		}
		if ev == "workflow_finished" && !strings.Contains(data, `"status":"stopped"`) || ev == "workflow_finished" && !strings.Contains(data, `"total_steps":2`) {
			t.Errorf("workflow_finished: %s", data)
		}
	}
	if strings.Join(tail, ",") != "workflow_finished" {
		t.Errorf("after the stop: %v, want [workflow_finished]", tail)
	}
	if n := s.Truth().Apps[AppHumanInput].Outcomes[OutcomeStopped]; n != 1 {
		t.Errorf("stopped = %d, want 1", n)
	}
}
