package locusttest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func waitDead(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after %v", pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstInt waits for the process to print a line that is a number (a pid).
func firstInt(t *testing.T, p *Proc) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if line, _, ok := strings.Cut(p.Output(), "\n"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("first line %q is not a pid", line)
			}
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid printed; output %q", p.Output())
	return 0
}

func requireProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
}

func TestStopKillsTheProcessGroup(t *testing.T) {
	requireProc(t)
	// Both the shell and its child ignore SIGTERM: only the second stage,
	// SIGKILL to the group, ends them.
	p := StartT(t, ProcOptions{Argv: []string{"sh", "-c", `trap "" TERM; sleep 300 & echo $!; wait`}, Grace: 300 * time.Millisecond})
	child := firstInt(t, p)
	if !alive(child) {
		t.Fatalf("child %d not running", child)
	}
	start := time.Now()
	p.Stop()
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("Stop took %v: the grace period was skipped", took)
	}
	if !p.Exited() {
		t.Fatal("Stop returned with the process running")
	}
	if code, err := p.Wait(0); err != nil || code != -1 {
		t.Errorf("Wait = %d, %v; want -1 (killed)", code, err)
	}
	waitDead(t, child, 2*time.Second)
}

func TestStopSendsTheStopSignalFirst(t *testing.T) {
	p := StartT(t, ProcOptions{Argv: []string{"sh", "-c", `trap "echo got-int; exit 3" INT; echo up; while :; do sleep 0.05; done`},
		StopSignal: syscall.SIGINT})
	waitOutput(t, p, "up")
	p.Stop()
	if code, _ := p.Wait(0); code != 3 || !strings.Contains(p.Output(), "got-int") {
		t.Errorf("exit code %d, output %q; want 3 and the INT trap's line", code, p.Output())
	}
}

func TestLeftoversDieWithTheLeader(t *testing.T) {
	requireProc(t)
	// The leader exits at once; its child would run on (holding the output
	// pipe) if the group were not killed.
	p := StartT(t, ProcOptions{Argv: []string{"sh", "-c", `sleep 300 & echo $!`}})
	child := firstInt(t, p)
	if _, err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitDead(t, child, 2*time.Second)
}

func TestContextEndStops(t *testing.T) {
	requireProc(t)
	for _, tc := range []struct {
		name, script string
		code         int
	}{
		{"on the stop signal", `trap "exit 4" TERM; echo $$; while :; do sleep 0.05; done`, 4},
		{"with SIGKILL after the grace", `trap "" TERM; sleep 300 & echo $!; wait`, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			p, err := Start(ctx, ProcOptions{Argv: []string{"sh", "-c", tc.script}, Grace: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			pid := firstInt(t, p)
			cancel()
			code, err := p.Wait(5 * time.Second)
			if err != nil {
				t.Fatalf("after the context ended: %v", err)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			waitDead(t, pid, 2*time.Second)
		})
	}
}

func TestWaitReportsARunningProcess(t *testing.T) {
	p := StartT(t, ProcOptions{Name: "sleeper", Argv: []string{"sleep", "300"}})
	if _, err := p.Wait(50 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "sleeper") {
		t.Errorf("Wait = %v, want an error naming the process", err)
	}
	p.Kill()
	if !p.Exited() {
		t.Error("Kill returned with the process running")
	}
	if _, err := Start(context.Background(), ProcOptions{}); err == nil {
		t.Error("empty Argv accepted")
	}
	if _, err := Start(context.Background(), ProcOptions{Argv: []string{"/nonexistent/x"}}); err == nil {
		t.Error("missing command started")
	}
}

// TestNothingLeftWhenTheTestBinaryDies runs this test binary as a child that
// starts a process and exits without cleanups (what a -timeout panic does);
// the kernel must kill the process.
func TestNothingLeftWhenTheTestBinaryDies(t *testing.T) {
	if os.Getenv("LOCUSTTEST_ORPHAN_HELPER") == "1" {
		p, err := Start(context.Background(), ProcOptions{Argv: []string{"sleep", "300"}})
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString(strconv.Itoa(p.PID()) + "\n")
		os.Exit(2) // no cleanup runs
	}
	requireProc(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestNothingLeftWhenTheTestBinaryDies$")
	cmd.Env = append(os.Environ(), "LOCUSTTEST_ORPHAN_HELPER=1")
	out, _ := cmd.Output()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	if !sc.Scan() {
		t.Fatalf("helper printed nothing")
	}
	pid, err := strconv.Atoi(sc.Text())
	if err != nil {
		t.Fatalf("helper printed %q", out)
	}
	defer func() { _ = syscall.Kill(pid, syscall.SIGKILL) }() // only if the test fails
	waitDead(t, pid, 5*time.Second)
}

func waitOutput(t *testing.T, p *Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output %q", s, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTail(t *testing.T) {
	if got := tail("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("tail = %q", got)
	}
	if got := tail("a", 5); got != "a" {
		t.Errorf("tail = %q", got)
	}
}
