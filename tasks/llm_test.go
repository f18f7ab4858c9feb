package tasks

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/sse"
)

// mockResult is a stream like the mock's: ttft, then n chunks gap apart, the terminal event
// tail after the last chunk.
func mockResult(t0 time.Time, ttft, gap, tail time.Duration, n int, usage sse.Usage) *sse.Result {
	r := &sse.Result{StatusCode: 200, Start: t0, Headers: t0.Add(time.Millisecond), Usage: usage, Chunks: n}
	for i := range n {
		r.ChunkTimes = append(r.ChunkTimes, t0.Add(ttft+time.Duration(i)*gap))
	}
	if n > 0 {
		r.FirstToken, r.LastToken = r.ChunkTimes[0], r.ChunkTimes[n-1]
		r.End = r.LastToken.Add(tail)
	} else {
		r.End = t0.Add(ttft)
	}
	return r
}

func TestStreamSampleFrom(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	ms := time.Millisecond
	usage20 := sse.Usage{Present: true, CompletionTokens: 20, Latency: 301 * ms, HasLatency: true, TimeToFirstToken: 199 * ms, HasTTFT: true}
	tests := []struct {
		name       string
		res        *sse.Result
		err        error
		ttft, tpot time.Duration
		hasTPOT    bool
		fromChunks bool
		tokens     int64
		gaps       int
		e2e        time.Duration
		failed     bool
	}{
		{"mock 20 tokens 5ms after 200ms", mockResult(t0, 200*ms, 5*ms, 2*ms, 20, usage20), nil,
			200 * ms, 5 * ms, true, false, 20, 19, 297 * ms, false},
		{"usage counts more tokens than chunks", mockResult(t0, 100*ms, 10*ms, 0, 11, sse.Usage{Present: true, CompletionTokens: 21}), nil,
			100 * ms, 5 * ms, true, false, 21, 10, 200 * ms, false},
		{"no usage: chunk count, flagged", mockResult(t0, 100*ms, 10*ms, 0, 11, sse.Usage{}), nil,
			100 * ms, 10 * ms, true, true, 11, 10, 200 * ms, false},
		{"usage with zero tokens: chunk count", mockResult(t0, 100*ms, 10*ms, 0, 3, sse.Usage{Present: true}), nil,
			100 * ms, 10 * ms, true, true, 3, 2, 120 * ms, false},
		{"one token: no TPOT", mockResult(t0, 50*ms, 0, 5*ms, 1, sse.Usage{Present: true, CompletionTokens: 1}), nil,
			50 * ms, 0, false, false, 1, 0, 55 * ms, false},
		{"one chunk, many tokens: TPOT 0", mockResult(t0, 50*ms, 0, 5*ms, 1, sse.Usage{Present: true, CompletionTokens: 8}), nil,
			50 * ms, 0, true, false, 8, 0, 55 * ms, false},
		{"no answer at all", mockResult(t0, 40*ms, 0, 0, 0, sse.Usage{Present: true}), nil,
			0, 0, false, true, 0, 0, 40 * ms, false},
		{"failed mid-stream", mockResult(t0, 100*ms, 10*ms, 0, 4, sse.Usage{}), &sse.StreamError{Phase: sse.PhaseErrorEvent, Code: "x"},
			100 * ms, 10 * ms, true, true, 4, 3, 130 * ms, true},
		{"nil result", nil, &sse.StreamError{Phase: sse.PhaseConnect}, 0, 0, false, true, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := StreamSampleFrom(FlowSimpleChat, tt.res, tt.err)
			if s.TTFT != tt.ttft || s.HasTTFT != (tt.ttft > 0) {
				t.Errorf("TTFT %v/%v, want %v", s.TTFT, s.HasTTFT, tt.ttft)
			}
			if s.TPOT != tt.tpot || s.HasTPOT != tt.hasTPOT {
				t.Errorf("TPOT %v/%v, want %v/%v", s.TPOT, s.HasTPOT, tt.tpot, tt.hasTPOT)
			}
			if s.OutputTokens != tt.tokens || s.TPOTFromChunks != tt.fromChunks {
				t.Errorf("tokens %d (from chunks %v), want %d (%v)", s.OutputTokens, s.TPOTFromChunks, tt.tokens, tt.fromChunks)
			}
			if len(s.Gaps) != tt.gaps {
				t.Errorf("%d gaps, want %d", len(s.Gaps), tt.gaps)
			}
			for _, g := range s.Gaps {
				if tt.res != nil && len(tt.res.ChunkTimes) > 1 && g != tt.res.ChunkTimes[1].Sub(tt.res.ChunkTimes[0]) {
					t.Errorf("gap %v", g)
				}
			}
			if s.E2E != tt.e2e || s.Failed != tt.failed || s.Flow != FlowSimpleChat {
				t.Errorf("E2E %v failed %v flow %q, want %v %v", s.E2E, s.Failed, s.Flow, tt.e2e, tt.failed)
			}
		})
	}
	s := StreamSampleFrom("f", mockResult(t0, 200*ms, 5*ms, 2*ms, 20, usage20), nil)
	if !s.HasServerLatency || s.ServerLatency != 301*ms || !s.HasServerTTFT || s.ServerTTFT != 199*ms {
		t.Errorf("server values %+v", s)
	}
}

func TestLLMObserverRowsAndOptions(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	ms := time.Millisecond
	llm := metrics.NewLLM(metrics.SLO{TPOT: 50 * ms}) // the worker's flag
	var rec recorder
	var jl bytes.Buffer
	jw := metrics.NewJSONLWriter(&jl)
	o := NewLLMObserver(LLMObserverConfig{LLM: llm, JSONL: jw, Recorder: &rec})
	ok := mockResult(t0, 200*ms, 5*ms, 2*ms, 20, sse.Usage{Present: true, CompletionTokens: 20})

	o.ObserveStream(FlowSimpleChat, ok, nil)
	if len(rec.rows()) != 0 || o.RowsEnabled() {
		t.Fatalf("extra rows must be off by default: %v", rec.rows())
	}
	o.ApplyOptions(map[string]any{OptionSLOTTFT: int64(150), OptionSLOTPOT: 1.0, OptionSLOE2E: "1000.5", OptionLLMRows: true})
	if got := llm.SLO(); got != (metrics.SLO{TTFT: 150 * ms, TPOT: 50 * ms, E2E: 1000*ms + 500*time.Microsecond}) {
		t.Errorf("SLO %+v: flags win, options fill zero fields", got)
	}
	o.ObserveStream(FlowSimpleChat, ok, nil)
	o.ObserveStream(FlowComplexChat, mockResult(t0, 10*ms, 0, 0, 1, sse.Usage{}), nil) // one chunk: no TPOT, no gap row
	o.ObserveStream(FlowSimpleChat, ok, &sse.StreamError{Phase: sse.PhaseErrorEvent, Code: "completion_request_error"})
	o.ObserveStream(FlowSimpleChat, ok, &sse.StreamError{Phase: sse.PhaseCancelled}) // not observed at all
	want := []string{"SSE Inter-chunk", "SSE TPOT"}
	if got := rec.rows(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %v, want %v", got, want)
	}
	for _, s := range rec.samples {
		if s.Duration != 5*ms {
			t.Errorf("%s = %v, want 5ms", s.Name, s.Duration)
		}
	}
	tot := llm.Totals()[""]
	if tot.Streams != 4 || tot.Failed != 1 || tot.OutputTokens != 41 || tot.Good != 2 || tot.ChunkFallback != 1 {
		t.Errorf("totals %+v (good: the stream before the options and the 10ms one; 200ms misses the 150ms SLO)", tot)
	}
	if err := jw.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(jl.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], `"failure":"stream error: completion_request_error"`) {
		t.Errorf("jsonl:\n%s", jl.String())
	}

	// Options can turn the rows off again; nil options keep the flags.
	o.ApplyOptions(nil)
	if o.RowsEnabled() || llm.SLO() != (metrics.SLO{TPOT: 50 * ms}) {
		t.Errorf("nil options: rows %v slo %+v", o.RowsEnabled(), llm.SLO())
	}
	split := NewLLMObserver(LLMObserverConfig{LLM: metrics.NewLLM(metrics.SLO{}), Recorder: &rec, Rows: true, SplitFlows: true})
	rec.samples = nil
	split.ObserveStream(FlowComplexChat, ok, nil)
	if got := rec.rows(); len(got) != 2 || got[0] != "SSE Inter-chunk ComplexChatFlow" || got[1] != "SSE TPOT ComplexChatFlow" {
		t.Errorf("split rows %v", got)
	}
	noRec := NewLLMObserver(LLMObserverConfig{LLM: metrics.NewLLM(metrics.SLO{}), Rows: true})
	noRec.ApplyOptions(map[string]any{OptionLLMRows: true})
	if noRec.RowsEnabled() {
		t.Error("rows without a recorder")
	}
	noRec.ObserveStream(FlowSimpleChat, ok, nil)
}

// TestChatUserFeedsObserver runs the ChatUser with an LLMObserver: one task, one sample.
func TestChatUserFeedsObserver(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	res := mockResult(t0, 200*time.Millisecond, 5*time.Millisecond, time.Millisecond, 20, sse.Usage{Present: true, CompletionTokens: 20})
	var rec recorder
	llm := metrics.NewLLM(metrics.SLO{})
	obs := NewLLMObserver(LLMObserverConfig{LLM: llm, Recorder: &rec})
	cls, err := NewChatUser(Config{}, fakeStreamer{res: res}, &rec, obs)
	if err != nil {
		t.Fatal(err)
	}
	u, err := cls.newUser(1, -1, "http://127.0.0.1:1", map[string]any{"dify_simple_app_key": "app-x", OptionLLMRows: true})
	if err != nil {
		t.Fatal(err)
	}
	obs.ApplyOptions(map[string]any{OptionLLMRows: true}) // what the worker's OnSpawn does at every spawn
	if err := u.RunTask(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tot := llm.Totals()[""]; tot.Streams != 1 || tot.OutputTokens != 20 || tot.Hist[metrics.LLMMetricTPOT].Quantile(0.5) != 5000 {
		t.Errorf("totals %+v", tot)
	}
	want := "POST /v1/chat-messages,SSE Full Response,SSE Inter-chunk,SSE TPOT,SSE TTFB"
	if got := strings.Join(rec.rows(), ","); got != want {
		t.Errorf("rows %s, want %s", got, want)
	}
}
