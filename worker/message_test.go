package worker

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/difyload/difyload/metrics"
)

const testNode = "vm_22ad0c5d6c1f4a4b9d8e7f6a5b4c3d2e"

func mustEncode(t *testing.T, typ string, data any) []byte {
	t.Helper()
	b, err := encodeMessage(typ, data, testNode)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleReport() metrics.Report {
	return metrics.Report{
		Entries: []metrics.Entry{{
			Name: "/index", Method: "GET", LastRequestTimestamp: 1795720796.919, HasLast: true,
			StartTime: 1795720794.419, NumRequests: 4, NumFailures: 1, TotalResponseTime: 3638.5,
			MaxResponseTime: 3432, MinResponseTime: 12, HasMin: true, TotalContentLength: 400,
			ResponseTimes: map[int64]int64{12: 1, 47: 1, 150: 1, 3400: 1},
			NumReqsPerSec: map[int64]int64{1795720796: 4}, NumFailPerSec: map[int64]int64{1795720796: 1},
		}},
		Total: metrics.Entry{Name: "Aggregated", StartTime: 1795720794.419}, // empty-ish: nil min/last, nil maps
		Errors: map[string]metrics.ErrorEntry{
			"4d40": {Name: "/index", Method: "GET", Error: "HTTP 500", Occurrences: 1, FirstSeen: 1795720796.5, LastSeen: 1795720796.9},
			"5e51": {Name: "/x", Method: "GET", Error: "bad \xff utf8", Occurrences: 2},
		},
	}
}

func TestEncodeEnvelopeBytes(t *testing.T) {
	t.Parallel()
	b := mustEncode(t, typeClientReady, clientReadyVersion)
	want := append([]byte{0x93, 0xac}, "client_ready"...)
	want = append(want, 0xff, 0xd9, byte(len(testNode)))
	want = append(want, testNode...)
	if !bytes.Equal(b, want) {
		t.Errorf("client_ready bytes\n got %x\nwant %x", b, want)
	}
	b = mustEncode(t, typeSpawning, nil)
	want = append([]byte{0x93, 0xa8}, "spawning"...)
	want = append(want, 0xc0, 0xd9, byte(len(testNode)))
	want = append(want, testNode...)
	if !bytes.Equal(b, want) {
		t.Errorf("spawning bytes\n got %x\nwant %x", b, want)
	}
}

func TestEncodeRejectsBadEnvelope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typ, node string }{
		{"", testNode}, {"x\xff", testNode}, {"stats", ""}, {"stats", strings.Repeat("a", 256)}, {"stats", "a\xffb"},
	} {
		if _, err := encodeMessage(tc.typ, nil, tc.node); err == nil {
			t.Errorf("encodeMessage(%q, %q) succeeded", tc.typ, tc.node)
		}
	}
}

// walk checks that no bin (0xc4-0xc6) or ext codes appear as values: a
// cheap structural scan with the worker's own decoder, which rejects ext.
func TestEncodeTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		typ   string
		data  any
		check func(t *testing.T, d any)
	}{
		{"heartbeat", typeHeartbeat, heartbeatData{State: stateRunning, CurrentCPUUsage: 3.5, CurrentMemoryUsage: 41234567}, func(t *testing.T, d any) {
			m := mapOf(t, d)
			if len(m) != 3 || m["state"] != "running" {
				t.Errorf("heartbeat %v", m)
			}
			if _, ok := m["current_cpu_usage"].(float64); !ok {
				t.Errorf("cpu %T", m["current_cpu_usage"])
			}
			if toInt(t, m["current_memory_usage"]) != 41234567 {
				t.Error("memory")
			}
		}},
		{"heartbeat zero cpu is still a float", typeHeartbeat, heartbeatData{State: stateReady}, func(t *testing.T, d any) {
			if _, ok := mapOf(t, d)["current_cpu_usage"].(float64); !ok {
				t.Errorf("cpu %T", mapOf(t, d)["current_cpu_usage"])
			}
		}},
		{"spawning_complete", typeSpawningComplete, countsData{UserClassesCount: map[string]int64{"A": 2, "B": 0}, UserCount: 2}, func(t *testing.T, d any) {
			m := mapOf(t, d)
			c := countsOf(t, m["user_classes_count"])
			if c["A"] != 2 || c["B"] != 0 || toInt(t, m["user_count"]) != 2 {
				t.Errorf("%v", m)
			}
		}},
		{"exception", typeException, exceptionData{Msg: "division by zero", Traceback: "  File \"x.go\", line 9, in f\n"}, func(t *testing.T, d any) {
			m := mapOf(t, d)
			if len(m) != 2 || m["msg"] != "division by zero" {
				t.Errorf("%v", m)
			}
		}},
		{"stats", typeStats, statsPayload(sampleReport(), map[string]int{"A": 3, "B": 1}, map[string]any{"x_llm": 1.5, "errors": "nope"}), checkStats},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := mustEncode(t, tt.typ, tt.data)
			if _, err := decodeMessage(b); err != nil {
				t.Fatalf("own decoder rejects output: %v", err)
			}
			g := decodeForTest(t, b)
			if g.Type != tt.typ || g.NodeID != testNode {
				t.Fatalf("envelope %q %q", g.Type, g.NodeID)
			}
			tt.check(t, g.Data)
		})
	}
}

// entryKeys are the keys of a stats entry, in Locust's order.
func entryKeys() []string {
	return []string{"name", "method", "last_request_timestamp", "start_time", "num_requests", "num_none_requests",
		"num_failures", "total_response_time", "max_response_time", "min_response_time", "total_content_length",
		"response_times", "num_reqs_per_sec", "num_fail_per_sec"}
}

func checkEntry(t *testing.T, v any) map[string]any {
	t.Helper()
	e := mapOf(t, v)
	if len(e) != len(entryKeys()) {
		t.Errorf("entry has %d keys, want %d: %v", len(e), len(entryKeys()), e)
	}
	for _, k := range entryKeys() {
		if _, ok := e[k]; !ok {
			t.Errorf("entry without %q", k)
		}
	}
	if _, ok := e["start_time"].(float64); !ok {
		t.Errorf("start_time %T, want float64", e["start_time"])
	}
	for _, k := range []string{"response_times", "num_reqs_per_sec", "num_fail_per_sec"} {
		m, ok := e[k].(map[any]any)
		if !ok {
			t.Errorf("%s is %T, want a map (never nil)", k, e[k])
			continue
		}
		for mk, mv := range m {
			toInt(t, mk) // int keys
			toInt(t, mv)
		}
	}
	for _, k := range []string{"num_requests", "num_none_requests", "num_failures", "total_content_length"} {
		toInt(t, e[k])
	}
	return e
}

func checkStats(t *testing.T, d any) {
	m := mapOf(t, d)
	for _, k := range statsKeys {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	if _, ok := m["x_llm"].(float64); !ok {
		t.Error("extra key lost")
	}
	entries, ok := m["stats"].([]any)
	if !ok || len(entries) != 1 {
		t.Fatalf("stats %T %v", m["stats"], m["stats"])
	}
	e := checkEntry(t, entries[0])
	if _, ok := e["min_response_time"].(float64); !ok {
		t.Errorf("min %T", e["min_response_time"])
	}
	if ts, ok := e["last_request_timestamp"].(float64); !ok || ts != 1795720796.919 {
		t.Errorf("last ts %T %v", e["last_request_timestamp"], e["last_request_timestamp"])
	}
	if rt := e["response_times"].(map[any]any); len(rt) != 4 {
		t.Errorf("response_times %v", rt)
	}
	total := checkEntry(t, m["stats_total"])
	if total["min_response_time"] != nil || total["last_request_timestamp"] != nil {
		t.Errorf("empty total min/last %v %v, want nil", total["min_response_time"], total["last_request_timestamp"])
	}
	if total["name"] != "Aggregated" || total["method"] != "" {
		t.Errorf("total name/method %v/%v", total["name"], total["method"])
	}
	errs := mapOf(t, m["errors"])
	if len(errs) != 2 {
		t.Fatalf("errors %v", errs)
	}
	e1 := mapOf(t, errs["4d40"])
	for _, k := range []string{"name", "method", "error", "occurrences", "first_seen", "last_seen"} {
		if _, ok := e1[k]; !ok {
			t.Errorf("error entry without %q", k)
		}
	}
	if toInt(t, e1["occurrences"]) != 1 || e1["error"] != "HTTP 500" {
		t.Errorf("error entry %v", e1)
	}
	e2 := mapOf(t, errs["5e51"])
	if e2["first_seen"] != nil || e2["error"] != "bad \uFFFD utf8" {
		t.Errorf("error entry 2 %v", e2)
	}
	if c := countsOf(t, m["user_classes_count"]); c["A"] != 3 || c["B"] != 1 {
		t.Errorf("counts %v", c)
	}
	if toInt(t, m["user_count"]) != 4 {
		t.Error("user_count")
	}
}

func TestStatsPayloadSanitises(t *testing.T) {
	t.Parallel()
	r := metrics.Report{Total: metrics.Entry{Name: "", StartTime: 0, TotalResponseTime: math.NaN(), MaxResponseTime: math.Inf(1), HasMin: true, MinResponseTime: math.NaN()}}
	b := mustEncode(t, typeStats, statsPayload(r, nil, nil))
	m := mapOf(t, decodeForTest(t, b).Data)
	total := checkEntry(t, m["stats_total"])
	if total["name"] != "Aggregated" || total["min_response_time"] != nil || total["total_response_time"] != 0.0 || total["max_response_time"] != 0.0 {
		t.Errorf("total %v", total)
	}
	if st := total["start_time"].(float64); st < 1e9 {
		t.Errorf("start_time %v: never 0", st)
	}
	if s, ok := m["stats"].([]any); !ok || len(s) != 0 {
		t.Errorf("stats %T %v, want []", m["stats"], m["stats"])
	}
	if e, ok := m["errors"].(map[any]any); !ok || len(e) != 0 {
		t.Errorf("errors %T %v, want {}", m["errors"], m["errors"])
	}
}

// TestPythonDecodesOutput feeds every outgoing message type to Python's
// msgpack exactly as the master decodes it, and runs 2.12.1's stats merge.
func TestPythonDecodesOutput(t *testing.T) {
	t.Parallel()
	const py = "/usr/bin/python3" // the interpreter of Debian's /usr/bin/locust
	if err := exec.CommandContext(t.Context(), py, "-c", "import msgpack, locust.stats").Run(); err != nil {
		t.Skipf("%s cannot import msgpack and locust.stats: %v", py, err)
	}
	dir := t.TempDir()
	frames := map[string][]byte{
		"client_ready": mustEncode(t, typeClientReady, clientReadyVersion),
		"heartbeat":    mustEncode(t, typeHeartbeat, heartbeatData{State: stateReady, CurrentCPUUsage: 1.25, CurrentMemoryUsage: 1 << 30}),
		"stats":        mustEncode(t, typeStats, statsPayload(sampleReport(), map[string]int{"A": 3}, nil)),
		"complete":     mustEncode(t, typeSpawningComplete, countsData{UserClassesCount: map[string]int64{"A": 3}, UserCount: 3}),
		"exception":    mustEncode(t, typeException, exceptionData{Msg: "m", Traceback: "tb"}),
	}
	for name, b := range frames {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `
import msgpack, sys, os
from locust.stats import RequestStats, StatsEntry, StatsError
d = sys.argv[1]
def load(n):
    v = msgpack.loads(open(os.path.join(d, n), "rb").read(), raw=False, strict_map_key=False)
    assert isinstance(v, list) and len(v) == 3, v
    t, data, node = v
    assert isinstance(t, str) and isinstance(node, str)
    return data
assert load("client_ready") == -1
hb = load("heartbeat"); assert isinstance(hb["current_cpu_usage"], float) and isinstance(hb["current_memory_usage"], int) and hb["state"] == "ready"
c = load("complete"); assert c["user_classes_count"] == {"A": 3}
e = load("exception"); assert e == {"msg": "m", "traceback": "tb"}
data = load("stats")
stats = RequestStats()
for s in data["stats"]:
    entry = StatsEntry.unserialize(s)
    key = (entry.name, entry.method)
    if key not in stats.entries:
        stats.entries[key] = StatsEntry(stats, entry.name, entry.method, use_response_times_cache=True)
    stats.entries[key].extend(entry)
for k, err in data["errors"].items():
    stats.errors[k] = StatsError.unserialize(err)
stats.total.extend(StatsEntry.unserialize(data["stats_total"]))
e = stats.entries[("/index", "GET")]
assert e.num_requests == 4 and e.num_failures == 1 and e.min_response_time == 12, vars(e)
assert e.response_times == {12: 1, 47: 1, 150: 1, 3400: 1}, e.response_times
assert all(isinstance(k, int) for k in e.num_reqs_per_sec)
e.get_response_time_percentile(0.95); e.median_response_time; e.current_rps
assert stats.total.min_response_time is None and stats.total.last_request_timestamp is None
print("ok")
`
	out, err := exec.CommandContext(t.Context(), py, "-c", script, dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python3 (system locust) rejected our frames: %v\n%s", err, out)
	}
}

func TestParseSpawn(t *testing.T) {
	t.Parallel()
	ok := map[string]any{"timestamp": 1.5, "user_classes_count": map[string]any{"A": int64(2), "B": int64(0)},
		"host": nil, "stop_timeout": nil, "parsed_options": map[string]any{"x": int64(1)}}
	job, err := parseSpawn(ok)
	if err != nil || job.Timestamp != 1.5 || job.Targets["A"] != 2 || job.Targets["B"] != 0 || job.Host != "" || job.StopTimeout != 0 || job.ParsedOptions["x"] != int64(1) {
		t.Fatalf("%+v %v", job, err)
	}
	for _, st := range []struct {
		in   any
		want time.Duration
	}{{int64(3), 3 * time.Second}, {2.5, 2500 * time.Millisecond}, {nil, 0}, {-1.0, 0}, {0.0, 0}} {
		m := map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{}, "stop_timeout": st.in, "host": "h"}
		job, err := parseSpawn(m)
		if err != nil || job.StopTimeout != st.want || job.Host != "h" {
			t.Errorf("stop_timeout %v → %v %v", st.in, job.StopTimeout, err)
		}
	}
	bad := []any{nil, "x", map[string]any{}, map[string]any{"timestamp": 1.0},
		map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{"A": 1.5}},
		map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{}, "host": int64(1)},
		map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{}, "stop_timeout": "1"},
		map[string]any{"timestamp": 1.0, "user_classes_count": map[string]any{}, "parsed_options": []any{}},
	}
	for _, b := range bad {
		if _, err := parseSpawn(b); err == nil {
			t.Errorf("parseSpawn(%v) accepted", b)
		}
	}
}

func TestDecodeMessage(t *testing.T) {
	t.Parallel()
	// The real ack bytes from a 2.12.1 master (docs/locust-protocol.md, "Frames").
	ack := append([]byte{0x93, 0xa3, 'a', 'c', 'k', 0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 0x00, 0xd9, byte(len(testNode))}, testNode...)
	m, err := decodeMessage(ack)
	if err != nil || m.Type != "ack" || m.NodeID != testNode || parseAckIndex(m.Data) != 0 {
		t.Fatalf("%+v %v", m, err)
	}
	// Everything msgpack/v5 produces for master-like data round-trips.
	in := []any{"spawn", map[string]any{"timestamp": 1795720794.3121073, "user_classes_count": map[string]any{"Alpha": 2, "Beta": 0},
		"host": nil, "stop_timeout": 2.0, "parsed_options": map[string]any{"tags": []any{"a"}, "b": true, "f": float32(1.5), "neg": -40000, "big": uint64(1 << 63), "bin": []byte{1}}}, testNode}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	m, err = decodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	job, err := parseSpawn(m.Data)
	if err != nil || job.Timestamp != 1795720794.3121073 || job.Targets["Alpha"] != 2 || job.StopTimeout != 2*time.Second {
		t.Fatalf("%+v %v", job, err)
	}
	po := job.ParsedOptions
	if po["neg"] != int64(-40000) || po["big"] != uint64(1<<63) || po["b"] != true || po["f"] != 1.5 || !bytes.Equal(po["bin"].([]byte), []byte{1}) {
		t.Errorf("parsed_options %#v", po)
	}
	for _, bad := range [][]byte{nil, {0x90}, {0x92, 0xa1, 'a', 0xc0}, {0x93, 0xa1, 'a', 0xc0, 0xc0, 0x00}, {0x93, 0xa0, 0xc0, 0xc0}, {0xd4, 0x01, 0x02}} {
		if _, err := decodeMessage(bad); !errors.Is(err, errMalformed) {
			t.Errorf("decodeMessage(%x) = %v, want errMalformed", bad, err)
		}
	}
}

// FuzzDecodeMessage: the decoder never panics, never recurses without
// bound, and whatever it accepts is an array of 3 with a str type. The
// kept corpus is in testdata/fuzz/FuzzDecodeMessage.
func FuzzDecodeMessage(f *testing.F) {
	ack := append([]byte{0x93, 0xa3, 'a', 'c', 'k', 0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 0x00, 0xd9, byte(len(testNode))}, testNode...)
	f.Add(ack)
	spawn, _ := msgpack.Marshal([]any{"spawn", map[string]any{"timestamp": 1.5, "user_classes_count": map[string]any{"A": 1}, "host": nil, "stop_timeout": nil, "parsed_options": map[string]any{}}, testNode})
	f.Add(spawn)
	f.Add([]byte{0x93, 0xa4, 's', 't', 'o', 'p', 0xc0, 0xa1, 'x'})
	f.Add([]byte(strings.Repeat("\x91", 64)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		if m.Type == "" {
			t.Fatal("accepted an empty type")
		}
		if m.Type == typeSpawn {
			_, _ = parseSpawn(m.Data)
		}
		_ = parseAckIndex(m.Data)
	})
}

func TestResolveEndpoint(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host string
		want string
		ipv6 bool
	}{
		{"127.0.0.1", "tcp://127.0.0.1:5557", false},
		{"::1", "tcp://[::1]:5557", true},
		{"[::1]", "tcp://[::1]:5557", true},
		{"localhost", "tcp://localhost:5557", false},
	} {
		ep := resolveEndpoint(t.Context(), tc.host, 5557)
		if ep.String() != tc.want || (tc.host != "localhost" && ep.ipv6 != tc.ipv6) {
			t.Errorf("%q → %s ipv6=%v, want %s ipv6=%v", tc.host, ep, ep.ipv6, tc.want, tc.ipv6)
		}
	}
}
