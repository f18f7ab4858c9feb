package difymock

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppsTruth: every app key is served on its endpoint and counted under its app name;
// conversation ids the mock issued are reused and counted; files are recorded.
func TestAppsTruth(t *testing.T) {
	t.Parallel()
	s := New(fastConfig())
	ts := startServer(t, s)
	calls := map[string]call{
		AppSimpleChatflow:   chatCall(SimpleChatKey),
		AppComplexChatflow:  chatCall(ComplexChatKey),
		AppAgent:            chatCall(AgentChatKey),
		AppChat:             chatCall(ChatAppKey),
		AppCompletion:       appCall("/v1/completion-messages", CompletionAppKey, completionBody),
		AppWorkflow:         appCall("/v1/workflows/run", WorkflowAppKey, workflowBody),
		AppRequiredChatflow: appCall("/v1/chat-messages", RequiredInputsChatKey, strings.Replace(chatBody("streaming"), `{"city":"SF"}`, `{"dept":"IT"}`, 1)),
		AppHumanInput:       chatCall(HumanInputChatKey),
	}
	for name, c := range calls {
		resp, body, err := c.do(t, ts.URL)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v %s", name, resp, err, body)
		}
	}
	tr := s.Truth()
	for name := range calls {
		want := OutcomeOK
		if name == AppHumanInput {
			want = OutcomePaused
		}
		if got := tr.Apps[name]; got.Requests != 1 || got.Outcomes[want] != 1 {
			t.Errorf("apps[%s] = %+v, want 1 request, outcome %s", name, got, want)
		}
	}
	if tr.Apps[AppCompletion].Files != 1 {
		t.Errorf("completion files = %d, want 1", tr.Apps[AppCompletion].Files)
	}
	if tr.Counts[EndpointWorkflow][OutcomeOK] != 1 || tr.Counts[EndpointCompletion][OutcomeOK] != 1 {
		t.Errorf("counts %v", tr.Counts)
	}

	// A conversation of three turns: the first issues the id, the two others reuse it.
	var conv string
	for turn := 1; turn <= 3; turn++ {
		body := strings.Replace(chatBody("streaming"), `"conversation_id":""`, `"conversation_id":"`+conv+`"`, 1)
		resp, raw, err := appCall("/v1/chat-messages", ChatAppKey, body).do(t, ts.URL)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("turn %d: %v %v %s", turn, resp, err, raw)
		}
		evs, err := readSSE(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			ConversationID string `json:"conversation_id"`
		}
		if err := json.Unmarshal([]byte(evs[len(evs)-1].data), &ev); err != nil {
			t.Fatal(err)
		}
		if turn > 1 && ev.ConversationID != conv {
			t.Fatalf("turn %d: conversation %q, want %q", turn, ev.ConversationID, conv)
		}
		conv = ev.ConversationID
	}
	got := s.Truth().Conversations[conv]
	if got.App != AppChat || got.Turns != 3 || got.Reused != 2 {
		t.Errorf("conversation %s = %+v, want chat, 3 turns, 2 reused", conv, got)
	}
	// Another user cannot reuse it.
	body := strings.Replace(strings.Replace(chatBody("streaming"), `"conversation_id":""`, `"conversation_id":"`+conv+`"`, 1), "load-u-0001", "other", 1)
	if resp, _, _ := appCall("/v1/chat-messages", ChatAppKey, body).do(t, ts.URL); resp == nil || resp.StatusCode != 404 {
		t.Errorf("other user's reuse: %v, want 404", resp)
	}
}
