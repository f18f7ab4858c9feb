package runner

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

type weighted struct {
	name string
	w    int
}

func (c weighted) Name() string                   { return c.name }
func (c weighted) Weight() int                    { return c.w }
func (c weighted) NewUser(int, Env) (User, error) { return nil, nil }
func classesOf(ws ...weighted) (out []UserClass) {
	for _, w := range ws {
		out = append(out, w)
	}
	return out
}

func TestSplitByWeight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		classes []UserClass
		users   int
		want    map[string]int
	}{
		{"3:1 of 4", classesOf(weighted{"ChatUser", 3}, weighted{"RetrieveUser", 1}), 4, map[string]int{"ChatUser": 3, "RetrieveUser": 1}},
		{"3:1 of 1", classesOf(weighted{"ChatUser", 3}, weighted{"RetrieveUser", 1}), 1, map[string]int{"ChatUser": 1, "RetrieveUser": 0}},
		{"3:1 of 2 (2.46.7 gave {1,1} for the first step of -u4 -r2)", classesOf(weighted{"Alpha", 3}, weighted{"Beta", 1}), 2, map[string]int{"Alpha": 1, "Beta": 1}},
		{"zero users", classesOf(weighted{"A", 1}), 0, map[string]int{"A": 0}},
		{"zero weight counts as 1", classesOf(weighted{"A", 0}, weighted{"B", -3}), 4, map[string]int{"A": 2, "B": 2}},
		{"order independent", classesOf(weighted{"RetrieveUser", 1}, weighted{"ChatUser", 3}), 8, map[string]int{"ChatUser": 6, "RetrieveUser": 2}},
		{"no classes", nil, 5, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SplitByWeight(tt.classes, tt.users)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("got %v want %v", got, tt.want)
				}
			}
		})
	}
}

// Locust's _kl_generator (2.46.7) run in Python for weights 5 and 1 yields
// AABAAAAABAAA (its docstring says AAABAAAAABAA, which the code doesn't do).
func TestSplitByWeightSequence(t *testing.T) {
	t.Parallel()
	cls := classesOf(weighted{"A", 5}, weighted{"B", 1})
	var seq strings.Builder
	prev := SplitByWeight(cls, 0)
	for n := 1; n <= 12; n++ {
		cur := SplitByWeight(cls, n)
		for _, k := range []string{"A", "B"} {
			if cur[k] < prev[k] {
				t.Fatalf("not a prefix: %v after %v", cur, prev)
			}
			if cur[k] > prev[k] {
				seq.WriteString(k)
			}
		}
		prev = cur
	}
	if seq.String() != "AABAAAAABAAA" {
		t.Errorf("sequence %s, want AABAAAAABAAA", seq.String())
	}
}

func TestSchedulerApplyAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		a := &testClass{name: "A", weight: 1, wait: 100 * time.Millisecond, task: func(ctx context.Context, id int, env Env) error {
			runs.Add(1)
			return nil
		}}
		b := &testClass{name: "B", weight: 1, wait: time.Hour}
		s := NewScheduler([]UserClass{a, b}, nil)
		if c := s.Counts(); c["A"] != 0 || c["B"] != 0 || len(c) != 2 {
			t.Fatalf("initial counts %v", c)
		}
		s.Apply(map[string]int{"A": 3, "B": 2, "Nope": 5}, Env{Host: "h"})
		if c := s.Counts(); c["A"] != 3 || c["B"] != 2 {
			t.Fatalf("counts %v", c)
		}
		time.Sleep(time.Second)
		if runs.Load() < 20 {
			t.Errorf("only %d tasks in 1s for 3 users at 100ms", runs.Load())
		}
		s.Apply(map[string]int{"B": 0}, Env{})
		if c := s.Counts(); c["A"] != 3 || c["B"] != 0 {
			t.Fatalf("counts %v (absent classes stay, zeros stop)", c)
		}
		// B users were waiting an hour: they stop at once.
		synctest.Wait()
		start := time.Now()
		s.StopAll(context.Background(), 10*time.Second)
		if d := time.Since(start); d > time.Second {
			t.Errorf("StopAll took %v for idle users", d)
		}
		if c := s.Counts(); c["A"] != 0 {
			t.Fatalf("counts after StopAll %v", c)
		}
		n := runs.Load()
		time.Sleep(time.Second)
		if runs.Load() != n {
			t.Error("tasks ran after StopAll")
		}
	})
}

func TestSchedulerGrace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		grace      time.Duration
		task       time.Duration
		wantCancel bool
	}{
		{"finishes within grace", 5 * time.Second, time.Second, false},
		{"cancelled after grace", time.Second, 5 * time.Second, true},
		{"no grace cancels at once", 0, time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var cancelled, finished atomic.Int64
				started := make(chan struct{}, 1)
				a := &testClass{name: "A", weight: 1, task: func(ctx context.Context, id int, env Env) error {
					select {
					case started <- struct{}{}:
					default:
					}
					select {
					case <-time.After(tc.task):
						finished.Add(1)
						return nil
					case <-ctx.Done():
						cancelled.Add(1)
						return ctx.Err()
					}
				}}
				var excs atomic.Int64
				s := NewScheduler([]UserClass{a}, func(string, string) { excs.Add(1) })
				s.Apply(map[string]int{"A": 1}, Env{})
				<-started
				start := time.Now()
				s.StopAll(context.Background(), tc.grace)
				took := time.Since(start)
				if tc.wantCancel {
					if cancelled.Load() != 1 || took != tc.grace {
						t.Errorf("cancelled %d after %v, want 1 after %v", cancelled.Load(), took, tc.grace)
					}
				} else if finished.Load() != 1 || took != tc.task {
					t.Errorf("finished %d after %v", finished.Load(), took)
				}
				if excs.Load() != 0 {
					t.Error("a cancelled task's ctx error was reported as an exception")
				}
			})
		})
	}
}

func TestSchedulerRampDownStopTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		done := map[int]string{}
		a := &testClass{name: "A", weight: 1, task: func(ctx context.Context, id int, env Env) error {
			select {
			case <-time.After(3 * time.Second):
				mu.Lock()
				done[id] = "finished"
				mu.Unlock()
			case <-ctx.Done():
				mu.Lock()
				done[id] = "cancelled"
				mu.Unlock()
			}
			return nil
		}}
		s := NewScheduler([]UserClass{a}, nil)
		s.SetStopTimeout(5 * time.Second)
		s.Apply(map[string]int{"A": 2}, Env{})
		time.Sleep(time.Second)
		s.Apply(map[string]int{"A": 1}, Env{}) // stops user 2, which may finish its task
		time.Sleep(2500 * time.Millisecond)
		mu.Lock()
		if done[2] != "finished" {
			t.Errorf("ramped-down user: %q, want finished within stop timeout", done[2])
		}
		mu.Unlock()
		s.SetStopTimeout(0)
		s.Apply(map[string]int{"A": 0}, Env{}) // no stop timeout: cancel at once
		synctest.Wait()
		mu.Lock()
		if done[1] != "cancelled" && done[1] != "finished" {
			t.Errorf("user 1: %q", done[1])
		}
		mu.Unlock()
		s.StopAll(context.Background(), 0)
	})
}

func TestSchedulerNewUserError(t *testing.T) {
	t.Parallel()
	var msgs []string
	var mu sync.Mutex
	a := &testClass{name: "A", weight: 1, newErr: context.DeadlineExceeded}
	s := NewScheduler([]UserClass{a}, func(msg, tb string) {
		mu.Lock()
		msgs = append(msgs, msg)
		mu.Unlock()
	})
	s.Apply(map[string]int{"A": 2}, Env{})
	if c := s.Counts(); c["A"] != 0 {
		t.Errorf("counts %v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(msgs) != 2 || !strings.Contains(msgs[0], "A.NewUser") {
		t.Errorf("exceptions %v", msgs)
	}
	s.StopAll(context.Background(), 0)
}

func TestSchedulerRamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cls := []UserClass{
			&testClass{name: "ChatUser", weight: 3, wait: time.Second},
			&testClass{name: "RetrieveUser", weight: 1, wait: time.Second},
		}
		s := NewScheduler(cls, nil)
		start := time.Now()
		if err := s.Ramp(context.Background(), 8, 2, Env{}); err != nil {
			t.Fatal(err)
		}
		// 4 steps of 2 users, 1 s apart: 3 s.
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("ramp took %v, want 3s", d)
		}
		if c := s.Counts(); c["ChatUser"] != 6 || c["RetrieveUser"] != 2 {
			t.Errorf("counts %v", c)
		}
		if err := s.Ramp(context.Background(), 4, 0, Env{}); err != nil {
			t.Fatal(err)
		}
		if c := s.Counts(); c["ChatUser"] != 3 || c["RetrieveUser"] != 1 {
			t.Errorf("counts after ramp down %v", c)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(1500 * time.Millisecond); cancel() }()
		if err := s.Ramp(ctx, 100, 1, Env{}); err == nil {
			t.Error("Ramp ignored ctx")
		}
		s.StopAll(context.Background(), 0)
	})
}

func TestSchedulerDoesNotMutateClasses(t *testing.T) {
	t.Parallel()
	cls := classesOf(weighted{"B", 0}, weighted{"A", 2})
	_ = NewScheduler(cls, nil)
	_ = SplitByWeight(cls, 10)
	if cls[0].Name() != "B" || cls[0].Weight() != 0 {
		t.Error("caller's classes were reordered or mutated")
	}
}
