package worker

import (
	"testing"
	"time"
)

func TestExceptionLimiter(t *testing.T) {
	t.Parallel()
	l := newExceptionLimiter(5)
	var now int
	for i := range 100 {
		tb := "tb-a"
		if i%10 == 0 {
			tb = "tb-b"
		}
		if l.record("m", tb) {
			now++
		}
	}
	if now != 2 {
		t.Errorf("%d sent immediately, want one per traceback", now)
	}
	out, dropped := l.flush()
	if len(out)+now != 5 || dropped != 98-len(out) {
		t.Errorf("flush sent %d (+%d now), dropped %d; budget 5 of 100", len(out), now, dropped)
	}
	// Next interval: budget resets.
	if !l.record("m", "tb-a") {
		t.Error("budget not reset")
	}
	// Small counts are exact.
	l2 := newExceptionLimiter(100)
	sent := 0
	for range 7 {
		if l2.record("m", "x") {
			sent++
		}
	}
	out, dropped = l2.flush()
	if sent+len(out) != 7 || dropped != 0 {
		t.Errorf("sent %d+%d dropped %d, want 7 total", sent, len(out), dropped)
	}
}

func TestProcSampler(t *testing.T) {
	t.Parallel()
	var p procSampler
	now := time.Now()
	if v := p.cpuPercent(now); v != 0 {
		t.Errorf("first sample %v", v)
	}
	x := 0
	for i := range 5_000_000 {
		x += i
	}
	_ = x
	if v := p.cpuPercent(now.Add(time.Second)); v < 0 {
		t.Errorf("cpu %v", v)
	}
	if rss := rssBytes(); rss <= 0 {
		t.Errorf("rss %d", rss)
	}
}
