package jsonscan

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Unquote returns the contents of a raw JSON string, decoding escapes only when present.
func Unquote(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	v := raw[1 : len(raw)-1]
	if bytes.IndexByte(v, '\\') < 0 {
		return v, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Field returns the raw value of key in the top-level JSON object data, which must be
// valid JSON (json.Valid). Keys are compared after decoding escapes only when a key contains
// one. It never allocates for escape-free keys.
func Field(data []byte, key string) ([]byte, bool) {
	i := SkipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = SkipWS(data, i)
		if i >= len(data) || data[i] != '"' {
			return nil, false // '}' or malformed
		}
		kEnd := SkipString(data, i)
		if kEnd < 0 {
			return nil, false
		}
		k := data[i:kEnd]
		i = SkipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return nil, false
		}
		i = SkipWS(data, i+1)
		vEnd := SkipValue(data, i)
		if vEnd < 0 {
			return nil, false
		}
		if keyEquals(k, key) {
			return data[i:vEnd], true
		}
		i = SkipWS(data, vEnd)
		if i >= len(data) || data[i] != ',' {
			return nil, false
		}
		i++
	}
}

func keyEquals(raw []byte, key string) bool {
	if len(raw) == len(key)+2 && string(raw[1:len(raw)-1]) == key {
		return true
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	v, ok := Unquote(raw)
	return ok && string(v) == key
}

// SkipString returns the index just past the JSON string starting at data[i] == '"'.
// The closing quote is the first '"' preceded by an even run of backslashes (\uXXXX hex
// digits never contain '"' or '\'). IndexByte, not IndexAny: IndexAny builds its byte set
// on every call, which cost more than the scan on Dify's many short strings.
func SkipString(data []byte, i int) int {
	i++
	for {
		k := bytes.IndexByte(data[i:], '"')
		if k < 0 {
			return -1
		}
		j := i + k
		n := 0
		for p := j - 1; p >= i && data[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// SkipValue returns the index just past the JSON value starting at data[i].
func SkipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return SkipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = SkipString(data, i)
				if i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default: // number, true, false, null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// Fields stores in vals[i] the raw value of the top-level key keys[i] of the valid JSON
// object data (nil when absent). ok is false when data is not an object or a key holds an
// escape or matches a wanted key only case-insensitively.
func Fields(data []byte, keys []string, vals [][]byte) bool {
	i := SkipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i++
	for {
		i = SkipWS(data, i)
		if i < len(data) && data[i] == '}' {
			return true
		}
		if i >= len(data) || data[i] != '"' {
			return false
		}
		kEnd := SkipString(data, i)
		if kEnd < 0 {
			return false
		}
		k := data[i+1 : kEnd-1]
		if bytes.IndexByte(k, '\\') >= 0 {
			return false
		}
		i = SkipWS(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = SkipWS(data, i+1)
		vEnd := SkipValue(data, i)
		if vEnd < 0 {
			return false
		}
		for n, key := range keys {
			if string(k) == key {
				if vals[n] == nil {
					vals[n] = data[i:vEnd]
				}
			} else if len(k) == len(key) && bytes.EqualFold(k, []byte(key)) {
				return false
			}
		}
		i = SkipWS(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i++
		}
	}
}

// String decodes an optional JSON string value: absent or null → "". ok is false for other
// types and for strings with escapes.
func String(raw []byte) (string, bool) {
	if raw == nil || IsNull(raw) {
		return "", true
	}
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}

// Number decodes an optional JSON number: absent or null → (0, false, true).
func Number(raw []byte) (v float64, present, ok bool) {
	if raw == nil || IsNull(raw) {
		return 0, false, true
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, false, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false, false
	}
	return f, true, true
}

// IsNull reports whether raw is the JSON literal null.
func IsNull(raw []byte) bool { return string(raw) == "null" }
