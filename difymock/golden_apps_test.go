package difymock

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// goldenVersions are the Dify release lines with distinct wires: inline streaming (1.9 …
// 1.12), 1.13.0 (relay, message_end cut) and 1.13.x (relay, message_end first).
func goldenVersions() []struct{ tag, version string } {
	return []struct{ tag, version string }{{"112", "1.12"}, {"1130", "1.13.0"}, {"1133", "1.13.3"}}
}

func appCall(path, key, body string) call { return call{path: path, key: key, body: body} }

func chatCall(key string) call { return appCall("/v1/chat-messages", key, chatBody("streaming")) }

const (
	completionBody = `{"inputs":{"topic":"sun"},"query":"Write a line","response_mode":"streaming","user":"load-u-0001","files":[{"type":"image","transfer_method":"remote_url","url":"https://example.com/a.png"}]}`
	workflowBody   = `{"inputs":{"topic":"sun"},"response_mode":"streaming","user":"load-u-0001","files":[]}`
)

// TestGoldenApps: every app mode in every version line, byte for byte (testdata/app_*.golden).
// What each shows and its Dify source: testdata/README.md.
func TestGoldenApps(t *testing.T) {
	t.Parallel()
	type tc struct {
		name string
		c    call
	}
	var cases []tc
	for _, v := range goldenVersions() {
		add := func(name string, c call) {
			if c.hdr == nil {
				c.hdr = map[string]string{}
			}
			cases = append(cases, tc{"app_" + v.tag + "_" + name, c})
		}
		for _, a := range []struct{ name, key string }{
			{"simple", SimpleChatKey}, {"complex", ComplexChatKey}, {"agent", AgentChatKey}, {"chat", ChatAppKey}, {"human_input", HumanInputChatKey},
		} {
			add(a.name, chatCall(a.key))
		}
		add("completion", appCall("/v1/completion-messages", CompletionAppKey, completionBody))
		add("workflow", appCall("/v1/workflows/run", WorkflowAppKey, workflowBody))
		wf := appCall("/v1/workflows/run", WorkflowAppKey, workflowBody)
		wf.hdr = map[string]string{"X-Mock-Fault": "workflow_failed"}
		add("workflow_failed", wf)
		sf := chatCall(SimpleChatKey)
		sf.hdr = map[string]string{"X-Mock-Fault": "workflow_failed"}
		add("simple_workflow_failed", sf)
		// Setup errors: a relay answers 200, one ping, silence (cut here by the client).
		req := chatCall(RequiredInputsChatKey)
		req.within = 300 * time.Millisecond
		add("required_missing", req)
		unk := appCall("/v1/chat-messages", SimpleChatKey, strings.Replace(chatBody("streaming"), `"conversation_id":""`, `"conversation_id":"0b7c5d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e"`, 1))
		unk.within = 300 * time.Millisecond
		add("unknown_conversation", unk)
		unkChat := appCall("/v1/chat-messages", ChatAppKey, unk.body)
		add("chat_unknown_conversation", unkChat)
	}
	cases = append(cases,
		tc{"app_1133_required_given", appCall("/v1/chat-messages", RequiredInputsChatKey, strings.Replace(chatBody("streaming"), `{"city":"SF"}`, `{"dept":"IT"}`, 1))},
		tc{"app_1133_blocking_chat", appCall("/v1/chat-messages", ChatAppKey, chatBody("blocking"))},
		tc{"app_1133_blocking_completion", appCall("/v1/completion-messages", CompletionAppKey, strings.Replace(completionBody, "streaming", "blocking", 1))},
		tc{"app_1133_blocking_workflow", appCall("/v1/workflows/run", WorkflowAppKey, strings.Replace(workflowBody, "streaming", "blocking", 1))},
		tc{"app_1133_wrong_route_chat", appCall("/v1/chat-messages", CompletionAppKey, chatBody("streaming"))},
		tc{"app_1133_wrong_route_workflow", appCall("/v1/workflows/run", SimpleChatKey, workflowBody)},
		tc{"app_1133_wrong_route_completion", appCall("/v1/completion-messages", WorkflowAppKey, completionBody)},
		tc{"app_1133_bad_files", appCall("/v1/workflows/run", WorkflowAppKey, strings.Replace(workflowBody, `"files":[]`, `"files":"x"`, 1))},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := goldenConfig()
			cfg.DifyVersion = versionOfCase(c.name)
			s := New(cfg)
			deterministic(s)
			ts := startServer(t, s)
			resp, body, err := c.c.do(t, ts.URL)
			if resp == nil {
				t.Fatalf("request: %v", err)
			}
			got := transcript(resp, body, err)
			checkGolden(t, c.name, got)
			if dst, ok := sseTranscripts()[c.name]; ok {
				checkSSETranscript(t, dst, body)
			}
		})
	}
}

func versionOfCase(name string) string {
	for _, v := range goldenVersions() {
		if strings.HasPrefix(name, "app_"+v.tag+"_") {
			return v.version
		}
	}
	panic("no version in " + name)
}

// sseTranscripts: mock bodies that the sse package's golden tests also read, so the client
// is tested on the mock's exact bytes for each mode and version (sse/testdata/README.md).
func sseTranscripts() map[string]string {
	return map[string]string{
		"app_1133_workflow":               "wfapp_mock_1133.sse",
		"app_112_workflow":                "wfapp_mock_112.sse",
		"app_1133_workflow_failed":        "wfapp_mock_failed_1133.sse",
		"app_1133_completion":             "completion_mock.sse",
		"app_1133_chat":                   "chatapp_mock.sse",
		"app_1130_simple":                 "chatflow_mock_1130.sse",
		"app_1133_complex":                "chatflow_mock_1133_complex.sse",
		"app_112_complex":                 "chatflow_mock_112_complex.sse",
		"app_1133_human_input":            "chatflow_mock_human_input.sse",
		"app_1130_simple_workflow_failed": "chatflow_mock_failed_1130.sse",
	}
}

func checkSSETranscript(t *testing.T, name string, body []byte) {
	t.Helper()
	path := filepath.Join("..", "sse", "testdata", name)
	if *update {
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./difymock -run TestGoldenApps -update, then go test ./sse -run Golden -update)", err)
	}
	if !bytes.Equal(body, want) {
		t.Errorf("%s is not the mock's current body; regenerate it", path)
	}
}

// TestGoldenConcurrencyLimit: past MaxActiveRequests a generate request is refused with 400
// invalid_param "Too many requests. …" (not 429), its body in ujson style.
func TestGoldenConcurrencyLimit(t *testing.T) {
	t.Parallel()
	cfg := goldenConfig()
	cfg.DifyVersion, cfg.MaxActiveRequests = "1.13.3", 1
	s := New(cfg)
	deterministic(s)
	ts := startServer(t, s)
	slow := chatCall(ChatAppKey)
	slow.hdr = map[string]string{"X-Mock-TTFT": "2s"}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _, _, _ = slow.do(t, ts.URL) }()
	deadline := time.Now().Add(5 * time.Second)
	for s.truth.inFlight.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // the slow request is past its checks
	resp, body, err := chatCall(ChatAppKey).do(t, ts.URL)
	if resp == nil {
		t.Fatal(err)
	}
	checkGolden(t, "app_1133_concurrency_limit", transcript(resp, body, err))
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("Too many requests")) {
		t.Errorf("got %d %s", resp.StatusCode, body)
	}
	wg.Wait()
	if n := s.Truth().Apps[AppChat].Outcomes[OutcomeConcurrencyLimit]; n != 1 {
		t.Errorf("concurrency_limit outcomes = %d, want 1", n)
	}
}
