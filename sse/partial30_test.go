package sse

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A `data:` line that never ends, held for longer than the idle timeout, at the real
// defaults (30 s): the stream fails as "timeout: no event for 30s" once, and never hangs.
func TestPartialLineHeld30s(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test waits for the real 30 s idle timeout")
	}
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("data: {\"event\":\"message\",\"answer\":\"hel"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(35 * time.Second):
		}
	}))
	defer srv.Close()
	c := NewClient(Config{}) // defaults: idle 30 s, first token 60 s
	start := time.Now()
	res, err := c.Stream(context.Background(), Request{URL: srv.URL, APIKey: "app-x", Body: []byte(`{}`)})
	var se *StreamError
	if !errors.As(err, &se) || se.Phase != PhaseIdleTimeout || se.Failure() != "timeout: no event for 30s" {
		t.Fatalf("err = %v, want the idle timeout", err)
	}
	if waited := time.Since(start); waited < 30*time.Second {
		t.Fatalf("failed after %v, before the 30 s idle timeout", waited)
	}
	if res == nil || res.Headers.IsZero() || !res.FirstToken.IsZero() {
		t.Fatalf("result %+v: want headers and no first token", res)
	}
}
