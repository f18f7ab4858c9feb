package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/workload"
)

// scripted is a Streamer that records every request and answers from a script.
type scripted struct {
	mu   sync.Mutex
	reqs []sse.Request
	// answer returns the result for the n-th stream (0-based); nil → a success.
	answer func(n int, req sse.Request) (*sse.Result, error)
}

func (s *scripted) Stream(_ context.Context, req sse.Request) (*sse.Result, error) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	if s.answer != nil {
		if res, err := s.answer(n, req); res != nil || err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	return &sse.Result{StatusCode: 200, Start: t0, Headers: t0, FirstToken: t0, End: t0, Chunks: 1, ConversationID: fmt.Sprintf("conv-%d", n)}, nil
}

func (s *scripted) Post(_ context.Context, req sse.Request) (*sse.Response, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	t0 := time.Now()
	return &sse.Response{StatusCode: 200, Start: t0, End: t0}, nil
}

func (s *scripted) bodies(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, r := range s.reqs {
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &m))
		m["_url"], m["_key"], m["_mode"] = r.URL, r.APIKey, string(r.Mode)
		out = append(out, m)
	}
	return out
}

func parseWorkload(t *testing.T, src string) *workload.Workload {
	t.Helper()
	w, err := workload.Parse("test.toml", []byte(src), nil)
	require.NoError(t, err)
	require.NoError(t, workload.Resolve(w, func(n string) (string, bool) { return "app-" + n, true }, nil))
	return w
}

func classNamed(t *testing.T, w *workload.Workload, deps Deps, name string) *Class {
	t.Helper()
	cs, err := NewClasses(w, deps)
	require.NoError(t, err)
	for _, c := range cs {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no class %s", name)
	return nil
}

const everyType = `
[[apps]]
name = "c"
type = "chat"
key_env = "C"
queries = ["q1", "q2", "q3"]
conversation = { turns = 3 }
files = [{ type = "image", transfer_method = "remote_url", url = "https://x/y.png" }]
[[apps]]
name = "comp"
type = "completion"
key_env = "COMP"
query_input = "topic"
inputs = { tone = "dry" }
queries = ["cats"]
[[apps]]
name = "wf"
type = "workflow"
key_env = "WF"
inputs = { lang = "en" }
[[knowledge_bases]]
name = "kb"
dataset_id = "ds-1"
key_env = "KB"
queries = ["k"]
retrieval_model = { search_method = "keyword_search", top_k = 2 }
[[users]]
name = "U"
tasks = [
  { app = "c", tags = ["chat"] },
  { app = "comp", tags = ["gen"] },
  { app = "wf", tags = ["gen", "slow"] },
  { app = "kb" },
]
`

func TestEveryAppTypeRequest(t *testing.T) {
	t.Parallel()
	w := parseWorkload(t, everyType)
	st := &scripted{}
	rec := &recorder{}
	ctx := context.Background()
	for _, tc := range []struct {
		tags, exclude []any
		want          string
	}{
		{tags: []any{"chat"}, want: "c"},
		{tags: []any{"gen"}, exclude: []any{"slow"}, want: "comp"},
		{tags: []any{"slow"}, want: "wf"},
	} {
		cls := classNamed(t, w, Deps{Client: st, Recorder: rec}, "U")
		u, err := cls.newUser(1, 0, "http://h", map[string]any{"tags": tc.tags, "exclude_tags": tc.exclude})
		require.NoError(t, err)
		require.Len(t, u.tasks, 1, "tags %v exclude %v", tc.tags, tc.exclude)
		assert.Equal(t, tc.want, u.tasks[0].name)
		require.NoError(t, u.RunTask(ctx))
	}
	// No tags: the untagged kb task runs too; --exclude-tags alone keeps untagged tasks.
	cls := classNamed(t, w, Deps{Client: st, Recorder: rec}, "U")
	u, err := cls.newUser(2, -1, "http://h", map[string]any{"exclude_tags": []any{"chat", "gen"}})
	require.NoError(t, err)
	require.Len(t, u.tasks, 1)
	require.NoError(t, u.RunTask(ctx))

	b := st.bodies(t)
	require.Len(t, b, 3+1+1+1)
	for i := range 3 { // one conversation of 3 turns
		assert.Equal(t, "http://h/v1/chat-messages", b[i]["_url"])
		assert.Equal(t, "chat", b[i]["_mode"])
		assert.Equal(t, "app-C", b[i]["_key"])
		assert.Len(t, b[i]["files"], 1)
	}
	assert.Equal(t, "", b[0]["conversation_id"])
	assert.Equal(t, "conv-0", b[1]["conversation_id"], "turn 2 reuses turn 1's conversation_id")
	assert.Equal(t, "conv-1", b[2]["conversation_id"])
	assert.Equal(t, "http://h/v1/completion-messages", b[3]["_url"])
	assert.Equal(t, map[string]any{"tone": "dry", "topic": "cats"}, b[3]["inputs"])
	assert.Equal(t, "cats", b[3]["query"])
	assert.Equal(t, "http://h/v1/workflows/run", b[4]["_url"])
	assert.Equal(t, "workflow", b[4]["_mode"])
	assert.Equal(t, map[string]any{"lang": "en"}, b[4]["inputs"], "a workflow without queries sends its inputs alone")
	assert.NotContains(t, b[4], "query")
	assert.Equal(t, "http://h/v1/datasets/ds-1/retrieve", b[5]["_url"])
	assert.Equal(t, map[string]any{"search_method": "keyword_search", "top_k": float64(2)}, b[5]["retrieval_model"])
	assert.Contains(t, rec.rows(), "POST /v1/completion-messages")
	assert.Contains(t, rec.rows(), "POST /v1/workflows/run")
}

func TestFailedTurnEndsConversation(t *testing.T) {
	t.Parallel()
	w := parseWorkload(t, everyType)
	st := &scripted{answer: func(n int, _ sse.Request) (*sse.Result, error) {
		if n == 1 { // the second turn of the first conversation fails
			t0 := time.Now()
			return &sse.Result{StatusCode: 200, Start: t0, Headers: t0, End: t0}, &sse.StreamError{Phase: sse.PhaseErrorEvent, Code: "x"}
		}
		return nil, nil
	}}
	cls := classNamed(t, w, Deps{Client: st, Recorder: &recorder{}}, "U")
	u, err := cls.newUser(1, -1, "http://h", map[string]any{"tags": []any{"chat"}})
	require.NoError(t, err)
	require.NoError(t, u.RunTask(context.Background()))
	require.NoError(t, u.RunTask(context.Background()))
	b := st.bodies(t)
	require.Len(t, b, 2+3, "a failed turn ends the conversation; the next one has all its turns")
	assert.Equal(t, "", b[2]["conversation_id"], "the next conversation starts fresh")
	assert.Equal(t, "conv-2", b[3]["conversation_id"])
}

func TestSequentialPicksDifferPerWorkerAndUser(t *testing.T) {
	t.Parallel()
	src := "[[apps]]\nname = \"a\"\ntype = \"chat\"\nkey_env = \"K\"\nqueries = [" +
		"\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\",\"18\",\"19\"]\n" +
		"[[users]]\nname = \"U\"\ntasks = [{ app = \"a\" }]\n"
	w := parseWorkload(t, src)
	starts := map[string]bool{}
	for worker := range 4 {
		for id := 1; id <= 4; id++ {
			st := &scripted{}
			cls := classNamed(t, w, Deps{Client: st, Recorder: &recorder{}}, "U")
			u, err := cls.newUser(id, worker, "http://h", nil)
			require.NoError(t, err)
			for range 3 {
				require.NoError(t, u.RunTask(context.Background()))
			}
			b := st.bodies(t)
			seq := fmt.Sprint(b[0]["query"], b[1]["query"], b[2]["query"])
			starts[fmt.Sprint(b[0]["query"])] = true
			var q0 int
			fmt.Sscan(b[0]["query"].(string), &q0)
			assert.Equal(t, fmt.Sprint(fmt.Sprint(q0), fmt.Sprint((q0+1)%20), fmt.Sprint((q0+2)%20)), seq, "sequential")
		}
	}
	assert.Greater(t, len(starts), 8, "16 users on 4 workers start at %d different rows", len(starts))
}

func TestUpdateUserClass(t *testing.T) {
	t.Parallel()
	w := parseWorkload(t, everyType)
	cls := classNamed(t, w, Deps{Client: &scripted{}, Recorder: &recorder{}}, "U")
	cls.Update(map[string]any{"user_class_name": "U", "host": "http://edited:1", "tasks": []any{"wf", "kb"}, "weight": int64(5)})
	u, err := cls.newUser(1, -1, "http://master", nil)
	require.NoError(t, err)
	assert.Equal(t, "http://edited:1", u.base)
	assert.Equal(t, []string{"wf", "kb"}, []string{u.tasks[0].name, u.tasks[1].name})
}

func TestWaitFunctions(t *testing.T) {
	t.Parallel()
	rng := mrand.New(mrand.NewPCG(1, 2))
	p := newWaiter(workload.Wait{Kind: workload.WaitConstantPacing, Min: time.Second})
	start := time.Now().Add(-300 * time.Millisecond) // the task took 300 ms
	if d := p.next(rng, start); d > 700*time.Millisecond || d < 650*time.Millisecond {
		t.Errorf("constant_pacing(1s) after a 300ms task waits %v, want ~700ms", d)
	}
	if d := p.next(rng, time.Now().Add(-2*time.Second)); d != 0 {
		t.Errorf("a task longer than the pacing waits %v, want 0", d)
	}
	ct := newWaiter(workload.Wait{Kind: workload.WaitConstantThroughput, Rate: 4})
	if d := ct.next(rng, time.Now()); d > 250*time.Millisecond || d < 240*time.Millisecond {
		t.Errorf("constant_throughput(4) waits %v, want ~250ms", d)
	}
	po := newWaiter(workload.Wait{Kind: workload.WaitPoisson, Rate: 2})
	var sum time.Duration
	const n = 20000
	for range n {
		sum += po.next(rng, time.Now())
	}
	if mean := sum.Seconds() / n; math.Abs(mean-0.5) > 0.02 {
		t.Errorf("poisson(2) mean wait %.3fs, want 0.5s", mean)
	}
	if d := newWaiter(workload.Wait{Kind: workload.WaitConstant, Min: 3 * time.Second}).next(rng, time.Now()); d != 3*time.Second {
		t.Errorf("constant(3) = %v", d)
	}
}
