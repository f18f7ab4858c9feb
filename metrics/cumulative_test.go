package metrics

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pyF marshals a float64 so that Python's json module reads a float (150.0,
// not 150), as msgpack would carry it.
type pyF float64

func (f pyF) MarshalJSON() ([]byte, error) { return []byte(pyFloat(float64(f))), nil }

func wireEntry(e *Entry) map[string]any {
	dict := func(m map[int64]int64) map[string]int64 {
		out := map[string]int64{}
		for k, v := range m {
			out[strconv.FormatInt(k, 10)] = v
		}
		return out
	}
	w := map[string]any{
		"name": e.Name, "method": e.Method, "start_time": pyF(e.StartTime),
		"num_requests": e.NumRequests, "num_failures": e.NumFailures, "num_none_requests": e.NumNoneRequests,
		"total_response_time": pyF(e.TotalResponseTime), "max_response_time": pyF(e.MaxResponseTime),
		"total_content_length": e.TotalContentLength, "response_times": dict(e.ResponseTimes),
		"num_reqs_per_sec": dict(e.NumReqsPerSec), "num_fail_per_sec": dict(e.NumFailPerSec),
		"last_request_timestamp": nil, "min_response_time": nil,
	}
	if e.HasLast {
		w["last_request_timestamp"] = pyF(e.LastRequestTimestamp)
	}
	if e.HasMin {
		w["min_response_time"] = pyF(e.MinResponseTime)
	}
	return w
}

func wireReport(r Report) map[string]any {
	stats := []any{}
	for i := range r.Entries {
		stats = append(stats, wireEntry(&r.Entries[i]))
	}
	errs := map[string]any{}
	for k, e := range r.Errors {
		errs[k] = map[string]any{
			"name": e.Name, "method": e.Method, "error": e.Error, "occurrences": e.Occurrences,
			"first_seen": pyF(e.FirstSeen), "last_seen": pyF(e.LastSeen),
		}
	}
	return map[string]any{"stats": stats, "stats_total": wireEntry(&r.Total), "errors": errs, "user_count": 1}
}

// oracleReports builds a few intervals from two "workers" with a mix of
// successes, failures, untimed requests and awkward names.
func oracleReports() []Report {
	base := time.Unix(1_700_000_000, 0)
	var reports []Report
	for w := range 2 {
		s := NewStats()
		for interval := range 4 {
			for i := range 60 {
				at := base.Add(time.Duration(interval*3000+i*50+w*7) * time.Millisecond)
				dur := time.Duration(1+(i*37+w*11)%900)*time.Millisecond + time.Duration(i*13)*time.Microsecond
				s.Record(Sample{Method: "POST", Name: "/v1/chat-messages", Duration: dur, Size: int64(100 + i), At: at})
				if i%3 == 0 {
					s.Record(Sample{Method: "SSE", Name: "TTFB", Duration: dur / 3, At: at})
				}
				if i%4 == 0 {
					s.Record(Sample{Method: "SSE", Name: "Full Response", NoTime: true, Size: 42, At: at})
				}
				if i%7 == 0 {
					s.Record(Sample{Method: "POST", Name: "/v1/chat-messages", Duration: 3*time.Second + dur,
						Failure: "HTTP 429 too_many_requests", At: at})
				}
				if i%13 == 0 {
					s.Record(Sample{Method: "SSE", Name: `odd, "name" ünï`, NoTime: true,
						Failure: "stream error: it's \"bad\", really", At: at})
				}
			}
			if interval == 1 && w == 0 {
				s.Record(Sample{Method: "POST", Name: "/v1/datasets/[id]/retrieve", Duration: 3432 * time.Millisecond, At: base.Add(4 * time.Second)})
				s.Record(Sample{Method: "GET", Name: "zero", Duration: 0, At: base.Add(4 * time.Second)})
			}
			reports = append(reports, s.Drain(base.Add(time.Duration(interval+1)*3*time.Second)))
		}
		reports = append(reports, s.Drain(base.Add(13*time.Second))) // idle report
	}
	return reports
}

const pythonMasterScript = `
import sys, json, csv, io
from types import SimpleNamespace
import locust.stats as st

class Hook:
    def __init__(self):
        self.fns = []
    def add_listener(self, f):
        self.fns.append(f)

events = SimpleNamespace(report_to_master=Hook(), worker_report=Hook())
stats = st.RequestStats()
st.setup_distributed_stats_event_listeners(events, stats)

def fix(e):
    for k in ("response_times", "num_reqs_per_sec", "num_fail_per_sec"):
        e[k] = {int(a): b for a, b in e[k].items()}
    return e

for rep in json.load(sys.stdin):
    rep["stats"] = [fix(e) for e in rep["stats"]]
    fix(rep["stats_total"])
    for f in events.worker_report.fns:
        f("worker", rep)

def lines(ls):
    return "".join(l + "\n" for l in ls)

def table(current):
    out = lines(st.get_stats_summary(stats, current)) + "\n"
    out += lines(st.get_percentile_stats_summary(stats)) + "\n"
    if stats.errors:
        out += lines(st.get_error_report_summary(stats))
    return out

env = SimpleNamespace(stats=stats, runner=None)
writer = st.StatsCSV(env, st.PERCENTILES_TO_REPORT)
req, fail = io.StringIO(), io.StringIO()
writer.requests_csv(csv.writer(req))
writer.failures_csv(csv.writer(fail))
pcts = {}
for e in list(st.sort_stats(stats.entries)) + [stats.total]:
    pcts[e.method + " " + e.name] = [e.get_response_time_percentile(p) for p in [0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]]
print(json.dumps({"table": table(False), "current": table(True), "csv": req.getvalue(), "failures": fail.getvalue(), "pcts": pcts}))
`

// TestCumulativeAgainstLocust feeds the same Reports to Cumulative and to
// Locust 2.46's own master-side code (on_worker_report, get_stats_summary,
// StatsCSV) and compares the rendered tables, CSVs and percentiles byte for
// byte.
func TestCumulativeAgainstLocust(t *testing.T) {
	t.Parallel()
	dir := locustStats(t)
	idle := NewStats()
	tests := []struct {
		name    string
		reports []Report
	}{
		{"mixed", oracleReports()},
		{"no reports", nil},
		{"idle reports", []Report{idle.Drain(t0()), idle.Drain(t0().Add(3 * time.Second))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			compareWithLocust(t, dir, tc.reports)
		})
	}
}

func compareWithLocust(t *testing.T, dir string, reports []Report) {
	c := NewCumulative()
	wire := []any{}
	for _, r := range reports {
		c.Add(r)
		wire = append(wire, wireReport(r))
	}
	in, err := json.Marshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Table, Current, CSV, Failures string
		Pcts                          map[string][]int64
	}
	if err := json.Unmarshal(python(t, dir, pythonMasterScript, in), &want); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	check := func(what, want string, write func(*bytes.Buffer) error) {
		t.Helper()
		buf.Reset()
		if err := write(&buf); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != want {
			t.Errorf("%s differs from Locust's\n got:\n%s\nwant:\n%s", what, got, want)
		}
	}
	check("WriteTable", want.Table, func(b *bytes.Buffer) error { return c.WriteTable(b) })
	check("WriteCurrentTable", want.Current, func(b *bytes.Buffer) error { return c.WriteCurrentTable(b) })
	check("WriteCSV", want.CSV, func(b *bytes.Buffer) error { return c.WriteCSV(b) })
	check("WriteFailuresCSV", want.Failures, func(b *bytes.Buffer) error { return c.WriteFailuresCSV(b) })

	qs := []float64{0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}
	rows := c.Rows()
	if len(rows) != len(want.Pcts) {
		t.Errorf("%d rows, Locust has %d", len(rows), len(want.Pcts))
	}
	for _, r := range rows {
		w, ok := want.Pcts[r.Method+" "+r.Name]
		if !ok {
			t.Errorf("row %q %q unknown to Locust", r.Method, r.Name)
			continue
		}
		for i, q := range qs {
			if got := r.Percentile(q); got != w[i] {
				t.Errorf("%s %s p%v = %d, Locust %d", r.Method, r.Name, q, got, w[i])
			}
		}
	}
}

func TestPercentileOf(t *testing.T) {
	t.Parallel()
	b := []bucketCount{{10, 1}, {20, 2}, {150, 1}}
	tests := []struct {
		n    int64
		q    float64
		want int64
	}{
		// Values computed by Locust 2.46's calculate_response_time_percentile.
		{4, 0.5, 20}, {4, 0.25, 20}, {4, 0.75, 150}, {4, 1, 150}, {4, 0, 10}, {0, 0.5, 150}, {10, 0.5, 0},
	}
	for _, tc := range tests {
		if got := percentileOf(b, tc.n, tc.q); got != tc.want {
			t.Errorf("percentileOf(n=%d, q=%v) = %d, want %d", tc.n, tc.q, got, tc.want)
		}
	}
	if got := percentileOf(nil, 5, 0.5); got != 0 {
		t.Errorf("empty = %d", got)
	}
}

func TestPyFloat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0.0"}, {150, "150.0"}, {147.25, "147.25"}, {0.1, "0.1"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {1.5e-7, "1.5e-07"}, {2.5e300, "2.5e+300"}, {-3.5, "-3.5"},
		{123456789.125, "123456789.125"}, {1.0 / 3, "0.3333333333333333"},
	}
	for _, tc := range tests {
		if got := pyFloat(tc.f); got != tc.want {
			t.Errorf("pyFloat(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestCumulativeEmpty(t *testing.T) {
	t.Parallel()
	c := NewCumulative()
	var b strings.Builder
	if err := c.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Aggregated") || strings.Contains(b.String(), "Error report") {
		t.Errorf("unexpected empty table:\n%s", b.String())
	}
	b.Reset()
	if err := c.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(CSVStatsHeader(), ",") + "\r\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + strings.Repeat(",N/A", numPercentiles) + "\r\n"
	if b.String() != want {
		t.Errorf("empty CSV = %q, want %q", b.String(), want)
	}
	if rows := c.Rows(); len(rows) != 1 || rows[0].Name != "Aggregated" {
		t.Errorf("rows = %+v", rows)
	}
}

func BenchmarkCumulativeAdd(b *testing.B) {
	reports := oracleReports()
	b.ReportAllocs()
	c := NewCumulative()
	for i := 0; b.Loop(); i++ {
		c.Add(reports[i%len(reports)])
	}
}
