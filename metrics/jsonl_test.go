package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestJSONLWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf)
	start := time.Unix(1_700_000_000, 0)
	s := mockStream("SimpleChatFlow", start.Add(300*time.Millisecond), 200*time.Millisecond, 5*time.Millisecond, 3)
	s.ServerLatency, s.HasServerLatency = 290*time.Millisecond, true
	w.Write("", s, "")
	w.Write("ComplexChatFlow", StreamSample{Failed: true, Start: start, End: start.Add(time.Second), E2E: time.Second}, "HTTP 429 too_many_requests")
	if buf.Len() != 0 {
		t.Error("JSONLWriter must buffer until Flush/Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	ok := lines[0]
	checks := map[string]any{"flow": "SimpleChatFlow", "ok": true, "failure": "", "ttft_ms": 200.0, "tpot_ms": 5.0,
		"output_tokens": 3.0, "chunks": 3.0, "server_latency_ms": 290.0, "server_ttft_ms": nil, "tpot_from_chunks": false,
		"start": 1_700_000_000.1, "end": 1_700_000_000.3}
	for k, want := range checks {
		if ok[k] != want {
			t.Errorf("line 1 %s = %v, want %v", k, ok[k], want)
		}
	}
	if gaps, _ := ok["gaps_ms"].([]any); len(gaps) != 2 || gaps[0] != 5.0 {
		t.Errorf("gaps %v", ok["gaps_ms"])
	}
	bad := lines[1]
	if bad["ok"] != false || bad["failure"] != "HTTP 429 too_many_requests" || bad["flow"] != "ComplexChatFlow" || bad["ttft_ms"] != nil || bad["e2e_ms"] != 1000.0 {
		t.Errorf("line 2 %v", bad)
	}
}

func TestJSONLWriterConcurrent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				w.Write("", mockStream("f", time.Now(), time.Duration(g)*time.Millisecond, time.Millisecond, 50), "")
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("interleaved line %q", sc.Text())
		}
		n++
	}
	if n != 1600 {
		t.Errorf("%d lines, want 1600", n)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONLWriterError(t *testing.T) {
	t.Parallel()
	w := NewJSONLWriter(failWriter{})
	w.Write("f", StreamSample{}, "")
	if err := w.Close(); err == nil || w.Err() == nil {
		t.Fatal("a write error must be reported")
	}
}
