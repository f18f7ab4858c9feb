package jsonscan

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidJSONMatchesStdlib(t *testing.T) {
	t.Parallel()
	cases := []string{
		``, ` `, `{}`, `[]`, `{"a":1}`, `{"a":}`, `{"a" 1}`, `{,}`, `{"a":1,}`, `[1,]`, `[,1]`, `"x"`, `"\u00e9"`,
		`"\u00g9"`, `"\x"`, "\"a\tb\"", "\"\xff\"", `-`, `-0`, `01`, `1.`, `1.5e`, `1.5e+3`, `-0.0E-0`, `tru`, `true `,
		` null`, `nul`, `[true,false,null]`, `{"a":[{"b":{}}]}`, `{"a":"b"}x`, `"\"`, `"\\"`, `1 2`,
		strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth),
		strings.Repeat("[", maxNestingDepth+1) + strings.Repeat("]", maxNestingDepth+1),
		strings.Repeat(`{"a":`, maxNestingDepth+1) + "1" + strings.Repeat("}", maxNestingDepth+1),
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "*.sse"))
	if len(files) == 0 {
		t.Fatal("no testdata/*.sse transcripts found")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			cases = append(cases, strings.TrimPrefix(line, "data: "))
		}
	}
	for _, c := range cases {
		if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("Valid(%.60q) = %v, json.Valid = %v", c, got, want)
		}
	}
}

// FuzzValidJSON checks that Valid agrees with json.Valid on every input.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{"event":"message","answer":"x"}`, `[1,-2.5e3,true,null,"\u00e9\n"]`, `{"a":{"b":[]}}`, "\"\xff\"", `01`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}
