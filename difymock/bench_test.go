package difymock

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkServeStream is the mock's own cost of one whole stream (no waits: TTFT and token
// delay 0, 20 answer chunks) per app mode, through ServeHTTP into a recorder, so no network
// cost is in it. It is the check that the event writer's paths cost what they did.
func BenchmarkServeStream(b *testing.B) {
	for _, tc := range []struct{ name, path, key, body string }{
		{"simple", "/v1/chat-messages", SimpleChatKey, chatBody("streaming")},
		{"complex", "/v1/chat-messages", ComplexChatKey, chatBody("streaming")},
		{"agent", "/v1/chat-messages", AgentChatKey, chatBody("streaming")},
		{"chat", "/v1/chat-messages", ChatAppKey, chatBody("streaming")},
		{"workflow", "/v1/workflows/run", WorkflowAppKey, workflowBody},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := New(Config{TTFT: -1, TokenDelay: -1, Tokens: 20, MaxRecords: -1, MaxConversations: 1})
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequestWithContext(b.Context(), http.MethodPost, tc.path, strings.NewReader(tc.body))
				r.Header.Set("Authorization", "Bearer "+tc.key)
				r.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"answer":"`) && !strings.Contains(w.Body.String(), `"text":"`) {
					b.Fatalf("%d %.300s", w.Code, w.Body.String())
				}
			}
		})
	}
}
