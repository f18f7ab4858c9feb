package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The simple chatflow's events as difymock writes them (difymock/workflowevents.go and
// frame.go; docs/dify-wire.md, "Simple chatflow"), with the per-stream fields left as
// marks (~ and a letter): C conversation_id, M message_id, T task_id, W workflow_run_id, S created_at,
// A and B the two node executions; F the full answer, N the answer's tokens and O all
// tokens, filled in once by newTemplates. The answer chunks are difymock's for the query "hello"
// (difymock/answer.go), whatever the request asked.
const (
	common = `{"event":"%s","conversation_id":"~C","message_id":"~M","created_at":~S,"task_id":"~T"`
	sys    = `{"sys.query":"hello","sys.files":[],"sys.conversation_id":"~C","sys.user_id":"6a2ae71f-f45a-5b43-b3fd-5ff193700cdf","sys.dialogue_count":1,"sys.app_id":"5b3d9a61-7c2e-4f80-9d14-2a6b8c0e1f31","sys.workflow_id":"8e2f4a10-1c3b-4d5e-8f60-7a8b9c0d1e21","sys.workflow_run_id":"~W"}`

	workflowStarted = `,"workflow_run_id":"~W","data":{"id":"~W","workflow_id":"8e2f4a10-1c3b-4d5e-8f60-7a8b9c0d1e21","inputs":` + sys + `,"created_at":~S}}`
	startStarted    = `,"workflow_run_id":"~W","data":{"id":"~A","node_id":"1711528708197","node_type":"start","title":"Start","index":1,"predecessor_node_id":null,"inputs":null,"inputs_truncated":false,"created_at":~S,"extras":{},"iteration_id":null,"loop_id":null,"agent_strategy":null}}`
	startFinished   = `,"workflow_run_id":"~W","data":{"id":"~A","node_id":"1711528708197","node_type":"start","title":"Start","index":1,"predecessor_node_id":null,"inputs":` + sys + `,"inputs_truncated":false,"process_data":null,"process_data_truncated":false,"outputs":` + sys + `,"outputs_truncated":false,"status":"succeeded","error":null,"elapsed_time":0.0021,"execution_metadata":null,"created_at":~S,"finished_at":~S,"files":[],"iteration_id":null,"loop_id":null}}`
	answerStarted   = `,"workflow_run_id":"~W","data":{"id":"~B","node_id":"answer","node_type":"answer","title":"Answer","index":2,"predecessor_node_id":null,"inputs":null,"inputs_truncated":false,"created_at":~S,"extras":{},"iteration_id":null,"loop_id":null,"agent_strategy":null}}`
	message         = `,"id":"~M","answer":"%s","from_variable_selector":%s}`
	answerFinished  = `,"workflow_run_id":"~W","data":{"id":"~B","node_id":"answer","node_type":"answer","title":"Answer","index":2,"predecessor_node_id":"1711528708197","inputs":{},"inputs_truncated":false,"process_data":null,"process_data_truncated":false,"outputs":{"answer":"~F","files":[]},"outputs_truncated":false,"status":"succeeded","error":null,"elapsed_time":0.0105,"execution_metadata":null,"created_at":~S,"finished_at":~S,"files":[],"iteration_id":null,"loop_id":null}}`
	messageEnd      = `,"id":"~M","metadata":{"annotation_reply":null,"retriever_resources":[],"usage":{"prompt_tokens":11,"prompt_unit_price":"0.15","prompt_price_unit":"0.000001","prompt_price":"0.0000017","completion_tokens":~N,"completion_unit_price":"0.6","completion_price_unit":"0.000001","completion_price":"0.0000120","total_tokens":~O,"total_price":"0.0000137","currency":"USD","latency":0.300787,"time_to_first_token":0.200979,"time_to_generate":0.099783}},"files":[]}`
	workflowDone    = `,"workflow_run_id":"~W","data":{"id":"~W","workflow_id":"8e2f4a10-1c3b-4d5e-8f60-7a8b9c0d1e21","status":"succeeded","outputs":{"answer":"~F","files":[]},"error":null,"elapsed_time":0.300802,"total_tokens":~O,"total_steps":2,"created_by":{"id":"6a2ae71f-f45a-5b43-b3fd-5ff193700cdf","user":"floor"},"created_at":~S,"finished_at":~S,"exceptions_count":0,"files":[]}}`
)

// marks are the per-stream fields' letters, in the order of stream.fields.
const marks = "CMTWSAB"

// piece is a literal followed by a per-stream field (its index in stream.fields; -1: none).
type piece struct {
	lit   string
	field int
}

// compile splits an event (common fields with its name, then its own) into pieces.
func compile(event, rest string) []piece {
	t := strings.Replace(common, "%s", event, 1) + rest
	var ps []piece
	for {
		i := strings.IndexByte(t, '~')
		if i < 0 || i+1 >= len(t) {
			return append(ps, piece{lit: t, field: -1})
		}
		ps = append(ps, piece{lit: t[:i], field: strings.IndexByte(marks, t[i+1])})
		t = t[i+2:]
	}
}

// templates are the stream's events, compiled once.
type templates struct {
	before [][]piece // up to the answer node's start
	chunks [][]piece // "You said: ", the query, the fillers (see chunk)
	after  [][]piece // after the last token
}

// chunk is answer chunk i's template: "You said: ", the query, then difymock's fillers in
// turn (chunk 2 is the second filler: difymock counts them from chunk 1).
func (t *templates) chunk(i int) []piece {
	if i < 2 {
		return t.chunks[i]
	}
	return t.chunks[2+(i-1)%(len(t.chunks)-2)]
}

// newTemplates compiles the stream of tokens answer chunks; pad > 0 lengthens each filler
// chunk's text by pad bytes (a word repeated), so a chunk costs its reader's JSON check more
// than its pre-rendered write costs the server.
func newTemplates(tokens, pad int) *templates {
	fillers := []string{" answer", " token", " from", " the", " difymock", " server", "."}
	if pad > 0 {
		more := strings.Repeat(" lorem", pad/6+1)[:pad]
		for i := range fillers {
			fillers[i] += more
		}
	}
	answer := "You said: hello"
	for i := 2; i < tokens; i++ {
		answer += fillers[(i-1)%len(fillers)]
	}
	fill := strings.NewReplacer("~F", answer, "~N", strconv.Itoa(tokens), "~O", strconv.Itoa(11+tokens)).Replace
	t := &templates{
		before: [][]piece{compile("workflow_started", workflowStarted), compile("node_started", startStarted),
			compile("node_finished", startFinished), compile("node_started", answerStarted)},
		chunks: [][]piece{compile("message", fmt.Sprintf(message, "You said: ", "null")),
			compile("message", fmt.Sprintf(message, "hello", `["sys","query"]`))},
		after: [][]piece{compile("node_finished", fill(answerFinished)), compile("message_end", fill(messageEnd)),
			compile("workflow_finished", fill(workflowDone))},
	}
	for _, f := range fillers {
		t.chunks = append(t.chunks, compile("message", fmt.Sprintf(message, f, "null")))
	}
	return t
}

// span is one write: buf[from:to].
type span struct{ from, to int }

// stream is one connection's rendered answer, reused from request to request.
type stream struct {
	t          *templates
	ids        *ids
	buf        []byte
	scratch    []byte
	writes     []span
	firstToken int // index in writes of the first answer token
	messageID  string
	fields     [len(marks)][]byte // by mark
}

// ids hands out UUID-shaped ids, unique in this process (a random base and a counter).
type ids struct {
	base uint64
	seq  atomic.Uint64
}

func newIDs() *ids { return &ids{base: rand.Uint64()} }

// next writes a fresh id into b's storage.
func (g *ids) next(b []byte) []byte {
	n := g.seq.Add(1)
	const hex = "0123456789abcdef"
	v := g.base ^ (n * 0x9e3779b97f4a7c15)
	out := b[:0]
	for i := range 32 {
		switch i {
		case 8, 12, 16, 20:
			out = append(out, '-')
		}
		var d byte
		switch {
		case i < 16:
			d = hex[(v>>(4*uint(i)))&15]
		default:
			d = hex[(n>>(4*uint(31-i)))&15]
		}
		out = append(out, d)
	}
	return out
}

const dateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

// render lays out the whole answer: the head with the ping, the events, the last chunk.
func (s *stream) render(tokens int, conversation []byte, now time.Time) {
	f := &s.fields
	if len(conversation) > 0 {
		f[0] = append(f[0][:0], conversation...)
	} else {
		f[0] = s.ids.next(f[0])
	}
	f[1], f[2], f[3] = s.ids.next(f[1]), s.ids.next(f[2]), s.ids.next(f[3])
	f[4] = strconv.AppendInt(f[4][:0], now.Unix(), 10)
	f[5], f[6] = s.ids.next(f[5]), s.ids.next(f[6])
	s.messageID = string(f[1])

	s.buf, s.writes = s.buf[:0], s.writes[:0]
	s.buf = append(s.buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nX-Env: PRODUCTION\r\nX-Version: 1.13.3\r\nDate: "...)
	s.buf = now.UTC().AppendFormat(s.buf, dateLayout)
	s.buf = append(s.buf, "\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nevent: ping\n\n\r\n"...)
	s.cut()
	for _, e := range s.t.before {
		s.event(e)
	}
	s.firstToken = len(s.writes)
	for i := range tokens {
		s.event(s.t.chunk(i))
	}
	for _, e := range s.t.after {
		s.event(e)
	}
	s.buf = append(s.buf, "0\r\n\r\n"...)
	s.cut()
}

// cut ends a write at the buffer's end.
func (s *stream) cut() {
	from := 0
	if n := len(s.writes); n > 0 {
		from = s.writes[n-1].to
	}
	s.writes = append(s.writes, span{from, len(s.buf)})
}

// event appends one chunk, "data: " + the event's JSON + "\n\n", as one write.
func (s *stream) event(ps []piece) {
	p := append(s.scratch[:0], "data: "...)
	for _, x := range ps {
		p = append(p, x.lit...)
		if x.field >= 0 {
			p = append(p, s.fields[x.field]...)
		}
	}
	p = append(p, "\n\n"...)
	s.scratch = p
	s.buf = strconv.AppendInt(s.buf, int64(len(p)), 16)
	s.buf = append(s.buf, "\r\n"...)
	s.buf = append(s.buf, p...)
	s.buf = append(s.buf, "\r\n"...)
	s.cut()
}
