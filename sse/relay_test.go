package sse

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Dify 1.13 relays chatflow and workflow runs from a job worker: one ping at once, silence
// while the run is queued, then the run. The silence is not idleness.
func TestRelayQueuedRunIsNotIdle(t *testing.T) {
	t.Parallel()
	const queued = 300 * time.Millisecond
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = io.WriteString(w, "event: ping\n\n")
		flush(w)
		wait(r, queued)
		body := `data: {"event":"workflow_started","workflow_run_id":"r","task_id":"t","data":{}}` + "\n\n" +
			`data: {"event":"text_chunk","workflow_run_id":"r","task_id":"t","data":{"text":"Hi"}}` + "\n\n" +
			`data: {"event":"workflow_finished","workflow_run_id":"r","task_id":"t","data":{"status":"succeeded"}}` + "\n\n"
		_, _ = io.WriteString(w, body)
	})
	c := newTestClient(t, Config{IdleTimeout: 100 * time.Millisecond, FirstTokenTimeout: 5 * time.Second}, TransportConfig{})
	req := chatRequest(srv.URL)
	req.Mode = ModeWorkflow
	res, err := c.Stream(testContext(t), req)
	if err != nil {
		t.Fatalf("a queued run failed: %v", err)
	}
	checkOrder(t, res)
	if res.Pings != 1 || res.Chunks != 1 || res.WorkflowRunID != "r" {
		t.Errorf("result %+v", res)
	}
	if ttfe := res.FirstDataEvent.Sub(res.Start); ttfe < queued {
		t.Errorf("TTFE %v, want ≥ %v (the queue)", ttfe, queued)
	}
	if res.FirstEvent.Sub(res.Start) >= queued {
		t.Errorf("FirstEvent %v should be the ping, before the queue", res.FirstEvent.Sub(res.Start))
	}
	if res.FirstToken.Before(res.FirstDataEvent) {
		t.Errorf("first token before the first data event")
	}
}

// After the first data event the idle timeout applies as before, pings included.
func TestRelayIdleAfterFirstData(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = io.WriteString(w, "event: ping\n\n")
		flush(w)
		_, _ = io.WriteString(w, `data: {"event":"workflow_started","workflow_run_id":"r","task_id":"t","data":{}}`+"\n\n")
		flush(w)
		wait(r, 10*time.Second)
	})
	c := newTestClient(t, Config{IdleTimeout: 100 * time.Millisecond, FirstTokenTimeout: 5 * time.Second}, TransportConfig{})
	_, err := c.Stream(testContext(t), chatRequest(srv.URL))
	requireStreamError(t, err, PhaseIdleTimeout, "timeout: no event for 100ms")
}

// 200, a ping and silence: a relayed run that failed its setup inside the job (or waited
// longer than the first-token timeout). The failure name says so in relayed modes.
func TestRelayPingThenSilence(t *testing.T) {
	t.Parallel()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		_, _ = io.WriteString(w, "event: ping\n\n")
		flush(w)
		wait(r, 10*time.Second)
	})
	for _, tc := range []struct {
		mode    Mode
		failure string
	}{
		{"", "timeout: only a ping in 200ms (queued, or missing required inputs)"},
		{ModeChatflow, "timeout: only a ping in 200ms (queued, or missing required inputs)"},
		{ModeWorkflow, "timeout: only a ping in 200ms (queued, or missing required inputs)"},
		{ModeChat, "timeout: no first token after 200ms"},
		{ModeCompletion, "timeout: no first token after 200ms"},
	} {
		c := newTestClient(t, Config{IdleTimeout: 50 * time.Millisecond, FirstTokenTimeout: 200 * time.Millisecond}, TransportConfig{})
		req := chatRequest(srv.URL)
		req.Mode = tc.mode
		res, err := c.Stream(testContext(t), req)
		se := requireStreamError(t, err, PhaseFirstTokenTimeout, tc.failure)
		if res.Pings != 1 || !res.FirstDataEvent.IsZero() {
			t.Errorf("mode %q: result %+v", tc.mode, res)
		}
		if tc.mode != ModeChat && tc.mode != ModeCompletion && !containsAll(se.Error(), "required input", "job queue") {
			t.Errorf("mode %q: error text lacks the hint: %v", tc.mode, se)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// The app concurrency limit is named after the limit whether it comes as 400 or 429.
func TestConcurrencyLimitNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status  int
		body    string
		failure string
	}{
		{400, `{"code":"invalid_param","message":"Too many requests. Please try again later. The current maximum concurrent requests allowed for 5b3d is 10.","status":400}` + "\n", "HTTP 400 too_many_requests"},
		{429, `{"code":"too_many_requests","message":"Too many requests. Please try again later. The current maximum concurrent requests allowed for 5b3d is 10.","status":429}` + "\n", "HTTP 429 too_many_requests"},
		{400, `{"code":"invalid_param","message":"dept is required in input form","status":400}` + "\n", "HTTP 400 invalid_param"},
	} {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		})
		c := newTestClient(t, Config{}, TransportConfig{})
		_, err := c.Stream(testContext(t), chatRequest(srv.URL))
		requireStreamError(t, err, PhaseStatus, tc.failure)
	}
}

func TestOnlyPings(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"event: ping\n\n": true, "event: ping\n\nevent: ping\n\n": true, "": false,
		"event: ping\n": false, "data: {}\n\n": false, "event: ping\n\ndata: {\"event\":\"x\"}\n\n": false,
	} {
		if got := onlyPings([]byte(in)); got != want {
			t.Errorf("onlyPings(%q) = %v", in, got)
		}
	}
}
