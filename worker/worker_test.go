package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
)

func heartbeatState(t *testing.T, g got) string {
	t.Helper()
	d := mapOf(t, g.Data)
	if _, ok := d["current_cpu_usage"].(float64); !ok {
		t.Fatalf("heartbeat current_cpu_usage %T, want float", d["current_cpu_usage"])
	}
	toInt(t, d["current_memory_usage"])
	s, _ := d["state"].(string)
	return s
}

// nextHeartbeat returns the state of the next heartbeat.
func (m *fakeMaster) nextHeartbeatState() string {
	m.t.Helper()
	return heartbeatState(m.t, m.expect(typeHeartbeat, 5*time.Second))
}

func twoClasses() []runner.UserClass {
	return []runner.UserClass{
		&testClass{name: "ChatUser", weight: 3, wait: 100 * time.Millisecond},
		&testClass{name: "RetrieveUser", weight: 1, wait: 100 * time.Millisecond},
	}
}

func TestStateMachine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Fatalf("state before ack %q", s)
		}
		h.register()
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Fatalf("state after ack %q", s)
		}

		// spawn: spawning first, then spawning_complete with real counts.
		h.push(typeSpawn, spawnData(100.5, map[string]int{"ChatUser": 2, "RetrieveUser": 0}, nil, 2.0))
		g := h.expect(typeSpawning, time.Second)
		if g.Data != nil {
			t.Errorf("spawning data %v, want nil", g.Data)
		}
		g = h.expect(typeSpawningComplete, time.Second)
		d := mapOf(t, g.Data)
		if c := countsOf(t, d["user_classes_count"]); c["ChatUser"] != 2 || c["RetrieveUser"] != 0 || len(c) != 2 {
			t.Errorf("spawning_complete counts %v", c)
		}
		if n := toInt(t, d["user_count"]); n != 2 {
			t.Errorf("user_count %d", n)
		}
		if s := h.nextHeartbeatState(); s != stateRunning {
			t.Fatalf("state after spawn %q", s)
		}

		// stop: stats flushed, client_stopped, ready, sleep stop_timeout, client_ready.
		h.push(typeStop, nil)
		var sawStats bool
		for {
			g, ok := h.next(10 * time.Second)
			if !ok {
				t.Fatal("no client_stopped")
			}
			if g.Type == typeStats {
				sawStats = true
			}
			if g.Type == typeClientStopped {
				break
			}
		}
		if !sawStats {
			t.Error("no stats flushed before client_stopped")
		}
		stoppedAt := time.Now()
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Fatalf("state after stop %q", s)
		}
		g = h.expect(typeClientReady, 10*time.Second)
		if wait := g.At.Sub(stoppedAt); wait < 2*time.Second {
			t.Errorf("client_ready %v after client_stopped, want ≥ stop_timeout 2s", wait)
		}
		h.push(typeAck, map[string]any{"index": 0})
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Fatalf("state after re-ack %q", s)
		}
		// And a new test can start.
		h.push(typeSpawn, spawnData(200, map[string]int{"ChatUser": 1, "RetrieveUser": 1}, "http://h", nil))
		h.expect(typeSpawning, time.Second)
		g = h.expect(typeSpawningComplete, time.Second)
		if n := toInt(t, mapOf(t, g.Data)["user_count"]); n != 2 {
			t.Errorf("second spawn user_count %d", n)
		}
		h.mustStop()
	})
}

func TestStaleSpawnDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.register()
		h.push(typeSpawn, spawnData(10, map[string]int{"ChatUser": 2, "RetrieveUser": 0}, nil, nil))
		h.expect(typeSpawning, time.Second)
		h.expect(typeSpawningComplete, time.Second)

		for _, ts := range []any{10.0, 9.5, int64(10), int64(3)} {
			d := spawnData(0, map[string]int{"ChatUser": 5, "RetrieveUser": 5}, nil, nil)
			d["timestamp"] = ts
			h.push(typeSpawn, d)
			// Python replies spawning even to a stale spawn, then drops it.
			h.expect(typeSpawning, time.Second)
		}
		h.push(typeSpawn, spawnData(10.25, map[string]int{"ChatUser": 1, "RetrieveUser": 1}, nil, nil))
		h.expect(typeSpawning, time.Second)
		g := h.expect(typeSpawningComplete, time.Second) // fails if a stale spawn produced one
		if c := countsOf(t, mapOf(t, g.Data)["user_classes_count"]); c["ChatUser"] != 1 || c["RetrieveUser"] != 1 {
			t.Errorf("counts after fresh spawn %v", c)
		}
		h.mustStop()
	})
}

// trackingClass records which user ids are running tasks.
type trackingClass struct {
	testClass
	mu      sync.Mutex
	running map[int]bool
}

func newTrackingClass(name string) *trackingClass {
	c := &trackingClass{running: map[int]bool{}}
	c.testClass = testClass{name: name, weight: 1, wait: 50 * time.Millisecond}
	c.task = func(ctx context.Context, id int, env runner.Env) error {
		c.mu.Lock()
		c.running[id] = true
		c.mu.Unlock()
		return nil
	}
	return c
}

func TestSpawnTargetsAndRampDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chat := newTrackingClass("ChatUser")
		ret := newTrackingClass("RetrieveUser")
		h := startHarness(t, Config{}, []runner.UserClass{chat, ret}, emptyStats{})
		h.register()

		h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 3, "RetrieveUser": 2, "PythonOnlyUser": 4}, nil, nil))
		g := h.expect(typeSpawningComplete, time.Second)
		c := countsOf(t, mapOf(t, g.Data)["user_classes_count"])
		if c["ChatUser"] != 3 || c["RetrieveUser"] != 2 || len(c) != 2 {
			t.Errorf("counts %v (unknown classes must be ignored)", c)
		}
		if env := chat.lastEnv(); env.Host != "" || env.ParsedOptions["my_arg"] != "x" {
			t.Errorf("env %+v", env)
		}

		// Ramp down ChatUser to 1 (stop the two newest) and RetrieveUser to 0 (zeros apply).
		h.push(typeSpawn, spawnData(2, map[string]int{"ChatUser": 1, "RetrieveUser": 0, "PythonOnlyUser": 0}, "http://target:1", 0.0))
		g = h.expect(typeSpawningComplete, time.Second)
		c = countsOf(t, mapOf(t, g.Data)["user_classes_count"])
		if c["ChatUser"] != 1 || c["RetrieveUser"] != 0 {
			t.Errorf("counts after ramp down %v", c)
		}
		time.Sleep(time.Second) // let stopped users exit
		synctest.Wait()
		chat.mu.Lock()
		clear(chat.running)
		chat.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		chat.mu.Lock()
		ids := slices.Sorted(mapKeys(chat.running))
		chat.mu.Unlock()
		if len(ids) != 1 || ids[0] != 1 {
			t.Errorf("ChatUser ids still running %v, want only the oldest (1)", ids)
		}

		// Ramp up again: new users get the new host.
		h.push(typeSpawn, spawnData(3, map[string]int{"ChatUser": 2, "RetrieveUser": 0}, "http://target:1", nil))
		h.expect(typeSpawningComplete, time.Second)
		if env := chat.lastEnv(); env.Host != "http://target:1" {
			t.Errorf("new user host %q", env.Host)
		}
		h.mustStop()
	})
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestQuitFlushesStatsBeforeQuit(t *testing.T) {
	for _, waitNew := range []bool{false, true} {
		t.Run(fmt.Sprintf("WaitForNewMaster=%v", waitNew), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tap := newTapStats()
				classes := []runner.UserClass{recordingClass("ChatUser", tap.st, 10*time.Millisecond), recordingClass("RetrieveUser", tap.st, 10*time.Millisecond)}
				h := startHarness(t, Config{WaitForNewMaster: waitNew, StatsInterval: time.Hour}, classes, tap)
				h.register()
				h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 2, "RetrieveUser": 1}, nil, nil))
				h.expect(typeSpawningComplete, time.Second)
				time.Sleep(500 * time.Millisecond)
				h.push(typeQuit, nil)

				// The very next non-heartbeat frames are stats (with the samples) then quit.
				var order []string
				var stats got
				for len(order) < 2 {
					g, ok := h.next(time.Second)
					if !ok {
						t.Fatalf("only %v after quit", order)
					}
					if g.Type == typeHeartbeat {
						continue
					}
					order = append(order, g.Type)
					if g.Type == typeStats {
						stats = g
					}
				}
				if !slices.Equal(order, []string{typeStats, typeQuit}) {
					t.Fatalf("after quit got %v, want [stats quit]", order)
				}
				sd := mapOf(t, stats.Data)
				total := mapOf(t, sd["stats_total"])
				if n := toInt(t, total["num_requests"]); n == 0 {
					t.Error("final stats carry no requests")
				}
				if waitNew {
					h.expect(typeClientReady, time.Second)
					h.mustStop()
					return
				}
				if err := h.wait(10 * time.Second); err != nil {
					t.Fatalf("Run after quit: %v", err)
				}
				if !h.conn().isClosed() {
					t.Error("conn not closed")
				}
			})
		})
	}
}

func TestExceptionReporting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		panicky := &testClass{name: "ChatUser", weight: 1, wait: time.Millisecond, task: func(ctx context.Context, id int, env runner.Env) error {
			calls.Add(1)
			panic(fmt.Sprintf("boom %p", &id)) // message differs per call, traceback doesn't
		}}
		erring := &testClass{name: "RetrieveUser", weight: 1, wait: time.Second, task: func(ctx context.Context, id int, env runner.Env) error {
			return fmt.Errorf("retrieve: %w", errors.New("HTTP 500"))
		}}
		h := startHarness(t, Config{StatsInterval: 3 * time.Second}, []runner.UserClass{panicky, erring}, emptyStats{})
		h.register()
		h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 1, "RetrieveUser": 0}, nil, nil))
		h.expect(typeSpawningComplete, time.Second)
		g := h.expect(typeException, time.Second)
		d := mapOf(t, g.Data)
		msg, _ := d["msg"].(string)
		tb, _ := d["traceback"].(string)
		if !strings.HasPrefix(msg, "boom 0x") {
			t.Errorf("msg %q", msg)
		}
		if !strings.Contains(tb, "worker_test.go") || strings.Contains(tb, "goroutine") || strings.Contains(tb, "+0x") || strings.Contains(tb, "Scheduler") {
			t.Errorf("traceback not stable/clean:\n%s", tb)
		}
		// The user keeps running (WaitTime 0): a tight panic loop. Over 3
		// intervals the worker must send at most the budget per interval,
		// all with the identical traceback.
		var exc int
		for _, f := range h.collect(9 * time.Second) {
			if f.Type != typeException {
				continue
			}
			exc++
			if tb2 := mapOf(t, f.Data)["traceback"]; tb2 != tb {
				t.Fatalf("traceback changed:\n%s\nvs\n%s", tb2, tb)
			}
		}
		if calls.Load() < 1000 {
			t.Fatalf("only %d panics; the user did not keep running", calls.Load())
		}
		if exc == 0 || exc > 4*exceptionBudget {
			t.Errorf("%d exception messages for %d panics, want 1..%d", exc, calls.Load(), 4*exceptionBudget)
		}

		// An error return is an exception too.
		h.push(typeSpawn, spawnData(2, map[string]int{"ChatUser": 0, "RetrieveUser": 1}, nil, nil))
		h.expect(typeSpawningComplete, 5*time.Second)
		var found bool
		for _, f := range h.collect(5 * time.Second) {
			if f.Type != typeException {
				continue
			}
			d := mapOf(t, f.Data)
			if d["msg"] == "retrieve: HTTP 500" {
				found = true
				if tb, _ := d["traceback"].(string); !strings.Contains(tb, "RetrieveUser.RunTask") || !strings.Contains(tb, "*fmt.wrapError") {
					t.Errorf("error traceback %q", tb)
				}
			}
		}
		if !found {
			t.Error("no exception for the returned error")
		}
		h.mustStop()
	})
}

func TestMalformedFramesIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.register()
		bad := [][]byte{
			{},
			{0xc1},
			{0x92, 0xa3, 'a', 'c', 'k', 0xc0}, // 2 elements
			{0x94, 0xa3, 'a', 'c', 'k', 0xc0, 0xc0, 0xc0}, // 4 elements
			{0x93, 0x01, 0xc0, 0xc0},                      // type not a str
			{0x93, 0xa3, 's', 't', 'o'},                   // truncated
			[]byte(strings.Repeat("\x91", 100000)),        // deep nesting
			{0xdd, 0xff, 0xff, 0xff, 0xff},                // huge array claim
		}
		for _, b := range bad {
			h.pushRaw(b)
		}
		// Well-formed but wrong payloads.
		h.push(typeSpawn, "not a map")
		h.push(typeSpawn, map[string]any{"timestamp": "x"})
		h.push(typeSpawn, map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{"ChatUser": -1}})
		h.push(typeSpawn, map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{"ChatUser": "two"}})
		h.push(typeAck, "weird")
		h.push("heartbeat", nil)
		h.push("spawning_complete", map[string]any{"user_count": 4})
		h.push("update_user_class", map[string]any{"user_class_name": "ChatUser", "host": "x"})
		h.push("my_custom", []any{1, 2, 3})
		// Still alive and serving.
		h.push(typeSpawn, spawnData(5, map[string]int{"ChatUser": 1}, nil, nil))
		g := h.expect(typeSpawning, time.Second)
		_ = g
		h.expect(typeSpawningComplete, time.Second)
		h.mustStop()
	})
}

func TestNoMasterTimeoutWithoutMasterHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A 2.12.1 master never sends heartbeats: no re-registration.
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.register()
		for _, g := range h.collect(30 * time.Second) {
			if g.Type == typeClientReady {
				t.Fatal("re-registered although the master never sent heartbeats")
			}
		}
		h.mustStop()
	})
}

func TestConnectTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := startHarness(t, Config{ConnectTimeout: 30 * time.Second, ReadyRetryInterval: 5 * time.Second}, twoClasses(), emptyStats{})
		err := h.wait(time.Minute)
		if err == nil || !strings.Contains(err.Error(), "no ack") {
			t.Fatalf("Run = %v, want a no-ack error", err)
		}
		if d := time.Since(start); d < 30*time.Second {
			t.Errorf("gave up after %v", d)
		}
		var readies int
		for len(h.conn().out) > 0 {
			if g := decodeForTest(t, <-h.conn().out); g.Type == typeClientReady {
				readies++
			}
		}
		if readies < 6 || readies > 8 {
			t.Errorf("%d client_ready in 30s at 5s retry, want 6-7", readies)
		}
	})
}

func TestShutdownTwoStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var finished, cancelled atomic.Int64
		slow := &testClass{name: "ChatUser", weight: 1, task: func(ctx context.Context, id int, env runner.Env) error {
			d := 500 * time.Millisecond
			if id%2 == 0 {
				d = 10 * time.Second
			}
			select {
			case <-time.After(d):
				finished.Add(1)
				return nil
			case <-ctx.Done():
				cancelled.Add(1)
				return ctx.Err()
			}
		}}
		h := startHarness(t, Config{ShutdownGrace: 2 * time.Second}, []runner.UserClass{slow}, emptyStats{})
		h.register()
		h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 2}, nil, nil))
		h.expect(typeSpawningComplete, time.Second)
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		h.cancel()
		var order []string
		for {
			g, ok := h.next(10 * time.Second)
			if !ok {
				break
			}
			if g.Type != typeHeartbeat {
				order = append(order, g.Type)
			}
			if g.Type == typeQuit {
				if d := g.At.Sub(start); d < 2*time.Second {
					t.Errorf("quit %v after cancel, want after the 2s grace", d)
				}
				break
			}
		}
		if err := h.wait(time.Second); err != nil {
			t.Fatal(err)
		}
		if len(order) < 2 || order[len(order)-2] != typeStats || order[len(order)-1] != typeQuit {
			t.Errorf("shutdown frames %v, want ... stats, quit", order)
		}
		if finished.Load() != 1 || cancelled.Load() != 1 {
			t.Errorf("finished %d cancelled %d, want 1 and 1", finished.Load(), cancelled.Load())
		}
	})
}

func TestReconnectRecreatesSocket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.register()
		old := h.conn()
		h.push(typeReconnect, nil)
		for h.dials() < 2 {
			time.Sleep(10 * time.Millisecond)
		}
		if !old.isClosed() {
			t.Error("old socket not closed")
		}
		for _, g := range h.collect(8 * time.Second) {
			if g.Type == typeClientReady {
				t.Error("client_ready after reconnect (Python does not re-register)")
			}
		}
		h.mustStop()
	})
}

func TestStatsEveryStateAndExtras(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{Extras: func(time.Time) map[string]any {
			return map[string]any{"llm": map[string]any{"ttft_ms": []any{1.5}}, "stats": "must not override"}
		}}, twoClasses(), emptyStats{})
		// Stats flow even before the ack (state ready), like Python.
		g := h.expect(typeStats, 4*time.Second)
		d := mapOf(t, g.Data)
		for _, k := range statsKeys {
			if _, ok := d[k]; !ok {
				t.Errorf("stats without %q", k)
			}
		}
		if _, ok := d["stats"].([]any); !ok {
			t.Errorf("extras overrode stats: %T", d["stats"])
		}
		if _, ok := d["llm"]; !ok {
			t.Error("extras missing")
		}
		h.mustStop()
	})
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	cls := twoClasses()
	tests := []struct {
		name    string
		cfg     Config
		classes []runner.UserClass
		stats   StatsSource
	}{
		{"no classes", Config{}, nil, emptyStats{}},
		{"nil stats", Config{}, cls, nil},
		{"dup class", Config{}, []runner.UserClass{cls[0], cls[0]}, emptyStats{}},
		{"bad port", Config{MasterPort: 70000}, cls, emptyStats{}},
		{"long id", Config{NodeID: strings.Repeat("x", 256)}, cls, emptyStats{}},
		{"negative", Config{StatsInterval: -1}, cls, emptyStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.cfg, tt.classes, tt.stats); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	w, err := New(Config{}, cls, emptyStats{})
	if err != nil {
		t.Fatal(err)
	}
	id := w.NodeID()
	host, hexid, ok := strings.Cut(id, "_")
	if !ok || host == "" || len(hexid) < 32 {
		t.Errorf("node id %q, want host_uuidhex", id)
	}
}

// Compile-time check that metrics.Stats is a StatsSource.
var _ StatsSource = (*metrics.Stats)(nil)
