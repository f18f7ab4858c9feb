package difymock

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]version{
		"":       {name: "1.13.3", relay: true, meFirst: true},
		"1.9":    {name: "1.9.0"},
		"1.12.1": {name: "1.12.1"},
		"v1.12":  {name: "1.12.0"},
		"1.13.0": {name: "1.13.0", relay: true},
		"1.13.1": {name: "1.13.1", relay: true, meFirst: true},
		"1.13":   {name: "1.13.3", relay: true, meFirst: true},
	} {
		got, err := parseVersion(in)
		if err != nil || got != want {
			t.Errorf("parseVersion(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1.8", "2.0", "1.14", "x", "1", "1.13.x", "1.-1"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) accepted", bad)
		}
	}
	if err := (Config{DifyVersion: "1.8"}).Validate(); err == nil {
		t.Error("Validate accepted 1.8")
	}
}

// ujson escapes "/" and every non-ASCII character in error bodies.
func TestUjsonErrorBody(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	writeError(w, 400, "invalid_param", "é/ok 😀")
	want := `{"code":"invalid_param","message":"\u00e9\/ok \ud83d\ude00","status":400}` + "\n"
	if got := w.Body.String(); got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

// A relayed run pings when its *run* time crosses a multiple of the interval: nothing while
// it waits for a job worker after the first ping.
func TestRelayPingsFollowRunTime(t *testing.T) {
	t.Parallel()
	s := New(Config{TTFT: 250 * time.Millisecond, TokenDelay: time.Millisecond, Tokens: 1, PingInterval: 100 * time.Millisecond, JobWorkers: 1})
	ts := startServer(t, s)
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = chatCall(SimpleChatKey).do(t, ts.URL) }() // holds the worker ≈250 ms
	time.Sleep(30 * time.Millisecond)
	resp, body, err := chatCall(SimpleChatKey).do(t, ts.URL) // queued ≈220 ms, then runs 250 ms
	<-done
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	evs, _ := readSSE(strings.NewReader(string(body)))
	pings := 0
	for _, ev := range evs {
		if ev.event == "ping" {
			pings++
		}
	}
	// The relay's first ping, then two during the 250 ms run (at 100 and 200 ms of run
	// time); counting from the request instead would give about four.
	if evs[0].event != "ping" || pings != 3 {
		t.Errorf("%d pings (first event %q), want the relay's ping plus 2 run-time pings", pings, evs[0].event)
	}
}
