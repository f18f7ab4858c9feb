package worker

// Frames from the master: decodeMessage (a bounded msgpack decoder of our own),
// then the parsing of the messages the protocol uses.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxDecodeDeep bounds the nesting of a frame: frames may be large, never deep.
const maxDecodeDeep = 32

// message is one decoded protocol message: Locust's Message(type, data, node_id).
type message struct {
	Type   string
	Data   any
	NodeID string
}

var errMalformed = errors.New("malformed message")

// decodeMessage decodes one frame from the master. It never panics and
// never allocates much more than the frame: the decoder is hand written
// (bounded nesting depth, every length checked against the bytes left)
// because a generic recursive decoder can be driven into a stack overflow,
// which Go cannot recover from.
func decodeMessage(frame []byte) (message, error) {
	if len(frame) == 0 {
		return message{}, fmt.Errorf("%w: empty frame", errMalformed)
	}
	if err := checkFrameSize(frame); err != nil {
		return message{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	d := mpDecoder{b: frame}
	v, err := d.value(0)
	if err != nil {
		return message{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if d.off != len(d.b) {
		return message{}, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(d.b)-d.off)
	}
	arr, ok := v.([]any)
	if !ok {
		return message{}, fmt.Errorf("%w: top level is %T, want an array of 3", errMalformed, v)
	}
	if len(arr) != 3 {
		return message{}, fmt.Errorf("%w: array of %d, want 3", errMalformed, len(arr))
	}
	typ, ok := arr[0].(string)
	if !ok || typ == "" {
		return message{}, fmt.Errorf("%w: type is %T, want a non-empty str", errMalformed, arr[0])
	}
	var node string
	switch n := arr[2].(type) {
	case string:
		node = n
	case nil:
	default:
		return message{}, fmt.Errorf("%w: node_id is %T, want str", errMalformed, arr[2])
	}
	return message{Type: typ, Data: arr[1], NodeID: node}, nil
}

// mpDecoder decodes the msgpack subset Python's msgpack.dumps produces
// (ext types are rejected). Values: nil, bool, int64, uint64 (> MaxInt64
// only), float64, string (str family, invalid UTF-8 rejected), []byte (bin),
// []any, map[string]any (non-string keys are formatted with strconv/fmt).
type mpDecoder struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of frame")

func (d *mpDecoder) need(n int) ([]byte, error) {
	if n < 0 || n > len(d.b)-d.off {
		return nil, errShort
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

func (d *mpDecoder) uint(n int) (uint64, error) {
	p, err := d.need(n)
	if err != nil {
		return 0, err
	}
	switch n {
	case 1:
		return uint64(p[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(p)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(p)), nil
	default:
		return binary.BigEndian.Uint64(p), nil
	}
}

func (d *mpDecoder) value(depth int) (any, error) {
	if depth > maxDecodeDeep {
		return nil, fmt.Errorf("nesting deeper than %d", maxDecodeDeep)
	}
	p, err := d.need(1)
	if err != nil {
		return nil, err
	}
	c := p[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0x80 && c <= 0x8f:
		return d.mapN(int(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return d.arrayN(int(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		return d.str(int(c & 0x1f))
	}
	switch c {
	case 0xc0:
		return nil, nil
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	case 0xc4, 0xc5, 0xc6: // bin 8/16/32
		n, err := d.uint(1 << (c - 0xc4))
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.b)-d.off) {
			return nil, errShort
		}
		raw, _ := d.need(int(n))
		return append([]byte(nil), raw...), nil
	case 0xca:
		u, err := d.uint(4)
		return float64(math.Float32frombits(uint32(u))), err
	case 0xcb:
		u, err := d.uint(8)
		return math.Float64frombits(u), err
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8/16/32/64
		u, err := d.uint(1 << (c - 0xcc))
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return u, nil
		}
		return int64(u), nil
	case 0xd0:
		u, err := d.uint(1)
		return int64(int8(u)), err
	case 0xd1:
		u, err := d.uint(2)
		return int64(int16(u)), err
	case 0xd2:
		u, err := d.uint(4)
		return int64(int32(u)), err
	case 0xd3:
		u, err := d.uint(8)
		return int64(u), err
	case 0xd9, 0xda, 0xdb: // str 8/16/32
		n, err := d.uint(1 << (c - 0xd9))
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.b)-d.off) {
			return nil, errShort
		}
		return d.str(int(n))
	case 0xdc, 0xdd: // array 16/32
		n, err := d.uint(2 << (c - 0xdc))
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.b)-d.off) { // every element is at least one byte
			return nil, errShort
		}
		return d.arrayN(int(n), depth)
	case 0xde, 0xdf: // map 16/32
		n, err := d.uint(2 << (c - 0xde))
		if err != nil {
			return nil, err
		}
		if n > uint64(len(d.b)-d.off)/2 { // every pair is at least two bytes
			return nil, errShort
		}
		return d.mapN(int(n), depth)
	}
	return nil, fmt.Errorf("unsupported msgpack code 0x%02x", c) // ext types, 0xc1
}

func (d *mpDecoder) str(n int) (string, error) {
	p, err := d.need(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(p) {
		return "", errors.New("str is not valid UTF-8")
	}
	return string(p), nil
}

func (d *mpDecoder) arrayN(n, depth int) ([]any, error) {
	if n > len(d.b)-d.off {
		return nil, errShort
	}
	out := make([]any, 0, n)
	for range n {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *mpDecoder) mapN(n, depth int) (map[string]any, error) {
	if n > (len(d.b)-d.off)/2 {
		return nil, errShort
	}
	out := make(map[string]any, n)
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[mapKey(k)] = v
	}
	return out, nil
}

// mapKey turns a decoded key into a string key. Master → worker maps only
// have str keys; other keys (custom messages) are formatted, not rejected.
func mapKey(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case int64:
		return strconv.FormatInt(k, 10)
	case nil:
		return "None"
	default:
		return fmt.Sprint(k)
	}
}

// asInt64 converts a decoded integer (or integral float) to int64.
func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		if n == math.Trunc(n) && n >= math.MinInt64 && n <= math.MaxInt64 && !math.IsInf(n, 0) {
			return int64(n), true
		}
	}
	return 0, false
}

// asFloat64 converts a decoded number to float64.
func asFloat64(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		if math.IsNaN(n) {
			return 0, false
		}
		return n, true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

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
