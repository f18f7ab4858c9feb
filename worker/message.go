package worker

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/difyload/difyload/metrics"
)

// Worker states as the master expects them in heartbeats (exactly these).
const (
	stateReady    = "ready"
	stateSpawning = "spawning"
	stateRunning  = "running"
)

// Message types.
const (
	typeClientReady      = "client_ready"
	typeHeartbeat        = "heartbeat"
	typeStats            = "stats"
	typeSpawning         = "spawning"
	typeSpawningComplete = "spawning_complete"
	typeClientStopped    = "client_stopped"
	typeQuit             = "quit"
	typeException        = "exception"
	typeLogs             = "logs" // 2.29+: the master's Logs tab

	typeAck       = "ack"
	typeSpawn     = "spawn"
	typeStop      = "stop"
	typeReconnect = "reconnect"
)

// clientReadyVersion is what client_ready carries: int -1, which every
// master accepts silently (a str would be compared with the master's
// version; Debian 2.12.1 rejects its own empty version string).
const clientReadyVersion = -1

// ---------------------------------------------------------------------------
// Outgoing. Every frame the worker sends is built by encodeMessage from one
// of the typed payloads below; nothing else writes to the socket. The rules
// that keep a master's listener alive (protocol notes §2, §4, §8):
//   - array of exactly 3: [type str, data, node_id str];
//   - strings are msgpack str (never bin) and valid UTF-8;
//   - response_times / num_*_per_sec have int keys;
//   - None where Python has None (min_response_time, last_request_timestamp);
//   - timestamps are float64, counts are ints;
//   - mandatory keys are always present (heartbeat current_cpu_usage, the
//     5 stats keys, exception msg/traceback, spawning_complete
//     user_classes_count).

// encodeMessage encodes [typ, data, nodeID]. data must be one of the
// payload types of this file, nil or an int.
func encodeMessage(typ string, data any, nodeID string) ([]byte, error) {
	if typ == "" || !utf8.ValidString(typ) {
		return nil, fmt.Errorf("encode %q: invalid message type", typ)
	}
	if nodeID == "" || len(nodeID) > 255 || !utf8.ValidString(nodeID) {
		return nil, fmt.Errorf("encode %s: invalid node id %q", typ, nodeID)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.UseCompactFloats(false)
	enc.SetSortMapKeys(true)
	if err := enc.EncodeArrayLen(3); err != nil {
		return nil, err
	}
	if err := enc.EncodeString(typ); err != nil {
		return nil, err
	}
	if err := enc.Encode(data); err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	if err := enc.EncodeString(nodeID); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// heartbeatData is the heartbeat payload; current_cpu_usage is mandatory
// (the master's listener dies without it).
type heartbeatData struct {
	State              string  `msgpack:"state"`
	CurrentCPUUsage    float64 `msgpack:"current_cpu_usage"`
	CurrentMemoryUsage int64   `msgpack:"current_memory_usage"`
}

// countsData is the spawning_complete payload.
type countsData struct {
	UserClassesCount map[string]int64 `msgpack:"user_classes_count"`
	UserCount        int64            `msgpack:"user_count"`
}

// logsData is the logs payload: the worker's recent lines, all of them each
// time (the master replaces what it had for worker_id).
type logsData struct {
	WorkerID string   `msgpack:"worker_id"`
	Logs     []string `msgpack:"logs"`
}

// exceptionData is the exception payload (both keys mandatory).
type exceptionData struct {
	Msg       string `msgpack:"msg"`
	Traceback string `msgpack:"traceback"`
}

// wireEntry is a StatsEntry with exactly the keys of StatsEntryDict.
type wireEntry struct {
	Name                 string          `msgpack:"name"`
	Method               string          `msgpack:"method"`
	LastRequestTimestamp *float64        `msgpack:"last_request_timestamp"`
	StartTime            float64         `msgpack:"start_time"`
	NumRequests          int64           `msgpack:"num_requests"`
	NumNoneRequests      int64           `msgpack:"num_none_requests"`
	NumFailures          int64           `msgpack:"num_failures"`
	TotalResponseTime    float64         `msgpack:"total_response_time"`
	MaxResponseTime      float64         `msgpack:"max_response_time"`
	MinResponseTime      *float64        `msgpack:"min_response_time"`
	TotalContentLength   int64           `msgpack:"total_content_length"`
	ResponseTimes        map[int64]int64 `msgpack:"response_times"`
	NumReqsPerSec        map[int64]int64 `msgpack:"num_reqs_per_sec"`
	NumFailPerSec        map[int64]int64 `msgpack:"num_fail_per_sec"`
}

// wireError is a StatsError. first_seen/last_seen are 2.44+ keys; 2.12.1's
// StatsError.unserialize reads only method/name/error/occurrences, and the
// master's report handler only adds occurrences, so they are harmless there.
type wireError struct {
	Name        string   `msgpack:"name"`
	Method      string   `msgpack:"method"`
	Error       string   `msgpack:"error"`
	Occurrences int64    `msgpack:"occurrences"`
	FirstSeen   *float64 `msgpack:"first_seen"`
	LastSeen    *float64 `msgpack:"last_seen"`
}

// Keys of the stats payload that Extras may not override.
var statsKeys = [...]string{"stats", "stats_total", "errors", "user_classes_count", "user_count"}

// statsPayload builds the stats message data: all five keys always, plus
// extras (never overriding the five). The returned map is encoded with
// sorted keys.
func statsPayload(r metrics.Report, counts map[string]int, extras map[string]any) map[string]any {
	entries := make([]wireEntry, 0, len(r.Entries))
	for _, e := range r.Entries {
		entries = append(entries, toWireEntry(e))
	}
	total := r.Total
	if total.Name == "" {
		total.Name = "Aggregated"
	}
	errs := make(map[string]wireError, len(r.Errors))
	for k, e := range r.Errors {
		we := wireError{
			Name:        clean(e.Name),
			Method:      clean(e.Method),
			Error:       clean(e.Error),
			Occurrences: e.Occurrences,
		}
		if e.FirstSeen > 0 && finite(e.FirstSeen) {
			we.FirstSeen = ptr(e.FirstSeen)
		}
		if e.LastSeen > 0 && finite(e.LastSeen) {
			we.LastSeen = ptr(e.LastSeen)
		}
		errs[clean(k)] = we
	}
	cc, sum := wireCounts(counts)
	data := make(map[string]any, len(statsKeys)+len(extras))
	for k, v := range extras {
		if !utf8.ValidString(k) {
			continue
		}
		data[k] = v
	}
	data["stats"] = entries
	data["stats_total"] = toWireEntry(total)
	data["errors"] = errs
	data["user_classes_count"] = cc
	data["user_count"] = sum
	return data
}

func toWireEntry(e metrics.Entry) wireEntry {
	w := wireEntry{
		Name:               clean(e.Name),
		Method:             clean(e.Method),
		StartTime:          e.StartTime,
		NumRequests:        e.NumRequests,
		NumNoneRequests:    e.NumNoneRequests,
		NumFailures:        e.NumFailures,
		TotalResponseTime:  finiteOr0(e.TotalResponseTime),
		MaxResponseTime:    finiteOr0(e.MaxResponseTime),
		TotalContentLength: e.TotalContentLength,
		ResponseTimes:      nonNil(e.ResponseTimes),
		NumReqsPerSec:      nonNil(e.NumReqsPerSec),
		NumFailPerSec:      nonNil(e.NumFailPerSec),
	}
	if !finite(w.StartTime) || w.StartTime <= 0 {
		// The master keeps the minimum start_time; 0 would break total RPS.
		w.StartTime = float64(time.Now().UnixNano()) / 1e9
	}
	if e.HasLast && finite(e.LastRequestTimestamp) {
		w.LastRequestTimestamp = ptr(e.LastRequestTimestamp)
	}
	if e.HasMin && finite(e.MinResponseTime) {
		w.MinResponseTime = ptr(e.MinResponseTime)
	}
	return w
}

// wireCounts converts per-class counts (every class, zeros included) and sums them.
func wireCounts(counts map[string]int) (map[string]int64, int64) {
	out := make(map[string]int64, len(counts))
	var sum int64
	for k, v := range counts {
		out[clean(k)] = int64(v)
		sum += int64(v)
	}
	return out, sum
}

func nonNil(m map[int64]int64) map[int64]int64 {
	if m == nil {
		return map[int64]int64{}
	}
	return m
}

func ptr(f float64) *float64 { return &f }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finiteOr0(f float64) float64 {
	if finite(f) {
		return f
	}
	return 0
}

// clean makes s valid UTF-8 so the master's raw=False decode cannot fail.
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// ---------------------------------------------------------------------------
// Incoming.

// spawnJob is a decoded spawn message.
type spawnJob struct {
	Timestamp     float64
	Targets       map[string]int
	Host          string
	StopTimeout   time.Duration
	ParsedOptions map[string]any
}

// parseSpawn validates a spawn payload. Only timestamp and
// user_classes_count are mandatory; host, stop_timeout and parsed_options
// default to "", 0 and nil.
func parseSpawn(data any) (spawnJob, error) {
	m, ok := data.(map[string]any)
	if !ok {
		return spawnJob{}, fmt.Errorf("spawn data is %T, want a map", data)
	}
	var job spawnJob
	ts, ok := asFloat64(m["timestamp"])
	if !ok {
		return spawnJob{}, fmt.Errorf("spawn timestamp is %T, want a number", m["timestamp"])
	}
	job.Timestamp = ts
	ucc, ok := m["user_classes_count"].(map[string]any)
	if !ok {
		return spawnJob{}, fmt.Errorf("spawn user_classes_count is %T, want a map", m["user_classes_count"])
	}
	job.Targets = make(map[string]int, len(ucc))
	for name, v := range ucc {
		n, ok := asInt64(v)
		if !ok || n < 0 || n > math.MaxInt32 {
			return spawnJob{}, fmt.Errorf("spawn count for %q is %v, want a non-negative int", name, v)
		}
		job.Targets[name] = int(n)
	}
	switch h := m["host"].(type) {
	case nil:
	case string:
		job.Host = h
	default:
		return spawnJob{}, fmt.Errorf("spawn host is %T, want str or None", h)
	}
	switch st := m["stop_timeout"].(type) {
	case nil:
	default:
		f, ok := asFloat64(st)
		if !ok {
			return spawnJob{}, fmt.Errorf("spawn stop_timeout is %T, want a number or None", st)
		}
		job.StopTimeout = secondsToDuration(f)
	}
	switch po := m["parsed_options"].(type) {
	case nil:
	case map[string]any:
		job.ParsedOptions = po
	default:
		return spawnJob{}, fmt.Errorf("spawn parsed_options is %T, want a map", po)
	}
	return job, nil
}

// secondsToDuration converts wire seconds, clamping negatives to 0 and
// huge values to a day.
func secondsToDuration(s float64) time.Duration {
	switch {
	case !(s > 0):
		return 0
	case s > 86400:
		return 24 * time.Hour
	}
	return time.Duration(s * float64(time.Second))
}

// parseAckIndex returns the ack's index, or -1 when absent (masters ≤ 2.10.2).
func parseAckIndex(data any) int {
	m, ok := data.(map[string]any)
	if !ok {
		return -1
	}
	n, ok := asInt64(m["index"])
	if !ok {
		return -1
	}
	return int(n)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
