package sse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testKey is a fake Dify app key; tests assert it never appears in error texts.
const testKey = "app-SECRETsecret0123456789ab"

// newTestClient returns a Client on its own transport, closed at the end of the test.
func newTestClient(t testing.TB, cfg Config, tc TransportConfig) *Client {
	t.Helper()
	tr := NewTransport(tc)
	t.Cleanup(tr.CloseIdleConnections)
	cfg.Client = &http.Client{Transport: tr}
	return NewClient(cfg)
}

// newServer starts an httptest server on 127.0.0.1 and closes it at the end of the test.
func newServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(drainRequest(h))
	t.Cleanup(srv.Close)
	return srv
}

// drainRequest reads the request body first: Go's server notices a client going away (and
// cancels r.Context()) only once the body has been consumed.
func drainRequest(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h(w, r)
	}
}

func chatRequest(url string) Request {
	return Request{
		URL:    url + "/v1/chat-messages",
		APIKey: testKey,
		Body:   []byte(`{"inputs":{},"query":"hello","response_mode":"streaming","user":"load-u-0001"}`),
	}
}

func sseHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("X-Version", "1.13.3")
	w.WriteHeader(http.StatusOK)
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// wait blocks until the request ends or d passes.
func wait(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// requireStreamError checks err's type, phase and failure name, and that no error text
// contains the API key.
func requireStreamError(t *testing.T, err error, phase Phase, failure string) *StreamError {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want phase %s %q", phase, failure)
	}
	var se *StreamError
	if !errors.As(err, &se) {
		t.Fatalf("err %T %v is not a *StreamError", err, err)
	}
	if se.Phase != phase || se.Failure() != failure {
		t.Fatalf("got phase %s failure %q (%v), want phase %s failure %q", se.Phase, se.Failure(), err, phase, failure)
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(se.Failure(), testKey) {
		t.Fatalf("error text contains the API key: %v", err)
	}
	if IsCancelled(err) != (phase == PhaseCancelled) {
		t.Fatalf("IsCancelled = %v for phase %s", IsCancelled(err), phase)
	}
	return se
}

// checkOrder asserts the documented ordering of the timings that were reached.
func checkOrder(t *testing.T, r *Result) {
	t.Helper()
	seq := []struct {
		name string
		at   time.Time
	}{
		{"Start", r.Start}, {"Headers", r.Headers}, {"FirstByte", r.FirstByte}, {"FirstEvent", r.FirstEvent},
		{"FirstToken", r.FirstToken}, {"LastToken", r.LastToken}, {"End", r.End},
	}
	var prev time.Time
	prevName := ""
	for _, s := range seq {
		if s.at.IsZero() {
			continue
		}
		if !prev.IsZero() && s.at.Before(prev) {
			t.Errorf("%s (%v) before %s (%v)", s.name, s.at, prevName, prev)
		}
		prev, prevName = s.at, s.name
	}
	for i := 1; i < len(r.ChunkTimes); i++ {
		if r.ChunkTimes[i].Before(r.ChunkTimes[i-1]) {
			t.Errorf("ChunkTimes[%d] before ChunkTimes[%d]", i, i-1)
		}
	}
	if len(r.ChunkTimes) != r.Chunks {
		t.Errorf("len(ChunkTimes) = %d, Chunks = %d", len(r.ChunkTimes), r.Chunks)
	}
	if r.Chunks > 0 && (!r.FirstToken.Equal(r.ChunkTimes[0]) || !r.LastToken.Equal(r.ChunkTimes[len(r.ChunkTimes)-1])) {
		t.Errorf("FirstToken/LastToken do not match ChunkTimes")
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
