package runner

import (
	"context"
	"testing"
	"time"
)

// TestSchedulerSetClasses: a new workload replaces the classes; users of a class that is
// gone stop, users of a class that stays keep running, and Apply knows the new names.
func TestSchedulerSetClasses(t *testing.T) {
	t.Parallel()
	a := &testClass{name: "A", weight: 1, wait: time.Millisecond}
	b := &testClass{name: "B", weight: 1, wait: time.Millisecond}
	c := &testClass{name: "C", weight: 1, wait: time.Millisecond}
	s := NewScheduler([]UserClass{a, b}, nil)
	defer s.StopAll(context.Background(), 0)
	s.Apply(map[string]int{"A": 2, "B": 1, "C": 3}, Env{})
	if got := s.Counts(); got["A"] != 2 || got["B"] != 1 || got["C"] != 0 {
		t.Fatalf("before: %v", got)
	}
	s.SetClasses([]UserClass{a, c})
	if s.Known("B") || !s.Known("C") {
		t.Fatal("Known does not follow SetClasses")
	}
	s.Apply(map[string]int{"A": 2, "C": 3}, Env{})
	got := s.Counts()
	if got["A"] != 2 || got["C"] != 3 || len(got) != 2 {
		t.Fatalf("after: %v, want A 2 and C 3 only", got)
	}
	if a.created != 2 {
		t.Errorf("A's users were recreated: %d created", a.created)
	}
	s.SetClasses(nil)
	s.Apply(map[string]int{"A": 2}, Env{})
	if got := s.Counts(); len(got) != 0 {
		t.Errorf("no classes: %v", got)
	}
}

type fixedClass struct {
	weighted
	fixed int
}

func (c fixedClass) FixedCount() int { return c.fixed }

func TestSplitUsersFixedCount(t *testing.T) {
	t.Parallel()
	cs := []UserClass{weighted{"A", 3}, fixedClass{weighted{"B", 1}, 2}, weighted{"C", 1}}
	for users, want := range map[int]map[string]int{
		1: {"A": 0, "B": 1, "C": 0},
		2: {"A": 0, "B": 2, "C": 0},
		6: {"A": 3, "B": 2, "C": 1},
		0: {"A": 0, "B": 0, "C": 0},
	} {
		got := SplitUsers(cs, users)
		if len(got) != len(want) {
			t.Errorf("%d users: %v, want %v", users, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%d users: %v, want %v", users, got, want)
			}
		}
	}
}
