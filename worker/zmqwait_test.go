//go:build goczmq

package worker

import (
	"testing"
	"time"

	"github.com/zeromq/goczmq"
)

// TestZMQFDSemantics checks what the owner loop relies on, on a real libzmq pair: once
// ZMQ_EVENTS was read with nothing waiting, ZMQ_FD is not readable until a message arrives;
// then it is readable, and ZMQ_EVENTS reports it.
func TestZMQFDSemantics(t *testing.T) {
	a, err := goczmq.NewPair("@inproc://difyload-fd-test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	b, err := goczmq.NewPair(">inproc://difyload-fd-test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy()
	fd := goczmq.Fd(a)

	// Settle the connection's own commands, then nothing is pending.
	for i := 0; i < 10 && fdReadable(fd); i++ {
		_ = goczmq.Events(a)
	}
	if goczmq.Events(a)&goczmq.Pollin != 0 {
		t.Fatal("POLLIN before anything was sent")
	}
	if fdReadable(fd) {
		t.Fatal("ZMQ_FD readable after ZMQ_EVENTS was read with nothing pending")
	}

	if err := b.SendFrame([]byte("hello"), goczmq.FlagNone); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !fdReadable(fd) {
		if time.Now().After(deadline) {
			t.Fatal("ZMQ_FD never became readable after a message was sent")
		}
		time.Sleep(time.Millisecond)
	}
	if goczmq.Events(a)&goczmq.Pollin == 0 {
		t.Fatal("ZMQ_FD readable but ZMQ_EVENTS has no POLLIN")
	}
	msg, err := a.RecvMessage()
	if err != nil || len(msg) != 1 || string(msg[0]) != "hello" {
		t.Fatalf("RecvMessage = %q, %v", msg, err)
	}
	if goczmq.Events(a)&goczmq.Pollin != 0 || fdReadable(fd) {
		t.Fatal("still readable after the only message was received and ZMQ_EVENTS read")
	}
}

// TestFDWaiterTokens: a waiter on a real ZMQ_FD sends a token when a message arrives, and
// stops when told to.
func TestFDWaiterTokens(t *testing.T) {
	a, err := goczmq.NewPair("@inproc://difyload-waiter-test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Destroy()
	b, err := goczmq.NewPair(">inproc://difyload-waiter-test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Destroy()
	w, err := newFDWaiter(goczmq.Fd(a))
	if err != nil {
		t.Fatal(err)
	}
	defer w.stop()
	// The first callback always sends one token (the initial check).
	select {
	case <-w.ready:
	case <-time.After(5 * time.Second):
		t.Fatal("no initial token")
	}
	if goczmq.Events(a)&goczmq.Pollin != 0 {
		t.Fatal("message before send")
	}
	if err := b.SendFrame([]byte("x"), goczmq.FlagNone); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-w.ready:
		case <-deadline:
			t.Fatal("no token after a message arrived")
		}
		if goczmq.Events(a)&goczmq.Pollin != 0 {
			break
		}
	}
	if _, err := a.RecvMessage(); err != nil {
		t.Fatal(err)
	}
}

// TestNextBusyCheck: the busy timer backs off while its ticks find nothing, up to
// zmqBusyMax, and is back at zmqBusyCheck after a tick that found work.
func TestNextBusyCheck(t *testing.T) {
	cases := []struct {
		every time.Duration
		work  bool
		want  time.Duration
	}{
		{zmqBusyCheck, false, 2 * zmqBusyCheck},
		{16 * time.Millisecond, false, 32 * time.Millisecond},
		{48 * time.Millisecond, false, zmqBusyMax},
		{zmqBusyMax, false, zmqBusyMax},
		{zmqBusyMax, true, zmqBusyCheck},
		{zmqBusyCheck, true, zmqBusyCheck},
	}
	for _, c := range cases {
		if got := nextBusyCheck(c.every, c.work); got != c.want {
			t.Errorf("nextBusyCheck(%v, work=%v) = %v, want %v", c.every, c.work, got, c.want)
		}
	}
	every, ticks := zmqBusyCheck, 0
	for ; every < zmqBusyMax; ticks++ {
		every = nextBusyCheck(every, false)
	}
	if ticks != 5 {
		t.Errorf("%d idle ticks from %v to %v, want 5", ticks, zmqBusyCheck, zmqBusyMax)
	}
}
