package sse

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The deadlines of a request.
const (
	dlWhole = iota // StreamTimeout
	dlFirst        // FirstTokenTimeout
	dlIdle         // IdleTimeout, moved on by every read with data
	dlDrain        // the bounded drain after the end
	numDeadlines
)

// deadlines puts a request's timeouts on one timer. A deadline is an offset from t0 (0:
// off); the reader sets and clears them, and moves the idle one on with an atomic store per
// read instead of a timer Reset. The timer is set for the earliest deadline; when it fires
// it cancels the request with the cause of the earliest deadline that has passed, or, if
// the one it was set for was moved on or cleared meanwhile, sets itself for the next one.
type deadlines struct {
	t0     time.Time
	cancel context.CancelCauseFunc
	cause  [numDeadlines]error
	at     [numDeadlines]atomic.Int64

	mu    sync.Mutex
	timer *time.Timer
	due   int64 // offset the timer is set for; 0: not set
	done  bool
}

func (d *deadlines) now() int64 { return int64(time.Since(d.t0)) }

// after is the offset after from now, saturating: a timeout written as "forever" (up to
// math.MaxInt64) must not wrap to the past.
func (d *deadlines) after(after time.Duration) int64 {
	now := d.now()
	if int64(after) > math.MaxInt64-now {
		return math.MaxInt64
	}
	return now + int64(after)
}

// set starts deadline i at after from now, moving the timer earlier if needed.
func (d *deadlines) set(i int, after time.Duration) {
	at := max(d.after(after), 1)
	d.at[i].Store(at)
	d.mu.Lock()
	if !d.done && (d.due == 0 || at < d.due) {
		d.due = at
		wait := time.Duration(at - d.now())
		if d.timer == nil {
			d.timer = time.AfterFunc(wait, d.fire)
		} else {
			d.timer.Reset(wait)
		}
	}
	d.mu.Unlock()
}

// push moves deadline i, already set, later: to after from now. The timer, set for an
// earlier time, finds it moved when it fires.
func (d *deadlines) push(i int, after time.Duration) { d.at[i].Store(d.after(after)) }

func (d *deadlines) clear(i int) { d.at[i].Store(0) }

func (d *deadlines) fire() {
	var cause error
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	now := d.now()
	d.due = 0
	var passed, next int64
	for i := range d.at {
		at := d.at[i].Load()
		switch {
		case at == 0:
		case at <= now:
			if cause == nil || at < passed {
				cause, passed = d.cause[i], at
			}
		case next == 0 || at < next:
			next = at
		}
	}
	if cause == nil && next > 0 {
		d.due = next
		d.timer.Reset(time.Duration(next - now))
	}
	d.mu.Unlock()
	if cause != nil {
		d.cancel(cause)
	}
}

// stop ends every deadline.
func (d *deadlines) stop() {
	d.mu.Lock()
	d.done = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
}
