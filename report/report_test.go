package report

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

//nolint:gochecknoglobals // a test flag (go test ./report -update), the testing package's idiom for goldens
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
		text     string
	}{
		{"not json", "{", ErrNotReport, "not a difyload run report"},
		{"llm report", `{"version": 1, "streams": 3}`, ErrNotReport, "--dify-report"},
		{"schema", `{"difyload_report": 2}`, nil, "schema 2"},
		{"bad field", `{"difyload_report": 1, "llm": {"streams": "x"}}`, nil, "decode report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err %q lacks %q", err, tt.text)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run3.json")
	if err := os.WriteFile(p, []byte(`[]`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "run3.json") {
		t.Fatalf("err %v, want the file named", err)
	}
	r, err := Load(filepath.Join("testdata", "small-capacity.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "small-capacity" {
		t.Errorf("name %q", r.Name)
	}
}

func load(t *testing.T, names ...string) []*Report {
	t.Helper()
	var out []*Report
	for _, n := range names {
		r, err := Load(filepath.Join("testdata", n+".json"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func line(c *Comparison, name string) Line {
	for _, l := range c.Lines {
		if l.Metric.Name == name {
			return l
		}
	}
	return Line{}
}

func TestCompareDeltas(t *testing.T) {
	c, err := Compare(load(t, "small-capacity", "large-capacity"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		metric          string
		base, other     float64
		improved, worse bool
	}{
		{"capacity: peak streams/s", 7.9, 15.8, true, false},
		{"capacity: max sustainable users", 18, 40, true, false},
		{"TTFT p95", 120, 110, true, false},
		{"failed streams", 0, 2, false, true},
		{"streams", 100, 300, false, false},
	}
	for _, tt := range tests {
		l := line(c, tt.metric)
		if len(l.Cells) != 2 {
			t.Fatalf("%s: missing", tt.metric)
		}
		b, o := l.Cells[0], l.Cells[1]
		if b.Value != tt.base || o.Value != tt.other {
			t.Errorf("%s: %v vs %v, want %v vs %v", tt.metric, b.Value, o.Value, tt.base, tt.other)
		}
		if !o.HasDelta || math.Abs(o.Delta-(tt.other-tt.base)) > 1e-9 {
			t.Errorf("%s: delta %v", tt.metric, o.Delta)
		}
		if o.Improved != tt.improved || o.Worse != tt.worse {
			t.Errorf("%s: improved=%v worse=%v", tt.metric, o.Improved, o.Worse)
		}
	}
	if l := line(c, "failed streams"); !math.IsNaN(l.Cells[1].DeltaPct) {
		t.Errorf("delta %% against a zero baseline must be undefined, got %v", l.Cells[1].DeltaPct)
	}
	if _, err := Compare(load(t, "small-capacity")); err == nil {
		t.Error("one report compared")
	}
}

// A metric one run lacks shows "-" and no delta; metrics no run has are left out.
func TestCompareMissingMetrics(t *testing.T) {
	runs := load(t, "small-capacity", "no-capacity")
	c, err := Compare(runs)
	if err != nil {
		t.Fatal(err)
	}
	l := line(c, "capacity: peak streams/s")
	if l.Cells[1].OK || l.Cells[1].HasDelta || CellText(l.Cells[1], "/s", false) != "-" {
		t.Errorf("missing capacity: %+v", l.Cells[1])
	}
	if line(c, "TPOT p50").Cells != nil {
		t.Error("TPOT is in no run but has a line")
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./report -update to accept):\n%s", name, got)
	}
}

func TestWriteText(t *testing.T) {
	c, err := Compare(load(t, "small-capacity", "large-capacity", "no-capacity"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, c); err != nil {
		t.Fatal(err)
	}
	golden(t, "compare.txt", b.Bytes())
}

func TestWriteHTML(t *testing.T) {
	runs := load(t, "small-capacity", "large-capacity")
	runs[1].Name = `<b>"x"</b>`
	c, err := Compare(runs)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, c); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, `<b>"x"</b>`) || !strings.Contains(page, "&lt;b&gt;") {
		t.Error("run names are not escaped")
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") && !strings.Contains(page, "http://www.w3.org/2000/svg") {
		t.Error("the page must be self-contained")
	}
	for _, title := range []string{"Capacity: streams/s vs users", "Capacity: TTFT p95 vs streams/s", "TTFT p95 over the run"} {
		re := regexp.MustCompile(`data-title="` + regexp.QuoteMeta(title) + `"(.*?)</svg>`)
		m := re.FindStringSubmatch(page)
		if m == nil {
			t.Errorf("chart %q missing", title)
			continue
		}
		if n := strings.Count(m[1], "<polyline"); n != 2 {
			t.Errorf("chart %q: %d lines, want one per run", title, n)
		}
	}
	if !strings.Contains(page, `class="better"`) || !strings.Contains(page, `class="worse"`) {
		t.Error("deltas are not marked better/worse")
	}
}

func TestSVGChartEmpty(t *testing.T) {
	if s := SVGChart("t", "x", "y", nil); !strings.Contains(s, "no data") {
		t.Error(s)
	}
}

func TestComparePerClass(t *testing.T) {
	mk := func(name string, chat, wf float64) *Report {
		r, err := Parse([]byte(`{"difyload_report": 1, "capacity": {"steps": [], "result": {"summary": "s", "per_class": [
			{"user_class": "ChatUser", "capacity_streams_per_s": ` + num(chat) + `},
			{"user_class": "WorkflowUser", "capacity_streams_per_s": ` + num(wf) + `}]}}}`))
		if err != nil {
			t.Fatal(err)
		}
		r.Name = name
		return r
	}
	c, err := Compare([]*Report{mk("a", 8, 4), mk("b", 16, 3)})
	if err != nil {
		t.Fatal(err)
	}
	chat, wf := line(c, "capacity ChatUser: peak streams/s"), line(c, "capacity WorkflowUser: peak streams/s")
	if len(chat.Cells) != 2 || chat.Cells[1].Delta != 8 || !chat.Cells[1].Improved {
		t.Errorf("ChatUser: %+v", chat.Cells)
	}
	if len(wf.Cells) != 2 || wf.Cells[1].Delta != -1 || !wf.Cells[1].Worse {
		t.Errorf("WorkflowUser: %+v", wf.Cells)
	}
}
