package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeStop: serve answers until stop; stop waits for a request under way to end
// within the timeout, then the port is closed.
func TestServeStop(t *testing.T) {
	t.Parallel()
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	stop := serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			time.Sleep(200 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "ok")
	}), func(err error) { t.Errorf("serve: %v", err) })
	url := "http://" + ln.Addr().String()
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+path, nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get("/"); err != nil || got != "ok" {
		t.Fatalf("GET / = %q, %v", got, err)
	}
	slow := make(chan string, 1)
	go func() { got, _ := get("/slow"); slow <- got }()
	<-started
	if err := stop(context.Background()); err != nil {
		t.Errorf("stop: %v", err)
	}
	if got := <-slow; got != "ok" {
		t.Errorf("the request under way got %q, want it finished", got)
	}
	if _, err := get("/"); err == nil {
		t.Error("still serving after stop")
	}
}
