package difymock

import (
	"strings"
	"testing"
)

// goldenConfig: no waiting, 5 tokens, default pings (none happen).
func goldenConfig() Config {
	return Config{TTFT: -1, TokenDelay: -1, RetrievalLatency: -1, Tokens: 5, DifyVersion: "1.12"}
}

func TestGoldenChat(t *testing.T) {
	t.Parallel()
	apps := []struct{ name, key string }{
		{"simple", SimpleChatKey}, {"complex", ComplexChatKey}, {"agent", AgentChatKey},
	}
	faults := append([]string{"none"}, FaultNames()...)
	for _, a := range apps {
		for _, f := range faults {
			if f == FaultRetrieve500 {
				continue // not a chat fault
			}
			name := "chat_" + a.name + "_" + f
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := New(goldenConfig())
				deterministic(s)
				ts := startServer(t, s)
				resp, body, err := call{path: "/v1/chat-messages", key: a.key, body: chatBody("streaming"),
					hdr: map[string]string{"X-Mock-Fault": f, "X-Mock-Stall": "10ms"}}.do(t, ts.URL)
				if resp == nil {
					t.Fatalf("request: %v", err)
				}
				checkGolden(t, name, transcript(resp, body, err))
			})
		}
	}
}

func TestGoldenOther(t *testing.T) {
	t.Parallel()
	retrieveBody := `{"query":"What is Dify?","retrieval_model":{"search_method":"hybrid_search","reranking_enable":true,"reranking_mode":"reranking_model","weights":null,"top_k":3,"score_threshold_enabled":false}}`
	cases := []struct {
		name string
		cfg  func(*Config)
		c    call
	}{
		{"simple_doc", func(c *Config) { c.Tokens = 2 }, call{path: "/v1/chat-messages", key: SimpleChatKey, body: chatBody("streaming")}},
		{"blocking_simple", nil, call{path: "/v1/chat-messages", key: SimpleChatKey, body: strings.Replace(chatBody("blocking"), "hello", "h\u00e9llo \U0001F600 \\\"\\n/", 1)}},
		{"blocking_complex", nil, call{path: "/v1/chat-messages", key: ComplexChatKey, body: strings.Replace(chatBody("blocking"), "hello", "héllo \U0001F600", 1)}},
		{"blocking_agent", nil, call{path: "/v1/chat-messages", key: AgentChatKey, body: chatBody("blocking")}},
		{"blocking_error_event", nil, call{path: "/v1/chat-messages", key: ComplexChatKey, body: chatBody("blocking"), hdr: map[string]string{"X-Mock-Fault": "error_event"}}},
		{"chat_unicode", nil, call{path: "/v1/chat-messages", key: SimpleChatKey, body: `{"inputs":{"z":1,"a":{"k": [1, 2]}},"query":"héllo \"q\"\n\u00e9 ` + "\U0001F600\x7f" + `","response_mode":"streaming","user":"u"}`}},
		{"parameters_simple", nil, call{method: "GET", path: "/v1/parameters", key: SimpleChatKey, ctype: "-"}},
		{"parameters_complex", nil, call{method: "GET", path: "/v1/parameters", key: ComplexChatKey, ctype: "-"}},
		{"retrieve_ok", nil, call{path: "/v1/datasets/" + DefaultDatasetID + "/retrieve", key: DatasetKey, body: retrieveBody}},
		{"retrieve_default_model", nil, call{path: "/v1/datasets/" + DefaultDatasetID + "/retrieve", key: DatasetKey, body: `{"query":"q"}`}},
		{"retrieve_threshold", nil, call{path: "/v1/datasets/" + DefaultDatasetID + "/retrieve", key: DatasetKey,
			body: `{"query":"q","retrieval_model":{"search_method":"semantic_search","reranking_enable":false,"top_k":10,"score_threshold_enabled":true,"score_threshold":0.7}}`}},
	}
	for _, f := range []string{"401", "429", "500", "retrieve_500", "stall", "reset"} {
		cases = append(cases, struct {
			name string
			cfg  func(*Config)
			c    call
		}{"retrieve_" + f, nil, call{path: "/v1/datasets/" + DefaultDatasetID + "/retrieve", key: DatasetKey, body: retrieveBody,
			hdr: map[string]string{"X-Mock-Fault": f, "X-Mock-Stall": "10ms"}}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := goldenConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := New(cfg)
			deterministic(s)
			ts := startServer(t, s)
			resp, body, err := tc.c.do(t, ts.URL)
			if resp == nil {
				checkGolden(t, tc.name, []byte("[request error: "+errShort(err)+"]\n"))
				return
			}
			checkGolden(t, tc.name, transcript(resp, body, err))
		})
	}
}

func errShort(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "reset"):
		return "connection reset"
	case strings.Contains(msg, "EOF"):
		return "EOF"
	}
	return msg
}
