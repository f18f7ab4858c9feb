package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLLMCollectorCounters(t *testing.T) {
	t.Parallel()
	l := NewLLM(SLO{TTFT: 250 * time.Millisecond})
	now := time.Now()
	l.Observe(mockStream("SimpleChatFlow", now, 200*time.Millisecond, 5*time.Millisecond, 20))
	l.Observe(mockStream("SimpleChatFlow", now, 300*time.Millisecond, 5*time.Millisecond, 20))
	l.Observe(StreamSample{Flow: "ComplexChatFlow", Failed: true, End: now})
	c := NewLLMCollector(l)
	want := `
# HELP difyload_llm_good_streams_total Successful streams that met every set SLO (goodput numerator).
# TYPE difyload_llm_good_streams_total counter
difyload_llm_good_streams_total{flow="ComplexChatFlow"} 0
difyload_llm_good_streams_total{flow="SimpleChatFlow"} 1
# HELP difyload_llm_output_tokens_total Output tokens of successful streams.
# TYPE difyload_llm_output_tokens_total counter
difyload_llm_output_tokens_total{flow="ComplexChatFlow"} 0
difyload_llm_output_tokens_total{flow="SimpleChatFlow"} 40
# HELP difyload_llm_stream_failures_total Failed chat streams (any failure from connect to a mid-stream error).
# TYPE difyload_llm_stream_failures_total counter
difyload_llm_stream_failures_total{flow="ComplexChatFlow"} 1
difyload_llm_stream_failures_total{flow="SimpleChatFlow"} 0
# HELP difyload_llm_streams_total Finished chat streams (successful and failed; cancelled streams are not counted).
# TYPE difyload_llm_streams_total counter
difyload_llm_streams_total{flow="ComplexChatFlow"} 1
difyload_llm_streams_total{flow="SimpleChatFlow"} 2
# HELP difyload_llm_slo_seconds The goodput objective in force (0 = no limit).
# TYPE difyload_llm_slo_seconds gauge
difyload_llm_slo_seconds{objective="e2e"} 0
difyload_llm_slo_seconds{objective="tpot"} 0
difyload_llm_slo_seconds{objective="ttft"} 0.25
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"difyload_llm_good_streams_total", "difyload_llm_output_tokens_total", "difyload_llm_stream_failures_total",
		"difyload_llm_streams_total", "difyload_llm_slo_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "difyload_llm_time_to_first_token_seconds"); n != 2 {
		t.Errorf("%d ttft histograms, want one per flow", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

func TestLLMCollectorHTTP(t *testing.T) {
	t.Parallel()
	l := NewLLM(SLO{})
	for range 10 {
		l.Observe(mockStream("SimpleChatFlow", time.Now(), 200*time.Millisecond, 5*time.Millisecond, 20))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewLLMCollector(l))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, line := range []string{
		// 200 ms TTFT: every stream is in the 0.2 s bucket, none in 0.15 s.
		`difyload_llm_time_to_first_token_seconds_bucket{flow="SimpleChatFlow",le="0.15"} 0`,
		`difyload_llm_time_to_first_token_seconds_bucket{flow="SimpleChatFlow",le="0.2"} 10`,
		`difyload_llm_time_to_first_token_seconds_sum{flow="SimpleChatFlow"} 2`,
		`difyload_llm_time_to_first_token_seconds_count{flow="SimpleChatFlow"} 10`,
		// 5 ms TPOT and 19 gaps of 5 ms per stream.
		`difyload_llm_time_per_output_token_seconds_bucket{flow="SimpleChatFlow",le="0.005"} 0`,
		`difyload_llm_time_per_output_token_seconds_bucket{flow="SimpleChatFlow",le="0.0075"} 10`,
		`difyload_llm_inter_chunk_latency_seconds_count{flow="SimpleChatFlow"} 190`,
		`difyload_llm_output_tokens_per_stream_bucket{flow="SimpleChatFlow",le="20"} 10`,
		`difyload_llm_output_tokens_per_stream_bucket{flow="SimpleChatFlow",le="10"} 0`,
		`difyload_llm_e2e_duration_seconds_count{flow="SimpleChatFlow"} 10`,
		`difyload_llm_server_latency_seconds_count{flow="SimpleChatFlow"} 0`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("exposition lacks %q", line)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestClassicBuckets(t *testing.T) {
	t.Parallel()
	var h LLMHistogram
	for _, v := range []int64{1, 2, 1000, 2048, 199_999, 200_100} {
		h.Record(v)
	}
	got := classicBuckets(h.Counts, []float64{0.000002, 0.001, 0.002, 0.2, 1}, 1e6)
	want := map[float64]uint64{0.000002: 2, 0.001: 3, 0.002: 3, 0.2: 5, 1: 6}
	for b, n := range want {
		if got[b] != n {
			t.Errorf("le %g: %d, want %d (all %v)", b, got[b], n, got)
		}
	}
}
