package locusttest

// A process a test starts (a master, a worker, a mock): its output kept in
// memory, and a stop that leaves nothing of it behind.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ProcOptions says what to start. Only Argv is required.
type ProcOptions struct {
	Name       string         // in errors and logs; default the base name of Argv[0]
	Argv       []string       // the command and its arguments
	Dir        string         // working directory; default the test's
	Env        []string       // added to the test's environment
	StopSignal syscall.Signal // first stage of Stop; default SIGTERM
	Grace      time.Duration  // Stop's wait between StopSignal and SIGKILL; default 10 s
	LogLines   int            // lines of output StartT logs when the test failed; default 80
}

func (o ProcOptions) withDefaults() ProcOptions {
	if o.Name == "" && len(o.Argv) > 0 {
		o.Name = filepath.Base(o.Argv[0])
	}
	if o.StopSignal == 0 {
		o.StopSignal = syscall.SIGTERM
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.LogLines <= 0 {
		o.LogLines = 80
	}
	return o
}

// Proc is a started process. It runs in a process group of its own, so Stop
// and Kill reach whatever it started (the chroot wrapper's children); when it
// exits, what is left of its group is killed; and it gets SIGKILL from the
// kernel if the test binary dies first (a test timeout panics without running
// cleanups).
type Proc struct {
	opts ProcOptions
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	mu   sync.Mutex // serialises Stop and Kill
}

// Start starts the process. When ctx ends before the process does, the
// process is stopped like Stop does. Every goroutine Start makes ends with the
// process.
func Start(ctx context.Context, o ProcOptions) (*Proc, error) {
	o = o.withDefaults()
	if len(o.Argv) == 0 {
		return nil, errors.New("locusttest: ProcOptions.Argv is empty")
	}
	cmd := exec.CommandContext(ctx, o.Argv[0], o.Argv[1:]...)
	// When ctx ends: StopSignal to the group, SIGKILL after the grace period
	// (and the rest of the group with the leader, below).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, o.StopSignal) }
	cmd.WaitDelay = o.Grace
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.SysProcAttr = sysProcAttr()
	// One pipe for stdout and stderr, passed as a file: cmd.Wait then returns
	// when the process exits, not when the last holder of the pipe does.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	p := &Proc{opts: o, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(p.out, r)
		close(copied)
	}()
	go func() {
		_ = cmd.Wait() // the exit status is read from cmd.ProcessState
		// Whatever is left of the group (a wrapper's children) dies with
		// the leader; its output is read until the pipe closes, or 2 s.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		timer := time.NewTimer(2 * time.Second)
		select {
		case <-copied:
		case <-timer.C:
		}
		timer.Stop()
		r.Close()
		<-copied
		close(p.done)
	}()
	return p, nil
}

// StartT starts the process for t: it fails t when the process cannot start,
// stops it at cleanup (and before t's deadline, with time for the grace
// period), and logs the tail of its output if t failed.
func StartT(t testing.TB, o ProcOptions) *Proc {
	t.Helper()
	ctx, cancel := testContext(t, o.withDefaults().Grace)
	p, err := Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stopAtCleanup(t, p, cancel)
	return p
}

// stopAtCleanup stops p when t ends, then calls cancel, and logs the tail of
// p's output if t failed.
func stopAtCleanup(t testing.TB, p *Proc, cancel context.CancelFunc) {
	t.Cleanup(func() {
		p.Stop()
		cancel()
		if t.Failed() {
			t.Logf("--- last %d lines of %s:\n%s", p.opts.LogLines, p.opts.Name, p.Tail(p.opts.LogLines))
		}
	})
}

// testContext ends a little before t's deadline (go test -timeout), so that
// processes stop on their own terms before the test binary panics.
func testContext(t testing.TB, grace time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			return context.WithDeadline(context.Background(), dl.Add(-grace-2*time.Second))
		}
	}
	return context.WithCancel(context.Background())
}

// Name is the name given in ProcOptions.
func (p *Proc) Name() string { return p.opts.Name }

// PID is the process id, which is also its process group id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output is everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Tail is the last n lines of Output.
func (p *Proc) Tail(n int) string { return tail(p.out.String(), n) }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit and returns its exit code (-1
// when a signal ended it), or an error if it still runs.
func (p *Proc) Wait(d time.Duration) (int, error) {
	if !p.Exited() {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			return 0, fmt.Errorf("%s (pid %d) still runs after %v", p.opts.Name, p.PID(), d)
		}
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Signal sends sig to the process itself, not its group.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// SignalGroup sends sig to the process's group.
func (p *Proc) SignalGroup(sig syscall.Signal) error { return syscall.Kill(-p.PID(), sig) }

// Stop stops the process in two stages: ProcOptions.StopSignal to its group,
// then SIGKILL after the grace period. It returns when the process is reaped
// and the rest of its group killed. Calling it again is harmless.
func (p *Proc) Stop() { p.StopWith(p.opts.StopSignal, p.opts.Grace) }

// StopWith is Stop with another first signal and grace period.
func (p *Proc) StopWith(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.Exited() {
		_ = p.SignalGroup(sig)
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-timer.C:
		}
		timer.Stop()
	}
	p.killGroup()
}

// Kill kills the process's group at once (a crash, not a shutdown) and waits
// for the process to be reaped.
func (p *Proc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killGroup()
}

// killGroup sends SIGKILL to the group and waits until the process is
// reaped (after which the rest of the group is killed too, see Start).
func (p *Proc) killGroup() {
	if !p.Exited() {
		_ = p.SignalGroup(syscall.SIGKILL)
	}
	<-p.done
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
