package sse

import (
	"testing"
	"time"
)

// Timeouts in failure names read the same from Go and Python workers: whole seconds as
// "60s", finer durations as Go writes them.
func TestFailureDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		60 * time.Second:        "60s",
		5 * time.Minute:         "300s",
		30 * time.Second:        "30s",
		1500 * time.Millisecond: "1.5s",
		250 * time.Millisecond:  "250ms",
	} {
		if got := failureDuration(d); got != want {
			t.Errorf("failureDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
