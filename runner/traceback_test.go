package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"
)

type panicUser struct{ v any }

func (u panicUser) RunTask(context.Context) error { panic(u.v) }
func (u panicUser) WaitTime() time.Duration       { return 0 }

// captureTraceback runs RunTask through the scheduler's recover path.
func captureTraceback(t *testing.T, u User) (msg, tb string) {
	t.Helper()
	var mu sync.Mutex
	s := &Scheduler{onException: func(m, tr string) {
		mu.Lock()
		msg, tb = m, tr
		mu.Unlock()
	}}
	s.runTaskSafely(context.Background(), "X", u)
	mu.Lock()
	defer mu.Unlock()
	return msg, tb
}

func TestPanicTracebackStable(t *testing.T) {
	t.Parallel()
	msg1, tb1 := captureTraceback(t, panicUser{v: "boom"})
	msg2, tb2 := captureTraceback(t, panicUser{v: "boom"})
	if tb1 != tb2 || msg1 != "boom" || msg2 != "boom" {
		t.Fatalf("identical panics differ:\n%s\n%s", tb1, tb2)
	}
	for _, bad := range []string{"goroutine", "+0x", "0xc0", "runtime/debug", "runtime.gopanic", "runTaskSafely", "Scheduler"} {
		if strings.Contains(tb1, bad) {
			t.Errorf("traceback contains %q:\n%s", bad, tb1)
		}
	}
	if !strings.Contains(tb1, `File "`) || !strings.Contains(tb1, "traceback_test.go") || !strings.Contains(tb1, "panicUser.RunTask") {
		t.Errorf("traceback lacks the panicking frame:\n%s", tb1)
	}
	// A different panic site gives a different traceback.
	_, tb3 := captureTraceback(t, nilMapUser{})
	if tb3 == tb1 {
		t.Error("different panic sites share a traceback")
	}
	msg4, _ := captureTraceback(t, panicUser{v: fmt.Errorf("wrapped: %w", fs.ErrNotExist)})
	if msg4 != "wrapped: file does not exist" {
		t.Errorf("error panic msg %q", msg4)
	}
}

type nilMapUser struct{}

func (nilMapUser) RunTask(context.Context) error {
	var m map[string]int
	m["x"] = 1 //nolint:staticcheck // SA5000 on purpose: the runtime panic is what the test catches
	return nil
}
func (nilMapUser) WaitTime() time.Duration { return 0 }

func TestParseStack(t *testing.T) {
	t.Parallel()
	stack := `goroutine 42 [running]:
runtime/debug.Stack()
	/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
github.com/difyload/difyload/runner.(*Scheduler).runTaskSafely.func1()
	/src/difyload/runner/scheduler.go:215 +0x45
panic({0x6a2b40?, 0xc000012345?})
	/usr/local/go/src/runtime/panic.go:785 +0x132
github.com/difyload/difyload/tasks.(*chat).step(0xc0000a4000, {0x7, 0x8})
	/src/difyload/tasks/chat.go:42 +0x1d
github.com/difyload/difyload/tasks.(*chat).RunTask(...)
	/src/difyload/tasks/chat.go:30
github.com/difyload/difyload/runner.(*Scheduler).runTaskSafely(0xc000100000, {0x7bca58, 0xc00007c280}, {0x7a556f, 0x8}, {0x7bbc28, 0xc00010b680})
	/src/difyload/runner/scheduler.go:222 +0xde
created by github.com/difyload/difyload/runner.(*Scheduler).startLocked in goroutine 7
	/src/difyload/runner/scheduler.go:165 +0x650
`
	want := `  File "/src/difyload/tasks/chat.go", line 30, in github.com/difyload/difyload/tasks.(*chat).RunTask
  File "/src/difyload/tasks/chat.go", line 42, in github.com/difyload/difyload/tasks.(*chat).step
`
	if got := panicTraceback(stack); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestErrorTraceback(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("ctx: %w", errors.Join(fs.ErrClosed, fs.ErrExist))
	tb := errorTraceback("ChatUser", err)
	if !strings.HasPrefix(tb, "  in ChatUser.RunTask: returned an error\n") || !strings.Contains(tb, "*fmt.wrapError") || !strings.Contains(tb, "*errors.joinError") {
		t.Errorf("traceback %q", tb)
	}
	if errorTraceback("ChatUser", errors.New("a")) != errorTraceback("ChatUser", errors.New("b")) {
		t.Error("error text leaked into the traceback (it must group)")
	}
}

func TestMaskHexAddrs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"<obj at 0xc000123456>": "<obj at 0x...>",
		"code 0x1f":             "code 0x1f",
		"no hex":                "no hex",
		"0xdeadbeef 0x12":       "0x... 0x12",
	} {
		if got := maskHexAddrs(in); got != want {
			t.Errorf("maskHexAddrs(%q) = %q, want %q", in, got, want)
		}
	}
}
