package metrics

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPyRepr(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", `''`},
		{"abc", `'abc'`},
		{"HTTP 429 too_many_requests", `'HTTP 429 too_many_requests'`},
		{"it's", `"it's"`},
		{`say "hi"`, `'say "hi"'`},
		{`it's "x"`, `'it\'s "x"'`},
		{`a\b`, `'a\\b'`},
		{"t\tn\nr\r", `'t\tn\nr\r'`},
		{"\x00\x1f\x7f", `'\x00\x1f\x7f'`},
		{"\u0080\u00a0\u00ad\u00e9", `'\x80\xa0\xadé'`},
		{"日本語", `'日本語'`},
		{"\u2028\u200b\ufeff", `'\u2028\u200b\ufeff'`},
		{"\U0001F600", "'\U0001F600'"},
		{"\U000E0001", `'\U000e0001'`},
		{"\U0010FFFF", `'\U0010ffff'`},
		{"\xff", "'\ufffd'"},
	}
	for _, tc := range tests {
		if got := PyRepr(tc.in); got != tc.want {
			t.Errorf("PyRepr(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// reprInputs are tricky strings for the Python oracle (valid UTF-8 only: a
// Python str cannot hold anything else).
func reprInputs() []string {
	xs := []string{
		"", "'", `"`, `'"`, `"'`, `\`, `\'`, "a'b\"c\\d", "connect: connection refused",
		"timeout: no first token after 1m0s", "stream error: invalid_param", "\x00", "\x07\x08\x0b\x0c\x1b",
		"\x7f\u0080\u009f\u00a0\u00a1\u00ff", "\u0100\u0378\u0600\u061c\u180e\u200e\u2028\u2029\u202f\u3000",
		"\ud7ff\ue000\uf8ff\ufdd0\ufffe\uffff", "\U00010000\U0001F600\U000E0020\U000F0000\U0010FFFF",
		"ça va? ñ ß Ω 中文 🙂 👍🏽", "CatchResponseError('x')", "<Foo object at 0x7f2a1c>",
		strings.Repeat("x'", 50), "tab\there", "line1\nline2\r\n",
	}
	for r := rune(0); r < 0x300; r++ {
		xs = append(xs, string(r))
	}
	return xs
}

func TestPyReprPython(t *testing.T) {
	t.Parallel()
	xs := reprInputs()
	in, _ := json.Marshal(xs)
	out := python(t, "", `import sys, json; print(json.dumps([repr(s) for s in json.load(sys.stdin)]))`, in)
	var want []string
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	for i, s := range xs {
		if got := PyRepr(s); got != want[i] {
			t.Errorf("PyRepr(%q) = %q, Python %q", s, got, want[i])
		}
	}
}

// TestPyPrintablePython sweeps every code point and compares pyPrintable with
// str.isprintable. Python 3.11 uses Unicode 14 and Go Unicode 15, so the only
// tolerated differences are characters unassigned (Cn) in Python's database.
func TestPyPrintablePython(t *testing.T) {
	t.Parallel()
	const script = `
import sys, json, unicodedata
ranges, cn = [], []
def add(lst, cp):
    if lst and lst[-1][1] == cp - 1:
        lst[-1][1] = cp
    else:
        lst.append([cp, cp])
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF:
        continue
    c = chr(cp)
    if c.isprintable():
        add(ranges, cp)
    if unicodedata.category(c) == "Cn":
        add(cn, cp)
print(json.dumps({"printable": ranges, "cn": cn, "version": unicodedata.unidata_version}))
`
	var res struct {
		Printable [][2]rune
		Cn        [][2]rune
		Version   string
	}
	if err := json.Unmarshal(python(t, "", script, nil), &res); err != nil {
		t.Fatal(err)
	}
	set := func(rs [][2]rune) []bool {
		m := make([]bool, utf8.MaxRune+1)
		for _, x := range rs {
			for r := x[0]; r <= x[1]; r++ {
				m[r] = true
			}
		}
		return m
	}
	printable, unassigned := set(res.Printable), set(res.Cn)
	var tolerated int
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if pyPrintable(r) == printable[r] {
			continue
		}
		if unassigned[r] {
			tolerated++
			continue
		}
		t.Errorf("U+%04X: pyPrintable %v, Python %v", r, pyPrintable(r), !pyPrintable(r))
	}
	t.Logf("Python Unicode %s: %d code points differ only because they are unassigned there", res.Version, tolerated)
}

func TestErrorKey(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(`POST./v1/chat-messages.'HTTP 429 too_many_requests'`))
	want := hex.EncodeToString(sum[:])
	if got := ErrorKey("POST", "/v1/chat-messages", "HTTP 429 too_many_requests"); got != want {
		t.Errorf("ErrorKey = %s, want %s", got, want)
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"<X object at 0x7f1e2d> and <X object at 0x7f1e2d>", "<X object at 0x....> and <X object at 0x....>"},
		{"<X object at 0x7f1e2d", "<X object at 0x7f1e2d"},
		{"<X object at 0x1> <Y object at 0x2>", "<X object at 0x....> <Y object at 0x2>"},
	}
	for _, tc := range tests {
		if got := ParseError(tc.in); got != tc.want {
			t.Errorf("ParseError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestErrorKeyPython checks ErrorKey and ParseError against Locust 2.46's
// StatsError.create_key and parse_error for str errors.
func TestErrorKeyPython(t *testing.T) {
	t.Parallel()
	dir := locustStats(t)
	type triple struct{ Method, Name, Failure string }
	var xs []triple
	for _, f := range reprInputs() {
		xs = append(xs, triple{"POST", "/v1/chat-messages", f})
	}
	xs = append(xs,
		triple{"SSE", "TTFB", "timeout: no first token after 1m0s"},
		triple{"", "", ""},
		triple{"GET", "it's \"odd\"", "<Foo object at 0xdeadbeef> again <Foo object at 0xdeadbeef>"},
		triple{"POST", "/v1/datasets/[id]/retrieve", "HTTP 502"},
	)
	in, _ := json.Marshal(xs)
	const script = `
import sys, json
from locust.stats import StatsError
out = []
for x in json.load(sys.stdin):
    out.append([StatsError.create_key(x["Method"], x["Name"], x["Failure"]), StatsError.parse_error(x["Failure"])])
print(json.dumps(out))
`
	var want [][2]string
	if err := json.Unmarshal(python(t, dir, script, in), &want); err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		if got := ErrorKey(x.Method, x.Name, x.Failure); got != want[i][0] {
			t.Errorf("ErrorKey(%q, %q, %q) = %s, Python %s", x.Method, x.Name, x.Failure, got, want[i][0])
		}
		if got := ParseError(x.Failure); got != want[i][1] {
			t.Errorf("ParseError(%q) = %q, Python %q", x.Failure, got, want[i][1])
		}
	}
}

func BenchmarkErrorKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = ErrorKey("POST", "/v1/chat-messages", "HTTP 429 too_many_requests")
	}
}
