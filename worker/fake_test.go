package worker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/difyload/difyload/runner"
)

// fakeConn is an in-memory conn: what the worker sends lands in out, what
// the test pushes into in is delivered to the worker.
type fakeConn struct {
	out    chan []byte
	in     chan inbound
	mu     sync.Mutex
	closed bool
	linger time.Duration
}

func newFakeConn() *fakeConn {
	return &fakeConn{out: make(chan []byte, 100000), in: make(chan inbound, 100)}
}

func (c *fakeConn) send(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errConnClosed
	}
	select {
	case c.out <- frame:
		return nil
	default:
		return errQueueFull
	}
}

func (c *fakeConn) recv() <-chan inbound { return c.in }

func (c *fakeConn) close(linger time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.linger = linger
}

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// fakeMaster plays the master's side of one or more fakeConns.
type fakeMaster struct {
	t      *testing.T
	mu     sync.Mutex
	conns  []*fakeConn
	nodeID string
}

func (m *fakeMaster) dial(_ context.Context, _ endpoint, id string, _ *slog.Logger) (conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := newFakeConn()
	m.conns = append(m.conns, c)
	m.nodeID = id
	return c, nil
}

func (m *fakeMaster) conn() *fakeConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns[len(m.conns)-1]
}

func (m *fakeMaster) dials() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// got is one decoded frame from the worker, decoded independently of the
// worker's own decoder (msgpack/v5 with maps as map[any]any so key types
// can be checked).
type got struct {
	Type   string
	Data   any
	NodeID string
	At     time.Time
	Raw    []byte
}

func decodeForTest(t *testing.T, frame []byte) got {
	t.Helper()
	dec := msgpack.NewDecoder(bytes.NewReader(frame))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() })
	v, err := dec.DecodeInterface()
	if err != nil {
		t.Fatalf("worker sent undecodable frame %x: %v", frame, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) != 3 {
		t.Fatalf("worker sent %T %v, want an array of 3", v, v)
	}
	typ, ok1 := arr[0].(string)
	node, ok2 := arr[2].(string)
	if !ok1 || !ok2 {
		t.Fatalf("worker sent type %T node %T, want str, str", arr[0], arr[2])
	}
	return got{Type: typ, Data: arr[1], NodeID: node, At: time.Now(), Raw: frame}
}

// next returns the next frame the worker sends, waiting up to d (fake
// time inside a synctest bubble).
func (m *fakeMaster) next(d time.Duration) (got, bool) {
	m.t.Helper()
	c := m.conn()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case f := <-c.out:
		g := decodeForTest(m.t, f)
		if g.NodeID != m.nodeID {
			m.t.Fatalf("node id %q in message, identity %q", g.NodeID, m.nodeID)
		}
		return g, true
	case <-timer.C:
		return got{}, false
	}
}

// expect skips heartbeats and stats (unless asked for) until a message of
// type typ arrives within d.
func (m *fakeMaster) expect(typ string, d time.Duration) got {
	m.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			m.t.Fatalf("no %q within %v", typ, d)
		}
		g, ok := m.next(left)
		if !ok {
			m.t.Fatalf("no %q within %v", typ, d)
		}
		if g.Type == typ {
			return g
		}
		skip := g.Type == typeHeartbeat || g.Type == typeStats || g.Type == typeClientReady ||
			g.Type == typeSpawning && typ == typeSpawningComplete || g.Type == typeException
		if !skip {
			m.t.Fatalf("got %q (%v) while waiting for %q", g.Type, g.Data, typ)
		}
	}
}

// collect returns every frame sent within d.
func (m *fakeMaster) collect(d time.Duration) []got {
	m.t.Helper()
	var out []got
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return out
		}
		g, ok := m.next(left)
		if !ok {
			return out
		}
		out = append(out, g)
	}
}

// push sends a message to the worker, encoded like Python's msgpack.dumps.
func (m *fakeMaster) push(typ string, data any) {
	m.t.Helper()
	b, err := msgpack.Marshal([]any{typ, data, m.nodeID})
	if err != nil {
		m.t.Fatal(err)
	}
	m.pushRaw(b)
}

func (m *fakeMaster) pushRaw(frame []byte) { m.conn().in <- inbound{frame: frame} }

func (m *fakeMaster) pushEvent(ev peerEvent) { m.conn().in <- inbound{event: ev} }

// register consumes client_ready and acks it.
func (m *fakeMaster) register() {
	m.t.Helper()
	g := m.expect(typeClientReady, 10*time.Second)
	if v, ok := g.Data.(int8); !ok || v != -1 {
		m.t.Fatalf("client_ready data %T %v, want int -1", g.Data, g.Data)
	}
	m.push(typeAck, map[string]any{"index": 0})
}

func spawnData(ts float64, counts map[string]int, host any, stopTimeout any) map[string]any {
	ucc := map[string]any{}
	for k, v := range counts {
		ucc[k] = v
	}
	return map[string]any{
		"timestamp":          ts,
		"user_classes_count": ucc,
		"host":               host,
		"stop_timeout":       stopTimeout,
		"parsed_options":     map[string]any{"my_arg": "x", "num_users": 4, "config_users": []any{map[string]any{"a": 1}}},
	}
}

// harness runs a Worker against a fakeMaster; use inside synctest.Test.
type harness struct {
	*fakeMaster
	w      *Worker
	cancel context.CancelFunc
	errc   chan error
}

func startHarness(t *testing.T, cfg Config, classes []runner.UserClass, st StatsSource) *harness {
	t.Helper()
	m := &fakeMaster{t: t}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := newWorker(cfg, classes, st, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{fakeMaster: m, w: w, cancel: cancel, errc: make(chan error, 1)}
	go func() { h.errc <- w.Run(ctx) }()
	t.Cleanup(func() {
		// On failure paths: make sure Run and all user goroutines end
		// inside the bubble.
		cancel()
		select {
		case err := <-h.errc:
			h.errc <- err
		case <-time.After(time.Hour):
		}
	})
	for m.dials() == 0 {
		time.Sleep(time.Millisecond)
	}
	return h
}

// stop cancels Run and waits for it.
func (h *harness) stop() error {
	h.cancel()
	return h.wait(time.Minute)
}

// mustStop is stop, failing the test if Run returned an error.
func (h *harness) mustStop() {
	h.t.Helper()
	if err := h.stop(); err != nil {
		h.t.Fatal(err)
	}
}

// connect plays a transport that reports its connection, then registers.
func (h *harness) connect() {
	h.t.Helper()
	h.expect(typeClientReady, time.Second)
	h.pushEvent(evConnected)
	h.register()
}

// spawnChat spawns n ChatUsers and waits for spawning_complete.
func (h *harness) spawnChat(n int) {
	h.t.Helper()
	h.push(typeSpawn, spawnData(1, map[string]int{"ChatUser": n}, nil, nil))
	h.expect(typeSpawningComplete, time.Second)
}

func (h *harness) wait(d time.Duration) error {
	h.t.Helper()
	select {
	case err := <-h.errc:
		return err
	case <-time.After(d):
		h.t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

// mapOf converts a decoded map[any]any with string keys.
func mapOf(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[any]any)
	if !ok {
		t.Fatalf("got %T %v, want a map", v, v)
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		ks, ok := k.(string)
		if !ok {
			t.Fatalf("map key %T %v, want str", k, k)
		}
		out[ks] = v
	}
	return out
}

// toInt converts any decoded msgpack integer.
func toInt(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case int8:
		return int64(n)
	case int16:
		return int64(n)
	case int32:
		return int64(n)
	case int64:
		return n
	case uint8:
		return int64(n)
	case uint16:
		return int64(n)
	case uint32:
		return int64(n)
	case uint64:
		return int64(n)
	}
	t.Fatalf("got %T %v, want an int", v, v)
	return 0
}

func countsOf(t *testing.T, v any) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for k, n := range mapOf(t, v) {
		out[k] = toInt(t, n)
	}
	return out
}
