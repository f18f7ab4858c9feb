package worker

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
)

// A task that ends shortly after the master's quit is reported in the final stats; one
// that would run past QuitGrace is cancelled and not reported.
func TestQuitGraceReportsTasksUnderWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := metrics.NewStats()
		taskLen := map[string]time.Duration{"Short": 100 * time.Millisecond, "Long": 10 * time.Second}
		mk := func(name string) *testClass {
			return &testClass{name: name, weight: 1, wait: time.Hour, task: func(ctx context.Context, id int, env runner.Env) error {
				select {
				case <-time.After(taskLen[name]):
					st.Record(metrics.Sample{Method: "SSE", Name: name, Duration: taskLen[name], At: time.Now()})
				case <-ctx.Done():
				}
				return nil
			}}
		}
		h := startHarness(t, Config{StatsInterval: time.Hour, QuitGrace: 300 * time.Millisecond}, []runner.UserClass{mk("Short"), mk("Long")}, st)
		h.register()
		h.push(typeSpawn, spawnData(1, map[string]int{"Short": 1, "Long": 1}, nil, nil))
		h.expect(typeSpawningComplete, time.Second)
		time.Sleep(50 * time.Millisecond) // both tasks under way
		h.push(typeQuit, nil)
		stats := h.expect(typeStats, time.Second)
		var names []string
		for _, e := range sliceOf(t, mapOf(t, stats.Data)["stats"]) {
			names = append(names, mapOf(t, e)["name"].(string))
		}
		if !slices.Equal(names, []string{"Short"}) {
			t.Fatalf("final stats rows %v, want only the task that finished within the grace [Short]", names)
		}
		h.expect(typeQuit, time.Second)
		if err := h.wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// Custom messages follow every stats report, the final one included.
func TestMessagesFollowStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		cfg := Config{StatsInterval: 3 * time.Second, Messages: func(time.Time) []Message {
			n++
			return []Message{{Type: "difyload_llm", Data: map[string]any{"seq": n}}}
		}}
		h := startHarness(t, cfg, []runner.UserClass{&testClass{name: "A", weight: 1}}, emptyStats{})
		h.register()
		var order []string
		for len(order) < 4 {
			g, ok := h.next(10 * time.Second)
			if !ok {
				t.Fatalf("only %v", order)
			}
			if g.Type == typeStats || g.Type == "difyload_llm" {
				order = append(order, g.Type)
			}
		}
		if !slices.Equal(order, []string{typeStats, "difyload_llm", typeStats, "difyload_llm"}) {
			t.Fatalf("frames %v, want stats then the custom message, twice", order)
		}
		h.push(typeQuit, nil)
		h.expect(typeStats, time.Second)
		if g := h.expect("difyload_llm", time.Second); toInt(t, mapOf(t, g.Data)["seq"]) != 3 {
			t.Fatalf("final custom message %v, want seq 3", g.Data)
		}
		if err := h.wait(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func sliceOf(t *testing.T, v any) []any {
	t.Helper()
	s, ok := v.([]any)
	if !ok {
		t.Fatalf("%T is not a list", v)
	}
	return s
}
