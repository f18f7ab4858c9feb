package main

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/tasks"
)

// streamHints passes every stream to next and logs a warning, at most once a minute per
// failure name, for the failures whose likely cause the failure name alone cannot give:
// a relayed Dify 1.13 run that sent a ping and nothing else (a setup error Dify does not
// report, or its job queue) and the app concurrency limit.
type streamHints struct {
	next tasks.StreamObserver
	log  *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time
	skip map[string]int
}

const hintEvery = time.Minute

func newStreamHints(next tasks.StreamObserver, w io.Writer) *streamHints {
	return &streamHints{next: next, log: slog.New(slog.NewTextHandler(w, nil)), last: map[string]time.Time{}, skip: map[string]int{}}
}

// ObserveStream implements tasks.StreamObserver.
func (h *streamHints) ObserveStream(flow string, res *sse.Result, err error) {
	if h.next != nil {
		h.next.ObserveStream(flow, res, err)
	}
	var se *sse.StreamError
	if err == nil || !errors.As(err, &se) {
		return
	}
	name := se.Failure()
	var hint string
	switch {
	case strings.HasPrefix(name, "timeout: only a ping"):
		hint = "Dify answered 200 and one ping, then nothing: check the app's required inputs (GET /v1/parameters, user_input_form), the query and the conversation_id — Dify 1.13 reports no setup error of a chatflow or workflow run — or Dify's job queue is longer than --first-token-timeout (past capacity)"
	case strings.HasSuffix(name, " too_many_requests"):
		hint = "Dify's app concurrency limit (APP_MAX_ACTIVE_REQUESTS or the app's max_active_requests): more concurrent streams of this app than allowed"
	default:
		return
	}
	now := time.Now()
	h.mu.Lock()
	if t, ok := h.last[name]; ok && now.Sub(t) < hintEvery {
		h.skip[name]++
		h.mu.Unlock()
		return
	}
	h.last[name] = now
	skipped := h.skip[name]
	h.skip[name] = 0
	h.mu.Unlock()
	h.log.Warn("stream failed: "+name, "flow", flow, "hint", hint, "error", se.Error(), "similar_since_last", skipped)
}
