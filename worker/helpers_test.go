package worker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
)

// testClass is a UserClass whose users run fn.
type testClass struct {
	name    string
	weight  int
	wait    time.Duration
	task    func(ctx context.Context, id int, env runner.Env) error
	newErr  error
	mu      sync.Mutex
	envs    []runner.Env
	created int
}

func (c *testClass) Name() string { return c.name }
func (c *testClass) Weight() int  { return c.weight }
func (c *testClass) NewUser(id int, env runner.Env) (runner.User, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.newErr != nil {
		return nil, c.newErr
	}
	c.envs = append(c.envs, env)
	c.created++
	return &testUser{c: c, id: id, env: env}, nil
}

func (c *testClass) lastEnv() runner.Env {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.envs) == 0 {
		return runner.Env{}
	}
	return c.envs[len(c.envs)-1]
}

type testUser struct {
	c   *testClass
	id  int
	env runner.Env
}

func (u *testUser) RunTask(ctx context.Context) error {
	if u.c.task == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
		return nil
	}
	return u.c.task(ctx, u.id, u.env)
}

func (u *testUser) WaitTime() time.Duration { return u.c.wait }

// recordingClass records one sample per task into st.
func recordingClass(name string, st *metrics.Stats, wait time.Duration) *testClass {
	n := 0
	var mu sync.Mutex
	return &testClass{name: name, weight: 1, wait: wait, task: func(ctx context.Context, id int, env runner.Env) error {
		mu.Lock()
		n++
		fail := n%5 == 0
		mu.Unlock()
		s := metrics.Sample{Method: "GET", Name: "/" + name, Duration: time.Duration(5+id) * time.Millisecond, Size: 10, At: time.Now()}
		if fail {
			s.Failure = "HTTP 500"
		}
		st.Record(s)
		return nil
	}}
}

// tapStats drains a real metrics.Stats and remembers everything it handed out.
type tapStats struct {
	st  *metrics.Stats
	cum *metrics.Cumulative
}

func newTapStats() *tapStats {
	return &tapStats{st: metrics.NewStats(), cum: metrics.NewCumulative()}
}

func (t *tapStats) Drain(now time.Time) metrics.Report {
	r := t.st.Drain(now)
	t.cum.Add(r)
	return r
}

// emptyStats is a StatsSource with nothing recorded.
type emptyStats struct{}

func (emptyStats) Drain(now time.Time) metrics.Report {
	ts := float64(now.UnixNano()) / 1e9
	return metrics.Report{Total: metrics.Entry{Name: "Aggregated", StartTime: ts}}
}

// testLogger logs to t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
