package sse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"

	r3sse "github.com/r3labs/sse/v2"

	"github.com/difyload/difyload/sse/internal/jsonscan"
)

// benchTranscript is the complex-chatflow transcript (node events with retrieval content, two
// answer chunks, a ping, workflow_finished, message_end) repeated to about 1 MiB.
func benchTranscript(b *testing.B) (stream []byte, events int) {
	b.Helper()
	one, err := os.ReadFile("testdata/complex_chatflow_ping.sse")
	if err != nil {
		b.Fatal(err)
	}
	n := (1 << 20) / len(one)
	stream = bytes.Repeat(one, n)
	return stream, n * bytes.Count(one, []byte("\n\n"))
}

// frameReads returns stream as one Read per SSE frame, like a server flushing each event.
type frameReads struct {
	s   []byte
	off int
}

func (f *frameReads) Read(p []byte) (int, error) {
	if f.off >= len(f.s) {
		return 0, io.EOF
	}
	end := len(f.s)
	if i := bytes.Index(f.s[f.off:], []byte("\n\n")); i >= 0 {
		end = f.off + i + 2
	}
	n := copy(p, f.s[f.off:end])
	f.off += n
	return n, nil
}

// sizedReads returns stream in reads of at most size bytes.
type sizedReads struct {
	s    []byte
	size int
}

func (r *sizedReads) Read(p []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.size)], r.s)
	r.s = r.s[n:]
	return n, nil
}

type framer func(src io.Reader, maxEvent int) (events int, err error)

// frameOwn is this package's reader; the reader is reused like the Client's pool does.
func frameOwn() framer {
	rd := newEventReader(nil, 0, defaultReadBufSize)
	return func(src io.Reader, maxEvent int) (int, error) {
		rd.reset(src, maxEvent, defaultReadBufSize)
		n := 0
		for {
			_, err := rd.next()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			n++
		}
	}
}

// frameR3labs is r3labs/sse/v2's EventStreamReader plus an allocation-free field parser (its
// own parser is an unexported Client method that allocates per line).
func frameR3labs() framer {
	var data, name []byte
	return func(src io.Reader, maxEvent int) (int, error) {
		rd := r3sse.NewEventStreamReader(src, maxEvent)
		n := 0
		for {
			msg, err := rd.ReadEvent()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return n, err
			}
			data, name = data[:0], name[:0]
			hasData, hasName := false, false
			for len(msg) > 0 {
				i := bytes.IndexAny(msg, "\r\n")
				line := msg
				if i >= 0 {
					line, msg = msg[:i], msg[i+1:]
				} else {
					msg = nil
				}
				if len(line) == 0 || line[0] == ':' {
					continue
				}
				field, value := line, []byte(nil)
				if k := bytes.IndexByte(line, ':'); k >= 0 {
					field, value = line[:k], line[k+1:]
					if len(value) > 0 && value[0] == ' ' {
						value = value[1:]
					}
				}
				switch string(field) {
				case "data":
					if hasData {
						data = append(data, '\n')
					}
					data = append(data, value...)
					hasData = true
				case "event":
					name = append(name[:0], value...)
					hasName = true
				}
			}
			if hasData || hasName {
				n++
			}
		}
	}
}

// frameFloor is the floor: bufio.Scanner lines, counting `data:` and `event:` lines (no
// event semantics, no CR support).
func frameFloor() framer {
	var buf []byte
	return func(src io.Reader, maxEvent int) (int, error) {
		sc := bufio.NewScanner(src)
		if buf == nil {
			buf = make([]byte, 64<<10)
		}
		sc.Buffer(buf, maxEvent)
		n := 0
		for sc.Scan() {
			if l := sc.Bytes(); bytes.HasPrefix(l, []byte("data:")) || bytes.HasPrefix(l, []byte("event:")) {
				n++
			}
		}
		return n, sc.Err()
	}
}

func reportPerEvent(b *testing.B, events int, before *runtime.MemStats) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	total := float64(events) * float64(b.N)
	nsPerEvent := float64(b.Elapsed().Nanoseconds()) / total
	b.ReportMetric(nsPerEvent, "ns/event")
	b.ReportMetric(1e9/nsPerEvent, "events/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/event")
}

// BenchmarkFraming compares the framing candidates over the same bytes: bulk reads, one read
// per frame (a flushing server), and a 1 MiB event arriving in 4 KiB reads.
func BenchmarkFraming(b *testing.B) {
	stream, events := benchTranscript(b)
	bigEvent := []byte("data: {\"event\":\"message\",\"answer\":\"" + strings.Repeat("a", 1<<20) + "\"}\n\n")
	framers := []struct {
		name string
		new  func() framer
	}{{"own", frameOwn}, {"r3labs", frameR3labs}, {"floor-bufio-lines", frameFloor}}
	inputs := []struct {
		name   string
		events int
		src    func() io.Reader
	}{
		{"bulk", events, func() io.Reader { return bytes.NewReader(stream) }},
		{"per-frame-reads", events, func() io.Reader { return &frameReads{s: stream} }},
		{"1MiB-event-4KiB-reads", 1, func() io.Reader { return &sizedReads{s: bigEvent, size: 4 << 10} }},
	}
	for _, in := range inputs {
		for _, f := range framers {
			b.Run(in.name+"/"+f.name, func(b *testing.B) {
				fr := f.new()
				b.ReportAllocs()
				b.SetBytes(int64(len(stream)))
				if in.events == 1 {
					b.SetBytes(int64(len(bigEvent)))
				}
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				for b.Loop() {
					n, err := fr(in.src(), DefaultMaxEventSize)
					if err != nil || n != in.events {
						b.Fatalf("%d events, %v (want %d)", n, err, in.events)
					}
				}
				reportPerEvent(b, in.events, &before)
			})
		}
	}
}

// BenchmarkDecode measures the per-event decode steps over the transcript's payloads:
// classify (event name + answer check), json.Valid, and both.
func BenchmarkDecode(b *testing.B) {
	stream, _ := benchTranscript(b)
	var payloads [][]byte
	rd := newEventReader(bytes.NewReader(stream), DefaultMaxEventSize, defaultReadBufSize)
	for {
		ev, err := rd.next()
		if err != nil {
			break
		}
		if ev.hasData {
			payloads = append(payloads, bytes.Clone(ev.data))
		}
	}
	steps := []struct {
		name string
		fn   func([]byte) bool
	}{
		{"classify", func(p []byte) bool {
			name, _ := eventName(p)
			k := kindOf(name)
			return (k == kindMessage || k == kindAgentMessage) && answerNonEmpty(p)
		}},
		{"json.Valid", json.Valid},
		{"validJSON", jsonscan.Valid},
		{"validJSON+classify", func(p []byte) bool {
			if !jsonscan.Valid(p) {
				return false
			}
			name, _ := eventName(p)
			k := kindOf(name)
			return (k == kindMessage || k == kindAgentMessage) && answerNonEmpty(p)
		}},
	}
	for _, s := range steps {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				for _, p := range payloads {
					_ = s.fn(p)
				}
			}
			reportPerEvent(b, len(payloads), &before)
		})
	}
}

// BenchmarkReaderClassify is the steady-state hot path without HTTP: frame, validate and
// classify every event of the transcript, as Client.Stream does.
func BenchmarkReaderClassify(b *testing.B) {
	stream, events := benchTranscript(b)
	rd := newEventReader(nil, 0, defaultReadBufSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		rd.reset(bytes.NewReader(stream), DefaultMaxEventSize, defaultReadBufSize)
		chunks := 0
		for {
			ev, err := rd.next()
			if err != nil {
				break
			}
			if !ev.hasData || !jsonscan.Valid(ev.data) {
				continue
			}
			name, _ := eventName(ev.data)
			if k := kindOf(name); (k == kindMessage || k == kindAgentMessage) && answerNonEmpty(ev.data) {
				chunks++
			}
		}
		if chunks == 0 {
			b.Fatal("no chunks")
		}
	}
	reportPerEvent(b, events, &before)
}

// BenchmarkStreamLoopback is one whole Client.Stream over loopback HTTP (keep-alive): the
// complex-chatflow transcript, 18 events.
func BenchmarkStreamLoopback(b *testing.B) {
	benchStreams(b, transcriptServer(b), TransportConfig{})
}
