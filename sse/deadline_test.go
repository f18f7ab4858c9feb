package sse

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestDeadlines: one timer serves every deadline. A pushed deadline fires after its last
// push, a cleared one never, the earliest passed one names the cause, stop ends them all.
func TestDeadlines(t *testing.T) {
	t.Parallel()
	errWhole, errFirst, errIdle := errors.New("whole"), errors.New("first"), errors.New("idle")
	tests := []struct {
		name    string
		run     func(d *deadlines)
		want    error // nil: nothing fires within 400 ms
		minWait time.Duration
	}{
		{name: "idle pushed for 150ms fires 50ms after the last push", run: func(d *deadlines) {
			d.set(dlWhole, time.Second)
			d.set(dlIdle, 50*time.Millisecond)
			for end := time.Now().Add(150 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				d.push(dlIdle, 50*time.Millisecond)
			}
		}, want: errIdle, minWait: 190 * time.Millisecond},
		{name: "cleared first token: the whole deadline fires", run: func(d *deadlines) {
			d.set(dlWhole, 200*time.Millisecond)
			d.set(dlFirst, 50*time.Millisecond)
			d.clear(dlFirst)
		}, want: errWhole, minWait: 200 * time.Millisecond},
		{name: "an earlier deadline set later moves the timer", run: func(d *deadlines) {
			d.set(dlWhole, time.Second)
			d.set(dlFirst, 60*time.Millisecond)
		}, want: errFirst, minWait: 60 * time.Millisecond},
		{name: "a timeout of math.MaxInt64 (forever) never fires", run: func(d *deadlines) {
			d.set(dlWhole, math.MaxInt64)
			d.set(dlIdle, math.MaxInt64)
			d.push(dlIdle, math.MaxInt64)
		}},
		{name: "stop", run: func(d *deadlines) {
			d.set(dlWhole, 50*time.Millisecond)
			d.stop()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			d := &deadlines{t0: time.Now(), cancel: cancel}
			d.cause = [numDeadlines]error{dlWhole: errWhole, dlFirst: errFirst, dlIdle: errIdle, dlDrain: errDrain}
			start := time.Now()
			tt.run(d)
			select {
			case <-ctx.Done():
				if tt.want == nil || !errors.Is(context.Cause(ctx), tt.want) {
					t.Fatalf("cause %v after %v, want %v", context.Cause(ctx), time.Since(start), tt.want)
				}
				if el := time.Since(start); el < tt.minWait {
					t.Errorf("%v fired after %v, want >= %v", tt.want, el, tt.minWait)
				}
			case <-time.After(400 * time.Millisecond):
				if tt.want != nil {
					t.Fatalf("nothing fired, want %v", tt.want)
				}
			}
			d.stop()
		})
	}
}
