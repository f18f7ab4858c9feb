package sse

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestEventCut(t *testing.T) {
	cases := []struct {
		prev byte
		in   string
		want int
	}{
		{0, "data: x\n\n", 9},
		{0, "data: x\r\n\r\n", 10}, // at the blank line's CR; its LF starts the next read
		{0, "data: x\r\rdata: y", 9},
		{0, "data: x\n\r\n", 9},
		{0, "data: x\n", 8},
		{'\n', "\ndata: y\n\n", 1},                  // the blank line came in a segment of its own
		{0, "data: x\n\r\n1\r\n\ndata", 9},          // chunked: a spurious cut at the chunk's CR
		{'\r', "\n1a\r\ndata: x\n\n\r\n", 14},       // a CRLF is never a blank line
		{0, "HTTP/1.1 200 OK\r\nA: b\r\n\r\n4", 24}, // the end of the headers
		{0, "", 0},
	}
	for _, c := range cases {
		if got := eventCut(c.prev, []byte(c.in)); got != c.want {
			t.Errorf("eventCut(%q, %q) = %d, want %d", c.prev, c.in, got, c.want)
		}
	}
}

// TestEventCutNeverLate: on random SSE streams (LF, CR and CRLF lines, comments, empty
// blocks) framed in random HTTP chunks, a read starting at any byte never passes the next
// event end: the stamp of a precise read is never that of a later event.
func TestEventCutNeverLate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		content, ends := randomSSE(rng)
		raw, rawEnds := []byte(nil), []int(nil)
		if iter%3 == 0 {
			raw, rawEnds = content, ends
		} else {
			raw, rawEnds = randomChunks(rng, content, ends)
		}
		for q := 0; q < len(raw); q++ {
			var prev byte
			if q > 0 {
				prev = raw[q-1]
			}
			cut := q + eventCut(prev, raw[q:])
			for _, e := range rawEnds {
				if e > q {
					if cut > e {
						t.Fatalf("iter %d: a read from %d cuts at %d, past the event end at %d\nraw %q", iter, q, cut, e, raw)
					}
					break
				}
			}
		}
	}
}

// randomSSE returns an SSE stream and the offsets just after each event's dispatching byte
// (the first byte of its blank line's line ending), as a WHATWG parser dispatches.
func randomSSE(rng *rand.Rand) ([]byte, []int) {
	eols := []string{"\n", "\r", "\r\n"}
	lines := []string{"data: x", "event: ping", ": c", "id: 7", "data: {\"a\": 1}", "", "", "1a", "data"}
	var b []byte
	var ends []int
	fields, afterCR := false, false
	for range 40 {
		l := lines[rng.IntN(len(lines))]
		b = append(b, l...)
		eol := eols[rng.IntN(len(eols))]
		if l == "" && afterCR && eol[0] == '\n' {
			eol = "\r" // an LF right after a CR would end the CR's line, not a new one
		}
		afterCR = eol == "\r"
		if l == "" && fields {
			ends = append(ends, len(b)+1)
			fields = false
		} else if l != "" && l[0] != ':' {
			fields = true
		}
		b = append(b, eol...)
	}
	return b, ends
}

// randomChunks frames content in HTTP/1.1 chunks of random sizes behind a response header,
// and maps the content offsets to offsets in the framed bytes.
func randomChunks(rng *rand.Rand, content []byte, ends []int) ([]byte, []int) {
	raw, pos := appendChunks(rng, []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), content, 6, false)
	return raw, rawEnds(pos, ends)
}

// appendChunks appends content to raw as chunks of 1 to maxChunk bytes (some with an
// extension if exts), then the last chunk; pos maps each content byte to its raw offset.
func appendChunks(rng *rand.Rand, raw, content []byte, maxChunk int, exts bool) ([]byte, []int) {
	pos := make([]int, len(content))
	for i := 0; i < len(content); {
		n := min(1+rng.IntN(maxChunk), len(content)-i)
		raw = fmt.Appendf(raw, "%x", n)
		if exts && rng.IntN(5) == 0 {
			raw = append(raw, ";ext=a"...)
		}
		raw = append(raw, "\r\n"...)
		for j := range n {
			pos[i+j] = len(raw)
			raw = append(raw, content[i+j])
		}
		i += n
		raw = append(raw, "\r\n"...)
	}
	return append(raw, "0\r\n\r\n"...), pos
}

// rawEnds maps event ends (offsets just after a content byte) through pos.
func rawEnds(pos, ends []int) []int {
	out := make([]int, len(ends))
	for i, e := range ends {
		out[i] = pos[e-1] + 1
	}
	return out
}
