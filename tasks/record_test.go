package tasks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/sse"
)

// recorder keeps samples for inspection.
type recorder struct {
	mu      sync.Mutex
	samples []metrics.Sample
}

func (r *recorder) Record(s metrics.Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
}

// rows renders the samples as "METHOD NAME[!failure|~]" for compact comparison.
func (r *recorder) rows() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.samples {
		row := s.Method + " " + s.Name
		switch {
		case s.Failure != "":
			row += " ! " + s.Failure
		case s.NoTime:
			row += " ~"
		}
		out = append(out, row)
	}
	sort.Strings(out)
	return out
}

// fakeStreamer returns a canned stream result.
type fakeStreamer struct {
	res  *sse.Result
	resp *sse.Response
	err  error
}

func (f fakeStreamer) Stream(context.Context, sse.Request) (*sse.Result, error) { return f.res, f.err }
func (f fakeStreamer) Post(context.Context, sse.Request) (*sse.Response, error) { return f.resp, f.err }

func TestRecordStreamRules(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	full := &sse.Result{StatusCode: 200, Start: t0, Headers: at(5), FirstByte: at(6), FirstEvent: at(6), FirstToken: at(200), LastToken: at(300), End: at(310), Chunks: 3, Usage: sse.Usage{Present: true, CompletionTokens: 7}}
	noToken := &sse.Result{StatusCode: 200, Start: t0, Headers: at(5), End: at(50)}
	headersOnly := &sse.Result{StatusCode: 200, Start: t0, Headers: at(5)}
	status := &sse.Result{StatusCode: 429, Start: t0, Headers: at(5)}
	tests := []struct {
		name string
		res  *sse.Result
		err  error
		want []string
	}{
		{"success", full, nil, []string{"POST /v1/chat-messages", "SSE Full Response", "SSE TTFB"}},
		{"success without answer token", noToken, nil, []string{"POST /v1/chat-messages", "SSE Full Response", "SSE TTFB ~"}},
		{"connect failure", &sse.Result{Start: t0}, &sse.StreamError{Phase: sse.PhaseConnect, Reason: "connection refused"}, nil},
		{"http status", status, &sse.StreamError{Phase: sse.PhaseStatus, Status: 429, Code: "too_many_requests"}, nil},
		{"error event after a token", full, &sse.StreamError{Phase: sse.PhaseErrorEvent, Code: "completion_request_error"}, nil},
		{"first token timeout", headersOnly, &sse.StreamError{Phase: sse.PhaseFirstTokenTimeout}, nil},
		{"cancelled after headers", headersOnly, &sse.StreamError{Phase: sse.PhaseCancelled}, []string{"POST /v1/chat-messages"}},
		{"cancelled before headers", &sse.Result{Start: t0}, &sse.StreamError{Phase: sse.PhaseCancelled}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			recordStream(rec, NameChat, FlowSimpleChat, false, tc.res, tc.err)
			want := tc.want
			if want == nil && tc.err != nil {
				var se *sse.StreamError
				errors.As(tc.err, &se)
				switch se.Phase {
				case sse.PhaseConnect, sse.PhaseStatus:
					want = []string{"POST /v1/chat-messages ! " + se.Failure()}
				case sse.PhaseCancelled:
					want = []string{}
				default:
					want = []string{"POST /v1/chat-messages", "SSE Full Response ! " + se.Failure()}
					if !tc.res.FirstToken.IsZero() {
						want = append(want, "SSE TTFB")
					}
				}
			}
			sort.Strings(want)
			assert.Equal(t, want, append([]string{}, rec.rows()...))
		})
	}
}

func TestFullResponseSizeIsCompletionTokens(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	t0 := time.Now()
	res := &sse.Result{StatusCode: 200, Start: t0, Headers: t0.Add(time.Millisecond), FirstToken: t0.Add(2 * time.Millisecond), End: t0.Add(3 * time.Millisecond), Chunks: 4}
	recordStream(rec, NameChat, FlowSimpleChat, false, res, nil) // no usage: chunk count
	res.Usage = sse.Usage{Present: true, CompletionTokens: 9}
	recordStream(rec, NameChat, FlowSimpleChat, false, res, nil)
	var sizes []int64
	for _, s := range rec.samples {
		if s.Name == NameFullResponse {
			sizes = append(sizes, s.Size)
		}
	}
	assert.Equal(t, []int64{4, 9}, sizes, "Full Response size: chunk count without usage, completion tokens with it")
}

// TestAgainstMock runs both user classes with the real sse client against the mock over
// loopback and checks rows, timings and the mock's own counts.
func TestAgainstMock(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(difymock.New(difymock.Config{TTFT: 30 * time.Millisecond, TokenDelay: 2 * time.Millisecond, Tokens: 5, RetrievalLatency: 5 * time.Millisecond}))
	defer srv.Close()
	client := sse.NewClient(sse.Config{Client: &http.Client{Transport: sse.NewTransport(sse.TransportConfig{})}})
	rec := &recorder{}
	cfg := Config{
		Defaults: Keys{SimpleAppKey: difymock.SimpleChatKey, ComplexAppKey: difymock.ComplexChatKey,
			DatasetID: difymock.DefaultDatasetID, DatasetKey: difymock.DatasetKey},
		SplitFlows: true,
	}
	chat, err := NewChatUser(cfg, client, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	retr, err := NewRetrieveUser(cfg, client, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cu, err := chat.newUser(1, -1, srv.URL, nil)
	require.NoError(t, err)
	ru, err := retr.newUser(2, -1, srv.URL+"/v1/", nil)
	require.NoError(t, err)
	const n = 6
	for i := 0; i < n; i++ {
		if err := cu.RunTask(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ru.RunTask(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var post, retrieve, ttfb, fullResp int
	for _, s := range rec.samples {
		if s.Failure != "" {
			t.Errorf("unexpected failure %s %s: %s", s.Method, s.Name, s.Failure)
		}
		switch {
		case s.Name == NameChat+" "+FlowSimpleChat || s.Name == NameChat+" "+FlowComplexChat: // split: two apps share it
			post++
		case s.Name == NameRetrieve:
			retrieve++
		case s.Method == MethodSSE && (s.Name == NameTTFB+" "+FlowSimpleChat || s.Name == NameTTFB+" "+FlowComplexChat):
			ttfb++
			if s.Duration < 30*time.Millisecond {
				t.Errorf("TTFB %v is shorter than the mock's 30ms time to first token", s.Duration)
			}
		case s.Method == MethodSSE:
			fullResp++
			if s.Size != 5 {
				t.Errorf("Full Response size %d, want the 5 completion tokens", s.Size)
			}
		}
	}
	assert.Equal(t, [4]int{n, n, n, n}, [4]int{post, retrieve, ttfb, fullResp}, "rows POST, retrieve, TTFB, Full Response")
}

// The master's --dify-split-flows reaches Go users through parsed_options.
func TestSplitFlowsFromMaster(t *testing.T) {
	t.Parallel()
	cls, err := NewChatUser(Config{Defaults: Keys{SimpleAppKey: "app-x"}}, fakeStreamer{}, &recorder{}, nil)
	require.NoError(t, err)
	plain, err := cls.newUser(1, -1, "http://127.0.0.1:1", nil)
	require.NoError(t, err)
	split, err := cls.newUser(2, -1, "http://127.0.0.1:1", map[string]any{"dify_split_flows": true})
	require.NoError(t, err)
	assert.False(t, plain.split)
	assert.True(t, split.split)
	assert.Equal(t, "TTFB ComplexChatFlow", sseName(NameTTFB, FlowComplexChat, true))
}

func TestKeyPrecedence(t *testing.T) {
	t.Parallel()
	cfg := Config{SimpleAppKey: "app-flag", Defaults: Keys{SimpleAppKey: "app-default", ComplexAppKey: "app-default2", DatasetID: "d", DatasetKey: "dataset-default"}}
	opts := map[string]any{"dify_simple_app_key": "app-master", "dify_complex_app_key": "app-master2", "dify_dataset_key": 7}
	o := OptionKeys()
	got := Keys{cfg.Option(opts, o.SimpleAppKey), cfg.Option(opts, o.ComplexAppKey), cfg.Option(opts, o.DatasetID), cfg.Option(opts, o.DatasetKey)}
	want := Keys{SimpleAppKey: "app-flag", ComplexAppKey: "app-master2", DatasetID: "d", DatasetKey: "dataset-default"}
	assert.Equal(t, want, got, "flags win over the master's options, which win over defaults; non-string options are ignored")
}

func TestParseWaitRangeAndWeights(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]WaitRange{
		"1-3": {time.Second, 3 * time.Second}, "1s-3s": {time.Second, 3 * time.Second},
		"0": {}, "0.5": {500 * time.Millisecond, 500 * time.Millisecond}, "100ms-250ms": {100 * time.Millisecond, 250 * time.Millisecond},
	} {
		got, err := ParseWaitRange(in)
		if err != nil || got != want {
			t.Errorf("ParseWaitRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "3-1", "x", "-1"} {
		if _, err := ParseWaitRange(bad); err == nil {
			t.Errorf("ParseWaitRange(%q): want an error", bad)
		}
	}
	if s, c, err := ParseFlowWeights("SimpleChatFlow=3, complex=1"); err != nil || s != 3 || c != 1 {
		t.Errorf("ParseFlowWeights = %d %d %v", s, c, err)
	}
	for _, bad := range []string{"simple=0,complex=0", "other=1", "simple=-1", "simple"} {
		if _, _, err := ParseFlowWeights(bad); err == nil {
			t.Errorf("ParseFlowWeights(%q): want an error", bad)
		}
	}
}

func TestWaitTimeWithinRange(t *testing.T) {
	t.Parallel()
	w := WaitRange{Min: time.Second, Max: 3 * time.Second}
	cls, err := NewChatUser(Config{ChatWait: &w, Defaults: Keys{SimpleAppKey: "app-x"}}, fakeStreamer{}, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := cls.newUser(1, -1, "http://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi bool
	for i := 0; i < 2000; i++ {
		d := u.WaitTime()
		if d < w.Min || d > w.Max {
			t.Fatalf("wait %v outside %v", d, w)
		}
		lo = lo || d < 1500*time.Millisecond
		hi = hi || d > 2500*time.Millisecond
	}
	if !lo || !hi {
		t.Fatalf("waits do not spread over the range (low seen %v, high seen %v)", lo, hi)
	}
}
