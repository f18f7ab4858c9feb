package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
	s.MessageID = "5ad4cb98-f0c7-4085-b384-88c403be6290"
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
		"start": 1_700_000_000.1, "end": 1_700_000_000.3, "message_id": "5ad4cb98-f0c7-4085-b384-88c403be6290"}
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

// TestJSONLMatchesEncodingJSON checks the hand-written line encoder against encoding/json
// (what the writer used before): same keys, same values, valid JSON for awkward strings.
func TestJSONLMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_795_727_449, 599_590_123)
	cases := []struct {
		flow, failure string
		s             StreamSample
	}{
		{"SimpleChatFlow", "", mockStream("SimpleChatFlow", start.Add(300*time.Millisecond), 200*time.Millisecond, 5*time.Millisecond, 20)},
		{"", "stream error: \"quoted\" \\ back\nnew\x01line é", StreamSample{Flow: "F\tlow", Failed: true, Start: start, E2E: 7 * time.Nanosecond, MessageID: "m\"1", Clock: "kernel"}},
		{"x", "", StreamSample{TTFT: 1e15, HasTTFT: true, TPOT: 1, HasTPOT: true, Gaps: []time.Duration{1, 1e9, 123456789}}},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		w := NewJSONLWriter(&buf)
		w.Write(c.flow, c.s, c.failure)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var got, want map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("invalid line %q: %v", buf.String(), err)
		}
		flow := c.flow
		if flow == "" {
			flow = c.s.Flow
		}
		ms := func(d time.Duration, ok bool) any {
			if !ok {
				return nil
			}
			return float64(d) / float64(time.Millisecond)
		}
		unix := func(tm time.Time) any {
			if tm.IsZero() {
				return nil
			}
			return unixFloat(tm)
		}
		gaps := make([]float64, len(c.s.Gaps))
		for i, g := range c.s.Gaps {
			gaps[i] = float64(g) / float64(time.Millisecond)
		}
		ref, _ := json.Marshal(map[string]any{
			"start": unix(c.s.Start), "end": unix(c.s.End), "flow": flow, "ok": !c.s.Failed, "failure": c.failure,
			"ttft_ms": ms(c.s.TTFT, c.s.HasTTFT), "ttfe_ms": ms(c.s.TTFE, c.s.HasTTFE), "tpot_ms": ms(c.s.TPOT, c.s.HasTPOT), "tpot_from_chunks": c.s.TPOTFromChunks,
			"e2e_ms": ms(c.s.E2E, !c.s.Start.IsZero() || c.s.E2E > 0), "output_tokens": c.s.OutputTokens, "chunks": c.s.Chunks,
			"gaps_ms": gaps, "server_latency_ms": ms(c.s.ServerLatency, c.s.HasServerLatency),
			"server_ttft_ms": ms(c.s.ServerTTFT, c.s.HasServerTTFT), "message_id": c.s.MessageID,
			"clock": c.s.Clock,
		})
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) {
			t.Errorf("line\n got %s\nwant %s", gb, wb)
		}
	}
}

func BenchmarkJSONLWrite(b *testing.B) {
	w := NewJSONLWriter(io.Discard)
	s := mockStream("SimpleChatFlow", time.Now(), 200*time.Millisecond, 5*time.Millisecond, 20)
	s.MessageID = "5ad4cb98-f0c7-4085-b384-88c403be6290"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w.Write("", s, "")
	}
}
