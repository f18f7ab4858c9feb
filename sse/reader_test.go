package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/difyload/difyload/sse/internal/jsonscan"
)

// frameAll renders every event eventReader produces from src, then its final error.
func frameAll(src io.Reader, maxEvent, bufSize int) string {
	var b strings.Builder
	r := newEventReader(src, maxEvent, bufSize)
	for {
		ev, err := r.next()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				b.WriteString("err=EOF\n")
			case errors.Is(err, errEventTooLarge):
				b.WriteString("err=too large\n")
			default:
				fmt.Fprintf(&b, "err=%v\n", err)
			}
			return b.String()
		}
		writeEvent(&b, ev.name, ev.hasName, ev.data, ev.hasData, ev.partial)
	}
}

func writeEvent(b *strings.Builder, name []byte, hasName bool, data []byte, hasData, partial bool) {
	fmt.Fprintf(b, "event name=%q/%v data=%q/%v partial=%v\n", name, hasName, data, hasData, partial)
}

// referenceFrame is a direct, unbuffered transcription of the framing policies over a whole
// input, used as the oracle for eventReader.
func referenceFrame(in []byte, maxEvent int) string {
	var (
		b                strings.Builder
		name, data       []byte
		hasName, hasData bool
		size             int
		lastUnterminated bool
	)
	reset := func() { name, data, hasName, hasData, size = nil, nil, false, false, 0 }
	i := 0
	for i < len(in) {
		j := i
		for j < len(in) && in[j] != '\r' && in[j] != '\n' {
			j++
		}
		line := in[i:j]
		terminated := j < len(in)
		switch {
		case !terminated:
			i = j
		case in[j] == '\r' && j+1 < len(in) && in[j+1] == '\n':
			i = j + 2
		default:
			i = j + 1
		}
		if len(line) == 0 && terminated {
			if hasData || hasName {
				writeEvent(&b, name, hasName, data, hasData, false)
			}
			reset()
			continue
		}
		size += len(line)
		if terminated {
			size++
		}
		if size > maxEvent {
			b.WriteString("err=too large\n")
			return b.String()
		}
		lastUnterminated = !terminated
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if k := bytes.IndexByte(line, ':'); k >= 0 {
			field, value = line[:k], line[k+1:]
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(field) {
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			name = append([]byte(nil), value...)
			hasName = true
		}
	}
	if hasData || hasName {
		writeEvent(&b, name, hasName, data, hasData, lastUnterminated)
	}
	b.WriteString("err=EOF\n")
	return b.String()
}

func TestReaderFraming(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string // "name|data|partial"; name "-" = no event field
	}{
		{"lf", "data: a\n\ndata: b\n\n", []string{"-|a|false", "-|b|false"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"-|a|false", "-|b|false"}},
		{"cr", "data: a\r\rdata: b\r\r", []string{"-|a|false", "-|b|false"}},
		{"mixed", "data: a\r\n\ndata: b\r\rdata: c\n\r\n", []string{"-|a|false", "-|b|false", "-|c|false"}},
		{"ping", "event: ping\n\ndata: x\n\n", []string{"ping||false", "-|x|false"}},
		{"comments", ": hi\n:\ndata: x\n: mid\n\n: only comments\n\n", []string{"-|x|false"}},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n", []string{"-|a\nb\n c\n|false"}},
		{"id retry unknown ignored", "id: 7\nretry: 10\nfoo: bar\nbaz\ndata: x\n\nid: 8\n\n", []string{"-|x|false"}},
		{"eof without blank line", "data: a\n\ndata: b\n", []string{"-|a|false", "-|b|false"}},
		{"eof without newline", "data: a\n\ndata: b", []string{"-|a|false", "-|b|true"}},
		{"empty", "", nil},
		{"only blank lines", "\n\n\r\n\r", nil},
		{"no space after colon", "data:x\n\n", []string{"-|x|false"}},
		{"colon in value", "data: {\"a\":1}\n\n", []string{`-|{"a":1}|false`}},
		{"event and data", "event: e\ndata: d\n\n", []string{"e|d|false"}},
		{"later event wins", "event: a\nevent: b\n\n", []string{"b||false"}},
	}
	for _, tt := range tests {
		for _, mode := range []string{"bulk", "onebyte"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				var src io.Reader = strings.NewReader(tt.in)
				bufSize := defaultReadBufSize
				if mode == "onebyte" {
					src, bufSize = iotest.OneByteReader(src), minReadBufSize
				}
				r := newEventReader(src, 1<<20, bufSize)
				var got []string
				for {
					ev, err := r.next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					n := "-"
					if ev.hasName {
						n = string(ev.name)
					}
					got = append(got, fmt.Sprintf("%s|%s|%v", n, ev.data, ev.partial))
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("got %q, want %q", got, tt.want)
				}
				if ref := referenceFrame([]byte(tt.in), 1<<20); ref != frameAll(strings.NewReader(tt.in), 1<<20, minReadBufSize) {
					t.Errorf("differs from reference:\n%s", ref)
				}
			})
		}
	}
}

func TestReaderLongLinesAndLimit(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 100_000)
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"long data line fits", "data: " + big + "\n\n", 200_000, "event"},
		{"long comment fits", ": " + big + "\ndata: y\n\n", 200_000, "event"},
		{"long data line too large", "data: " + big + "\n\n", 50_000, "too large"},
		{"long comment too large", ": " + big + "\n\n", 50_000, "too large"},
		{"many lines too large", strings.Repeat("data: abcdefgh\n", 10_000) + "\n", 50_000, "too large"},
		{"exact limit", "data: 12345\n\n", len("data: 12345\n"), "event"},
		{"one over limit", "data: 123456\n\n", len("data: 12345\n"), "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, bs := range []int{minReadBufSize, 100, defaultReadBufSize} {
				r := newEventReader(strings.NewReader(tt.in), tt.max, bs)
				_, err := r.next()
				got := "event"
				if errors.Is(err, errEventTooLarge) {
					got = "too large"
				} else if err != nil {
					got = err.Error()
				}
				if got != tt.want {
					t.Errorf("buf %d: got %s, want %s", bs, got, tt.want)
				}
				if ref := referenceFrame([]byte(tt.in), tt.max); ref != frameAll(strings.NewReader(tt.in), tt.max, bs) {
					t.Errorf("buf %d: differs from reference", bs)
				}
			}
		})
	}
}

// endlessLine is `data: ` followed by an endless run of 'a', without ever ending the line.
type endlessLine struct{ started bool }

func (e *endlessLine) Read(p []byte) (int, error) {
	n := 0
	if !e.started {
		n = copy(p, "data: ")
		e.started = true
	}
	for i := n; i < len(p); i++ {
		p[i] = 'a'
	}
	return len(p), nil
}

// TestReaderBoundedMemory: an event far larger than the limit fails after reading about the
// limit, and the allocations stay within 2× the limit however large the event is.
func TestReaderBoundedMemory(t *testing.T) {
	const limit = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newEventReader(&endlessLine{}, limit, defaultReadBufSize)
	_, err := r.next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errEventTooLarge) {
		t.Fatalf("err = %v, want too large", err)
	}
	if r.bytesRead > limit+2*defaultReadBufSize {
		t.Errorf("read %d bytes for a %d limit", r.bytesRead, limit)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*limit {
		t.Errorf("allocated %d bytes for a %d-byte limit", alloc, limit)
	}
}

// errAfter returns data, then err.
type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReaderErrorAfterCompleteEvents(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := newEventReader(&errAfter{data: []byte("data: a\n\ndata: b\n\ndata: partial"), err: boom}, 1<<20, 64)
	for _, want := range []string{"a", "b"} {
		ev, err := r.next()
		if err != nil || string(ev.data) != want {
			t.Fatalf("got %q %v, want %q", ev.data, err, want)
		}
	}
	if _, err := r.next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := r.next(); !errors.Is(err, boom) {
		t.Fatalf("error not sticky: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	t.Parallel()
	r := newEventReader(zeroReader{}, 1<<20, 64)
	if _, err := r.next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

func TestDecodeHelpers(t *testing.T) {
	t.Parallel()
	names := []struct {
		in, want string
		ok       bool
	}{
		{`{"event":"message","answer":"x"}`, "message", true},
		{` { "event" : "message_end" }`, "message_end", true},
		{`{"conversation_id":"c","event":"agent_message"}`, "agent_message", true},
		{`{"\u0065vent":"ping"}`, "ping", true},
		{`{"event":"mes\u0073age"}`, "message", true},
		{`{"data":{"event":"x"}}`, "", false},
		{`{"event":1}`, "", false},
		{`{"events":"x","event":"y"}`, "y", true},
		{`[1]`, "", false},
		{`{}`, "", false},
	}
	for _, tt := range names {
		got, ok := eventName([]byte(tt.in))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("eventName(%s) = %q %v, want %q %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	answers := []struct {
		in   string
		want bool
	}{
		{`{"event":"message","answer":"x"}`, true},
		{`{"event":"message","answer":""}`, false},
		{`{"event":"message","answer":null}`, false},
		{`{"event":"message"}`, false},
		{`{"event":"message","data":{"answer":"x"},"answer":""}`, false},
		{`{"event":"message","meta":["answer","x"],"answer":"\u00e9"}`, true},
		{`{"event":"message","s":"a\"answer\":\"x","answer":""}`, false},
		{`{"event":"message","answer":"\""}`, true},
		{`{"event":"message","answer":"你好"}`, true},
		{`{"event" : "message" , "answer" : " " }`, true},
	}
	for _, tt := range answers {
		if got := answerNonEmpty([]byte(tt.in)); got != tt.want {
			t.Errorf("answerNonEmpty(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if kindOf([]byte("loop_next")) != kindNode || kindOf([]byte("reasoning_chunk")) != kindUnknown {
		t.Error("kindOf")
	}
}

func TestDecodeAllocs(t *testing.T) {
	data := []byte(`{"event":"message","conversation_id":"c","message_id":"m","created_at":1,"task_id":"t","id":"m","answer":"It","from_variable_selector":["llm","text"]}`)
	allocs := testing.AllocsPerRun(100, func() {
		name, _ := eventName(data)
		_ = kindOf(name)
		_ = answerNonEmpty(data)
	})
	if allocs != 0 {
		t.Errorf("classify allocates %v per event", allocs)
	}
}

// FuzzReader frames arbitrary input with a small limit, in bulk with the default buffer and
// byte by byte with the smallest buffer, and compares both with the reference framing. It
// also runs the decoders on every payload. Inputs are finite, so a hang would be a bug.
func FuzzReader(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	for _, s := range []string{"", "\n", "\r", "\r\n", "data\n\n", ":\n\n", "event: ping\n\n", "data: {\"event\":\"message\",\"answer\":\"x\"}\r\n\r\n", "data: a\rdata: b\r\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 512
		a := frameAll(bytes.NewReader(in), limit, defaultReadBufSize)
		b := frameAll(iotest.OneByteReader(bytes.NewReader(in)), limit, minReadBufSize)
		ref := referenceFrame(in, limit)
		if a != ref || b != ref {
			t.Fatalf("framing differs\nbulk:\n%s\none-byte:\n%s\nreference:\n%s", a, b, ref)
		}
		r := newEventReader(bytes.NewReader(in), limit, minReadBufSize)
		for n := 0; ; n++ {
			if n > len(in) {
				t.Fatal("more events than input bytes")
			}
			ev, err := r.next()
			if err != nil {
				break
			}
			if len(ev.data) > limit || cap(r.data) > limit {
				t.Fatalf("data buffer %d/%d beyond the limit", len(ev.data), cap(r.data))
			}
			name, ok := eventName(ev.data) // must not panic on any input...
			_ = kindOf(name)
			if ok {
				_ = answerNonEmpty(ev.data)
			}
			if payload := ev.data; json.Valid(payload) {
				_, _ = eventName(payload)
				_ = answerNonEmpty(payload)
				_, _ = jsonscan.Field(payload, "answer")
			}
		}
	})
}
