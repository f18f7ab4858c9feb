//go:build goczmq

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/zeromq/goczmq"
)

// Master faults. SIGKILL and restart of the master is covered, for both masters and with
// the "within 10 s" bound, by worker/integration_test.go (TestIntegrationMasterRestart).

// TestMasterQuit: a headless master quits at the end of its run. A worker without
// --wait-for-new-master flushes and exits 0; one with it stays, re-registers with the next
// master on the same port (same process), runs its users, and exits 0 on SIGTERM.
func TestMasterQuit(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			e := testEnv
			mk := e.startMock(t, "--ttft", "20ms", "--token-delay", "2ms", "--tokens", "3", "--retrieval-latency", "5ms")
			m1 := e.startMaster(t, masterOpts{version: version, headless: true, users: 4, rate: 4, runTime: "4s", expect: 2, host: mk.URL})
			plain := e.startWorker(t, m1, "--node-id", "plain-worker", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "info")
			stay := e.startWorker(t, m1, "--node-id", "staying-worker", "--wait-for-new-master", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--log-level", "info")
			m1.wait(t, 90*time.Second)

			if code := plain.exitCode(t, 15*time.Second); code != 0 {
				t.Errorf("worker exit code %d after the master's quit, want 0", code)
			}
			waitFor(t, 10*time.Second, "the staying worker to wait for a new master", func() bool {
				return strings.Contains(stay.Output(), "waiting for a new master")
			})
			if stay.Exited() {
				t.Fatalf("the worker with --wait-for-new-master exited:\n%s", stay.Tail(30))
			}
			for _, name := range []string{"plain-worker", "staying-worker"} {
				if !strings.Contains(m1.Output(), name) {
					t.Errorf("master log never mentions %s", name)
				}
			}

			// A new master on the same port: the same worker process registers within 10 s
			// of the new master's web UI being up.
			m2 := e.startMasterOnPort(t, version, mk.URL, m1.port)
			w := m2.web()
			waitFor(t, 60*time.Second, "the new master's web UI", func() bool { _, ok := w.stats(t); return ok })
			start := time.Now()
			w.waitReady(t, 10*time.Second, "staying-worker")
			t.Logf("re-registered %v after the new master's UI came up", time.Since(start).Round(time.Millisecond))
			w.swarm(t, 2, 2, "")
			waitFor(t, 20*time.Second, "2 users on the new master", func() bool {
				s, ok := w.stats(t)
				st, _ := s.worker("staying-worker")
				return ok && s.UserCount == 2 && st == "running"
			})
			stay.signal(syscall.SIGTERM)
			if code := stay.exitCode(t, 15*time.Second); code != 0 {
				t.Errorf("worker exit code %d after SIGTERM, want 0", code)
			}
			waitFor(t, 10*time.Second, "the worker to leave the new master's list", func() bool {
				s, ok := w.stats(t)
				_, found := s.worker("staying-worker")
				return ok && !found
			})
		})
	}
}

// startMasterOnPort starts a web-UI master bound to a given worker port.
func (e *env) startMasterOnPort(t *testing.T, version, host string, port int) *master {
	t.Helper()
	return e.startMaster(t, masterOpts{version: version, host: host, port: port})
}

// TestMasterUnreachableAtStart: with no master, the worker says so in its log at info level
// while it retries, and gives up with a non-zero exit and a clear error after
// --connect-timeout.
func TestMasterUnreachableAtStart(t *testing.T) {
	e := testEnv
	port := closedPort(t)
	began := time.Now()
	p := start(t, "worker", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", strconv.Itoa(port),
		"--connect-timeout", "7s", "--log-level", "info"})
	code := p.exitCode(t, 60*time.Second)
	took := time.Since(began)
	out := p.Output()
	if code == 0 {
		t.Errorf("exit code 0 without a master, want non-zero")
	}
	if took < 7*time.Second {
		t.Errorf("gave up after %v, before --connect-timeout 7s", took)
	}
	for _, want := range []string{
		"connecting to master",
		"no answer from master yet; retrying",
		fmt.Sprintf("no ack from master at tcp://127.0.0.1:%d within 7s", port),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("worker output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("exit %d after %v:\n%s", code, took.Round(time.Millisecond), out)
}

// fakeMaster is a ZeroMQ ROUTER that plays a master badly: it sends malformed and
// unexpected frames. Everything the worker sends back is checked against the rules that
// keep a real master's listener alive (worker/doc.go, "Messages").
type fakeMaster struct {
	t        *testing.T
	sock     *goczmq.Sock
	identity []byte
	nodeID   string
	acked    bool
	seen     map[string]int
}

func newFakeMaster(t *testing.T, port int, nodeID string) *fakeMaster {
	t.Helper()
	sock, err := goczmq.NewRouter(fmt.Sprintf("tcp://127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("ROUTER: %v", err)
	}
	sock.SetOption(goczmq.SockSetRcvtimeo(100))
	sock.SetOption(goczmq.SockSetLinger(0))
	t.Cleanup(sock.Destroy)
	return &fakeMaster{t: t, sock: sock, nodeID: nodeID, seen: map[string]int{}}
}

// recv returns the next message from the worker, checked; "" on timeout.
func (f *fakeMaster) recv() (string, any) {
	t := f.t
	t.Helper()
	parts, err := f.sock.RecvMessage()
	if err != nil || len(parts) == 0 {
		return "", nil
	}
	if len(parts) != 2 {
		t.Errorf("worker sent a %d-part message, want identity + 1 frame", len(parts)-1)
		return "", nil
	}
	f.identity = parts[0]
	typ, data, err := checkWorkerFrame(parts[1], f.nodeID)
	if err != nil {
		t.Errorf("worker sent a frame that could break a master: %v (% x)", err, parts[1][:min(len(parts[1]), 64)])
		return "", nil
	}
	f.seen[typ]++
	if !f.acked {
		switch typ {
		// (client_stopped from an unknown node is only a warning at the master, and it is
		// what a Python worker answers to a stop in any state.)
		case "spawning", "spawning_complete":
			t.Errorf("worker sent %s before it was acked (a master that does not know it dies on that)", typ)
		}
	}
	return typ, data
}

// until reads messages until want arrives (returned) or limit passes.
func (f *fakeMaster) until(want string, limit time.Duration) any {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if typ, data := f.recv(); typ == want {
			return data
		}
	}
	f.t.Fatalf("no %s from the worker within %v (seen %v)", want, limit, f.seen)
	return nil
}

func (f *fakeMaster) sendRaw(frame []byte) {
	f.t.Helper()
	if f.identity == nil {
		f.t.Fatal("no worker identity yet")
	}
	if err := f.sock.SendMessage([][]byte{f.identity, frame}); err != nil {
		f.t.Fatalf("send: %v", err)
	}
}

func (f *fakeMaster) send(typ string, data any) {
	f.t.Helper()
	b, err := msgpack.Marshal([]any{typ, data, f.nodeID})
	if err != nil {
		f.t.Fatal(err)
	}
	f.sendRaw(b)
}

// checkWorkerFrame decodes one frame the worker sent and checks the listener-killer rules:
// a msgpack array of exactly 3, str type and node id (valid UTF-8), a known type, and the
// mandatory keys of each payload.
func checkWorkerFrame(frame []byte, nodeID string) (string, any, error) {
	var msg []any
	r := bytes.NewReader(frame)
	dec := msgpack.NewDecoder(r)
	dec.UseLooseInterfaceDecoding(true)
	// Maps with str keys become map[string]any, others (response_times: int keys) stay
	// map[any]any, as Python would decode them.
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) {
		m, err := d.DecodeUntypedMap()
		if err != nil {
			return nil, err
		}
		sm := make(map[string]any, len(m))
		for k, v := range m {
			ks, ok := k.(string)
			if !ok {
				return m, nil
			}
			sm[ks] = v
		}
		return sm, nil
	})
	if err := dec.Decode(&msg); err != nil {
		return "", nil, fmt.Errorf("not msgpack: %w", err)
	}
	if r.Len() != 0 {
		return "", nil, errors.New("trailing bytes after the message")
	}
	if len(msg) != 3 {
		return "", nil, fmt.Errorf("array of %d, want 3", len(msg))
	}
	typ, ok1 := msg[0].(string)
	id, ok2 := msg[2].(string)
	if !ok1 || !ok2 || !utf8.ValidString(typ) || !utf8.ValidString(id) {
		return "", nil, fmt.Errorf("type %T / node id %T not valid str", msg[0], msg[2])
	}
	if id != nodeID {
		return "", nil, fmt.Errorf("node id %q, want %q", id, nodeID)
	}
	data := msg[1]
	asMap := func(keys ...string) error {
		m, ok := data.(map[string]any)
		if !ok {
			return fmt.Errorf("%s data is %T, want a map", typ, data)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				return fmt.Errorf("%s lacks mandatory key %q", typ, k)
			}
		}
		return nil
	}
	switch typ {
	case "client_ready":
		if s, ok := data.(string); ok && s != "" {
			return typ, data, nil
		}
		if n, ok := data.(int64); !ok || n != -1 {
			return "", nil, fmt.Errorf("client_ready data %#v, want -1 or a version str", data)
		}
	case "heartbeat":
		if err := asMap("state", "current_cpu_usage", "current_memory_usage"); err != nil {
			return "", nil, err
		}
		switch data.(map[string]any)["state"] {
		case "ready", "spawning", "running":
		default:
			return "", nil, fmt.Errorf("heartbeat state %v", data.(map[string]any)["state"])
		}
	case "stats":
		if err := asMap("stats", "stats_total", "errors", "user_classes_count", "user_count"); err != nil {
			return "", nil, err
		}
	case "spawning_complete":
		if err := asMap("user_classes_count", "user_count"); err != nil {
			return "", nil, err
		}
	case "exception":
		if err := asMap("msg", "traceback"); err != nil {
			return "", nil, err
		}
	case "spawning", "client_stopped", "quit":
		if data != nil {
			return "", nil, fmt.Errorf("%s data %#v, want nil", typ, data)
		}
	case "difyload_llm":
	default:
		return "", nil, fmt.Errorf("unknown message type %q", typ)
	}
	return typ, data, nil
}

// TestMalformedMasterMessages sends a worker process every kind of malformed or unexpected
// frame a broken or hostile master could send, before and after registration. The worker
// logs and ignores each one, keeps its heartbeat, still registers and runs users when a
// valid ack and spawn follow, and never sends a frame a real master would die on.
func TestMalformedMasterMessages(t *testing.T) {
	e := testEnv
	mk := e.startMock(t, "--ttft", "10ms", "--token-delay", "1ms", "--tokens", "3", "--retrieval-latency", "5ms")
	port := freePort(t)
	const id = "garbage-worker"
	fm := newFakeMaster(t, port, id)
	p := start(t, "worker", e.workDir, []string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", strconv.Itoa(port),
		"--node-id", id, "--log-level", "debug", "--chat-wait", "0.05-0.1", "--retrieve-wait", "0.05-0.1", "--connect-timeout", "1m"})
	fm.until("client_ready", 20*time.Second)

	nested := bytes.Repeat([]byte{0x91}, 200000) // [[[[…]]]] 200,000 deep
	huge := bytes.Repeat([]byte{0xff}, 4<<20)
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	garbage := [][]byte{
		{},                                 // empty frame
		[]byte("hello, worker"),            // not msgpack
		{0xc1},                             // never-used msgpack byte
		mp(nil),                            // nil
		mp(map[string]any{"a": 1}),         // not an array
		mp([]any{"ack", map[string]any{}}), // array of 2
		mp([]any{"ack", nil, id, "extra"}), // array of 4
		mp([]any{42, nil, id}),             // int type
		mp([]any{"ack", nil, 42}),          // int node id
		mp([]any{[]byte("ack"), nil, id}),  // bin type
		{0x93, 0xa3, 0xff, 0xfe, 0xfd, 0xc0, 0xa1, 'x'}, // invalid UTF-8 type
		nested, // deep nesting
		huge,   // 4 MiB of junk
		{0x93, 0xa3, 'a', 'c', 'k', 0xdf, 0xff, 0xff, 0xff, 0xff}, // map claiming 4G entries
		{0x93, 0xa3, 'a', 'c', 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff}, // str claiming 2 GiB
		{0xd4, 0x01, 0x02}, // ext type
		mp([]any{"bogus_type", map[string]any{"x": 1}, id}),
		mp([]any{"spawn", nil, id}), // spawn with no data
		mp([]any{"spawn", "nonsense", id}),
		mp([]any{"spawn", map[string]any{"timestamp": "soon", "user_classes_count": 5}, id}),
		mp([]any{"stop", nil, id}), // stop while not running
		mp([]any{"heartbeat", "odd", id}),
	}
	for _, g := range garbage {
		fm.sendRaw(g)
	}
	// Still alive and talking: heartbeats continue, and it still wants an ack.
	fm.until("heartbeat", 10*time.Second)
	fm.until("client_ready", 15*time.Second)
	if p.Exited() {
		t.Fatalf("the worker died on garbage:\n%s", p.Tail(40))
	}

	fm.send("ack", map[string]any{"index": 0})
	fm.acked = true
	// More garbage while registered, including an ack with nonsense data and a spawn for
	// classes the worker does not have.
	fm.send("ack", "not a map")
	fm.send("spawn", map[string]any{"timestamp": 0.5, "user_classes_count": map[string]any{"ChatUser": -5},
		"host": mk.URL, "stop_timeout": nil, "parsed_options": map[string]any{}})
	fm.send("spawn", map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{"NoSuchUser": 3, "ChatUser": 0},
		"host": mk.URL, "stop_timeout": nil, "parsed_options": map[string]any{}})
	if n, _ := fm.until("spawning_complete", 10*time.Second).(map[string]any)["user_count"].(int64); n != 0 {
		t.Errorf("a spawn of unknown classes started %d users", n)
	}
	for _, g := range garbage[:12] {
		fm.sendRaw(g)
	}
	// A valid spawn runs users against the mock.
	fm.send("spawn", map[string]any{"timestamp": 2.0, "user_classes_count": map[string]any{"ChatUser": 1, "RetrieveUser": 1},
		"host": mk.URL, "stop_timeout": 2.0, "parsed_options": map[string]any{}})
	data := fm.until("spawning_complete", 10*time.Second)
	if n, _ := data.(map[string]any)["user_count"].(int64); n != 2 {
		t.Errorf("spawning_complete %v, want user_count 2", data)
	}
	waitFor(t, 15*time.Second, "load at the mock", func() bool {
		tr := mk.truth(t)
		return tr.Counts["chat-messages"]["ok"] > 0 && tr.Counts["retrieve"]["ok"] > 0
	})
	var reqs int64
	deadline := time.Now().Add(10 * time.Second)
	for reqs == 0 && time.Now().Before(deadline) {
		if typ, d := fm.recv(); typ == "stats" {
			for _, e := range d.(map[string]any)["stats"].([]any) {
				n, _ := e.(map[string]any)["num_requests"].(int64)
				reqs += n
			}
		}
	}
	if reqs == 0 {
		t.Errorf("no requests in the worker's stats after the valid spawn")
	}
	fm.send("stop", nil)
	fm.until("client_stopped", 10*time.Second)
	fm.acked = false
	fm.until("client_ready", 15*time.Second)
	fm.send("ack", map[string]any{"index": 0})
	fm.acked = true
	fm.send("quit", nil)
	fm.until("quit", 10*time.Second)
	if code := p.exitCode(t, 15*time.Second); code != 0 {
		t.Errorf("worker exit code %d after quit, want 0", code)
	}
	out := p.Output()
	if !strings.Contains(out, "ignoring malformed frame from master") {
		t.Errorf("the worker did not log the malformed frames:\n%s", tail(out, 40))
	}
	if strings.Contains(out, "panic") {
		t.Errorf("worker output mentions a panic:\n%s", tail(out, 60))
	}
	t.Logf("messages from the worker: %v", fm.seen)
}
