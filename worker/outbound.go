package worker

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/difyload/difyload/metrics"
)

// Every frame the worker sends is built by encodeMessage from one
// of the typed payloads below; nothing else writes to the socket. The rules
// that keep a master's listener alive (docs/locust-protocol.md, "Frames"):
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
//
//nolint:gochecknoglobals // read-only; an array (a copy when ranged or passed), and the tests range over the same list.
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
