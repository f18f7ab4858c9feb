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

// answerHeartbeats plays a 2.19+ master for n heartbeats.
func answerHeartbeats(h *harness, n int) {
	for range n {
		h.expect(typeHeartbeat, 2*time.Second)
		h.push(typeHeartbeat, nil)
	}
}

// noClientReady fails if a client_ready arrives within d.
func noClientReady(t *testing.T, h *harness, d time.Duration, why string) {
	t.Helper()
	for _, g := range h.collect(d) {
		if g.Type == typeClientReady {
			t.Fatalf("client_ready %s", why)
		}
	}
}

func TestMasterHeartbeatGapToleratedLikePython(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.register()
		h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 2, "RetrieveUser": 0}, nil, nil))
		h.expect(typeSpawningComplete, time.Second)
		answerHeartbeats(h, 5)
		// A 10 s stall (SIGSTOP, GC pause, overloaded master): nothing changes.
		noClientReady(t, h, 10*time.Second, "during a 10 s master stall")
		answerHeartbeats(h, 2)
		silentFrom := time.Now()
		st := h.expect(typeStats, 5*time.Second)
		if n := toInt(t, mapOf(t, st.Data)["user_count"]); n != 2 {
			t.Fatalf("user_count %d after a stall, want the 2 users still running", n)
		}
		// Silence past MasterTimeout (60 s, Python's MASTER_HEARTBEAT_TIMEOUT): a lost master.
		g := h.expect(typeClientReady, 75*time.Second)
		if since := g.At.Sub(silentFrom); since < 60*time.Second {
			t.Errorf("re-registered %v after the last master heartbeat, want ≥ 60s", since)
		}
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Errorf("state while re-registering %q", s)
		}
		h.push(typeAck, map[string]any{"index": 3})
		st = h.expect(typeStats, 5*time.Second)
		if n := toInt(t, mapOf(t, st.Data)["user_count"]); n != 0 {
			t.Errorf("user_count %d after re-register, want 0", n)
		}
		h.mustStop()
	})
}

// A TCP reset to the same master: one scheduled attempt that succeeds.
func TestReconnectToSameMasterKeepsUsers(t *testing.T) {
	for _, heartbeats := range []bool{false, true} { // 2.12.1, 2.19+
		name := map[bool]string{false: "2.12.1", true: "2.19+"}[heartbeats]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := startHarness(t, Config{}, twoClasses(), emptyStats{})
				h.connect()
				h.spawnChat(2)
				if heartbeats {
					answerHeartbeats(h, 3)
				}
				h.pushEvent(evDisconnected)
				h.pushEvent(evRetried)
				h.pushEvent(evConnected)
				if heartbeats {
					answerHeartbeats(h, 8)
				}
				noClientReady(t, h, 8*time.Second, "after a reconnect to the same master")
				st := h.expect(typeStats, 5*time.Second)
				if n := toInt(t, mapOf(t, st.Data)["user_count"]); n != 2 {
					t.Fatalf("user_count %d after the reconnect, want 2", n)
				}
				h.mustStop()
			})
		})
	}
}

// A restarted master: the port refused connections for a while.
func TestReconnectAfterRefusalsReregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.connect()
		h.spawnChat(2)
		h.pushEvent(evDisconnected)
		for range 4 {
			h.pushEvent(evRetried)
		}
		noClientReady(t, h, 3*time.Second, "before the new master connected")
		h.pushEvent(evConnected)
		h.expect(typeClientReady, time.Second)
		if s := h.nextHeartbeatState(); s != stateReady {
			t.Errorf("state %q", s)
		}
		h.push(typeAck, map[string]any{"index": 0})
		h.mustStop()
	})
}

// A reconnect that looked like the same master, but the master does not
// answer heartbeats any more: it does not know this node.
func TestReconnectWithoutHeartbeatAnswerReregisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := startHarness(t, Config{}, twoClasses(), emptyStats{})
		h.connect()
		answerHeartbeats(h, 3)
		h.pushEvent(evDisconnected)
		h.pushEvent(evRetried)
		h.pushEvent(evConnected)
		at := time.Now()
		g := h.expect(typeClientReady, 10*time.Second)
		if d := g.At.Sub(at); d < 4*time.Second || d > 7*time.Second {
			t.Errorf("re-registered %v after the reconnect, want about 5 heartbeats", d)
		}
		h.mustStop()
	})
}

// Samples recorded while the connection is down are reported after it, not dropped.
func TestStatsKeptWhileDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := metrics.NewStats()
		h := startHarness(t, Config{}, twoClasses(), st)
		h.connect()
		h.pushEvent(evDisconnected)
		st.Record(metrics.Sample{Method: "POST", Name: "/x", Duration: time.Millisecond})
		time.Sleep(7 * time.Second) // two stats intervals while down
		h.pushEvent(evRetried)
		h.pushEvent(evConnected)
		var total int64
		for _, g := range h.collect(4 * time.Second) {
			if g.Type == typeStats {
				total += toInt(t, mapOf(t, mapOf(t, g.Data)["stats_total"])["num_requests"])
			}
		}
		if total != 1 {
			t.Fatalf("reported %d requests after the reconnect, want the 1 recorded while down", total)
		}
		h.mustStop()
	})
}

// Users still finishing their task after a stop count as running, so a master that waits
// for user_count 0 (then quits) waits for them.
func TestStoppingUsersCountAsRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := &testClass{name: "ChatUser", weight: 1, task: func(ctx context.Context, _ int, _ runner.Env) error {
			select {
			case <-ctx.Done():
			case <-time.After(4 * time.Second):
			}
			return nil
		}}
		h := startHarness(t, Config{}, []runner.UserClass{slow}, emptyStats{})
		h.register()
		h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": 1}, nil, 10.0))
		h.expect(typeSpawningComplete, time.Second)
		time.Sleep(500 * time.Millisecond)
		h.push(typeStop, nil)
		var counts []int64
		for _, g := range h.collect(6 * time.Second) {
			if g.Type == typeStats {
				counts = append(counts, toInt(t, mapOf(t, g.Data)["user_count"]))
			}
			if g.Type == typeClientStopped {
				break
			}
		}
		if len(counts) < 2 || counts[0] != 1 || counts[len(counts)-1] != 0 {
			t.Fatalf("user_count in the stats during the stop: %v, want 1 while the task runs, then 0", counts)
		}
		h.mustStop()
	})
}

// --reset-stats: what the ramp-up recorded and had not yet reported is dropped at the
// spawn and at a 2.29+ master's spawning_complete broadcast.
func TestResetStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := metrics.NewStats()
		var spawned []runner.Env
		h := startHarness(t, Config{OnSpawn: func(env runner.Env) { spawned = append(spawned, env) }}, twoClasses(), st)
		h.register()
		opts := map[string]any{"reset_stats": true}
		st.Record(metrics.Sample{Method: "POST", Name: "/before-spawn"})
		sp := spawnData(1, map[string]int{"ChatUser": 1}, nil, nil)
		sp["parsed_options"] = opts
		h.push(typeSpawn, sp)
		h.expect(typeSpawningComplete, time.Second)
		st.Record(metrics.Sample{Method: "POST", Name: "/ramp-up"})
		h.push(typeSpawningComplete, map[string]any{"user_count": 1})
		time.Sleep(10 * time.Millisecond)
		st.Record(metrics.Sample{Method: "POST", Name: "/after"})
		stats := h.expect(typeStats, 4*time.Second)
		var names []string
		for _, e := range mapOf(t, stats.Data)["stats"].([]any) {
			names = append(names, mapOf(t, e)["name"].(string))
		}
		if !slices.Equal(names, []string{"/after"}) {
			t.Fatalf("rows after the reset %v, want only /after", names)
		}
		if len(spawned) != 1 || spawned[0].ParsedOptions["reset_stats"] != true {
			t.Fatalf("OnSpawn got %v", spawned)
		}
		h.mustStop()
	})
}

func TestLogsOnlyToMastersThatShowLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lines := []string{"line 1"}
		h := startHarness(t, Config{LogLines: func() []string { return lines }}, twoClasses(), emptyStats{})
		h.register()
		h.spawnChat(1)
		for _, g := range h.collect(21 * time.Second) {
			if g.Type == typeLogs {
				t.Fatal("logs sent to a master that never broadcast spawning_complete (< 2.29)")
			}
		}
		h.push(typeSpawningComplete, map[string]any{"user_count": 1})
		g := h.expect(typeLogs, 11*time.Second)
		m := mapOf(t, g.Data)
		if m["worker_id"] != h.w.NodeID() {
			t.Errorf("worker_id %v, want %s", m["worker_id"], h.w.NodeID())
		}
		if got := m["logs"].([]any); len(got) != 1 || got[0] != "line 1" {
			t.Errorf("logs %v", got)
		}
		// Unchanged lines are not sent again.
		for _, g := range h.collect(11 * time.Second) {
			if g.Type == typeLogs {
				t.Fatal("unchanged logs sent again")
			}
		}
		h.mustStop()
	})
}

// The CPU figure is per usable core: 1.5 s of CPU in 1 s on 2 cores is 75 %, on 4 is 37.5 %.
func TestCPUPercentPerUsableCore(t *testing.T) {
	for cores, want := range map[int]float64{1: 150, 2: 75, 4: 37.5} {
		var used time.Duration
		p := procSampler{cores: cores, cpu: func() time.Duration { return used }}
		t0 := time.Unix(1000, 0)
		if v := p.cpuPercent(t0); v != 0 {
			t.Fatalf("first sample %v, want 0", v)
		}
		used = 1500 * time.Millisecond
		if got := p.cpuPercent(t0.Add(time.Second)); got != want {
			t.Errorf("%d cores: %v %%, want %v %%", cores, got, want)
		}
	}
}
