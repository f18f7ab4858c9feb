package sse

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// cutAll reads raw with precise reads that each see what has arrived (arrive(at) bytes are
// there at offset at) and returns the offsets where the reads ended.
func cutAll(raw []byte, arrive func(at int) int) []int {
	var rc respCut
	var prev byte
	var cuts []int
	for at := 0; at < len(raw); {
		end := min(len(raw), arrive(at))
		n := rc.cut(prev, raw[at:end])
		if n <= 0 {
			return append(cuts, -1) // no progress: reported as a failure by the callers
		}
		at += n
		prev = raw[at-1]
		cuts = append(cuts, at)
	}
	return cuts
}

func TestRespCut(t *testing.T) {
	whole := func(int) int { return 1 << 30 }
	cases := []struct {
		name string
		raw  string
		want []int
	}{
		{"chunked LF events, trailer CRLF sent with the next chunk",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"d\r\nevent: ping\n\n\r\n9\r\ndata: x\n\n\r\n0\r\n\r\n",
			[]int{47, 47 + 3 + 13, 47 + 3 + 13 + 2 + 3 + 9, 47 + 3 + 13 + 2 + 3 + 9 + 7}},
		{"a CRLF stream split across chunks",
			"HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n" +
				"9\r\ndata: x\r\n\r\n2\r\n\r\n\r\n0\r\n\r\n",
			[]int{47, 47 + 3 + 9 + 2 + 3 + 1, 47 + 3 + 9 + 2 + 3 + 2 + 2 + 5}},
		{"no chunking: every body byte is the stream",
			"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\ndata: x\n\ndata: y\n\n",
			[]int{39, 48, 57}},
		{"an interim response first",
			"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n0\r\n\r\n",
			[]int{25, 25 + 47, 25 + 47 + 3 + 9, 25 + 47 + 3 + 9 + 2 + 5}},
		{"chunk extensions",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9;a=b\r\ndata: x\n\n\r\n0\r\n\r\n",
			[]int{47, 47 + 7 + 9, 47 + 7 + 9 + 2 + 5}},
		{"a malformed size line falls back to the raw rule",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\ndata: x\n\n",
			[]int{47, 47 + 4 + 9}},
	}
	for _, c := range cases {
		got := cutAll([]byte(c.raw), whole)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: cuts %v, want %v", c.name, got, c.want)
		}
	}
}

// TestRespCutNeverLate: random responses (interim responses, header case, chunked with
// random chunk sizes and extensions or not chunked) around random SSE streams, read by
// precise reads that see random amounts of what has arrived: no read passes an event end,
// every read makes progress, and with chunking the reads are no more than the events, the
// heads and the reads that saw a partial event (framing never makes a cut of its own).
func TestRespCutNeverLate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 500 {
		content, ends := randomSSE(rng)
		raw, rawEnds, heads := randomResponse(rng, content, ends)
		segs := 0
		arrive := func(at int) int {
			segs++
			if rng.IntN(3) == 0 {
				return at + 1 + rng.IntN(8) // a short segment
			}
			return at + 1 + rng.IntN(len(raw))
		}
		cuts := cutAll(raw, arrive)
		next := 0
		prev := 0
		for _, c := range cuts {
			if c <= prev {
				t.Fatalf("iter %d: no progress at %d (cuts %v)\nraw %q", iter, prev, cuts, raw)
			}
			for next < len(rawEnds) && rawEnds[next] <= prev {
				next++
			}
			if next < len(rawEnds) && c > rawEnds[next] {
				t.Fatalf("iter %d: a read from %d ends at %d, past the event end at %d\nraw %q", iter, prev, c, rawEnds[next], raw)
			}
			prev = c
		}
		if limit := len(rawEnds) + heads + segs; len(cuts) > limit {
			t.Fatalf("iter %d: %d reads for %d events, %d heads and %d arrivals", iter, len(cuts), len(rawEnds), heads, segs)
		}
	}
}

// TestRespCutFewerReads: on the mock's framing (each event a chunk, its trailing CRLF sent
// with the next chunk) the framing-aware cut reads each event once where the raw rule also
// stops at every chunk trailer's CR.
func TestRespCutFewerReads(t *testing.T) {
	var raw bytes.Buffer
	raw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 6 {
		ev := fmt.Sprintf("data: {\"event\":\"node_started\",\"i\":%d}\n\n", i)
		fmt.Fprintf(&raw, "%x\r\n%s\r\n", len(ev), ev)
	}
	raw.WriteString("0\r\n\r\n")
	b := raw.Bytes()
	framed := len(cutAll(b, func(int) int { return 1 << 30 }))
	plain := 0
	var prev byte
	for at := 0; at < len(b); plain++ {
		at += eventCut(prev, b[at:])
		prev = b[at-1]
	}
	if framed != 1+6+1 || plain <= framed {
		t.Fatalf("reads: framing-aware %d (want head + 6 events + the last chunk), raw rule %d", framed, plain)
	}
}

// randomResponse frames content as an HTTP/1.1 response (maybe behind a 100 Continue, header
// names in random case, chunked in random sizes with random extensions, or with a
// Content-Length) and maps the event ends to raw offsets. heads counts the response heads.
func randomResponse(rng *rand.Rand, content []byte, ends []int) ([]byte, []int, int) {
	var raw []byte
	heads := 1
	if rng.IntN(4) == 0 {
		raw = append(raw, "HTTP/1.1 100 Continue\r\n\r\n"...)
		heads++
	}
	te := []string{"Transfer-Encoding", "transfer-encoding", "TRANSFER-ENCODING", "Transfer-encoding"}[rng.IntN(4)]
	chunked := rng.IntN(4) != 0
	raw = append(raw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"...)
	if chunked {
		raw = append(raw, te+": chunked\r\n"...)
	} else {
		raw = fmt.Appendf(raw, "Content-Length: %d\r\n", len(content))
	}
	raw = append(raw, "X-Transfer: chunked-not\r\n\r\n"...)
	var pos []int
	if chunked {
		raw, pos = appendChunks(rng, raw, content, 9, true)
	} else {
		pos = make([]int, len(content))
		for i := range content {
			pos[i] = len(raw) + i
		}
		raw = append(raw, content...)
	}
	return raw, rawEnds(pos, ends), heads
}
