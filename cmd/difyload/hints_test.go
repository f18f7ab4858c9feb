package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/difyload/difyload/sse"
)

type countObserver struct{ n int }

func (c *countObserver) ObserveStream(string, *sse.Result, error) { c.n++ }

func TestStreamHints(t *testing.T) {
	var buf bytes.Buffer
	next := &countObserver{}
	h := newStreamHints(next, &buf)
	silent := &sse.StreamError{Phase: sse.PhaseFirstTokenTimeout, Reason: "timeout: only a ping in 60s (queued, or missing required inputs)"}
	limit := &sse.StreamError{Phase: sse.PhaseStatus, Status: 400, Code: "too_many_requests", Reason: "HTTP 400 too_many_requests"}
	other := &sse.StreamError{Phase: sse.PhaseTruncated, Reason: "stream ended before message_end"}
	for range 3 {
		h.ObserveStream("SimpleChatFlow", &sse.Result{}, silent)
	}
	h.ObserveStream("SimpleChatFlow", &sse.Result{}, limit)
	h.ObserveStream("SimpleChatFlow", &sse.Result{}, other)
	h.ObserveStream("SimpleChatFlow", &sse.Result{}, nil)
	if next.n != 6 {
		t.Errorf("next saw %d streams, want 6", next.n)
	}
	out := buf.String()
	if n := strings.Count(out, "only a ping"); n < 1 || strings.Count(out, "level=WARN") != 2 {
		t.Errorf("want one warning per failure name (rate-limited), got:\n%s", out)
	}
	if !strings.Contains(out, "required inputs") || !strings.Contains(out, "concurrency limit") || strings.Contains(out, "message_end") {
		t.Errorf("log:\n%s", out)
	}
}
