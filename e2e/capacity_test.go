//go:build goczmq

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/difyload/difyload/internal/locustbin"
	"github.com/difyload/difyload/internal/locusttest"
)

// pythonFor is the interpreter of a Locust install (its launcher's #! line).
func pythonFor(t *testing.T, locust string) string {
	t.Helper()
	b, err := os.ReadFile(locust)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if !strings.HasPrefix(line, "#!") {
		t.Fatalf("%s: no #! line", locust)
	}
	f := strings.Fields(strings.TrimPrefix(line, "#!"))
	if len(f) == 0 {
		t.Fatalf("%s: empty #! line", locust)
	}
	return f[len(f)-1]
}

// TestCapacitySearchUnit runs the Python unit tests of the master-side modules: the search's
// state machine against a simulated fleet (e2e/testdata/capacity_search_test.py: saturation,
// refinement, unmeetable objectives, goodput SLOs, a worker leaving mid-step, a stop mid-way,
// bad options) and the report's series and escaping (report_test.py).
func TestCapacitySearchUnit(t *testing.T) {
	argv := locustbin.Require(t, locustbin.V2_12)
	py := pythonFor(t, argv[0])
	cmd := exec.CommandContext(t.Context(), py, "-m", "unittest", "-v", "capacity_search_test", "report_test")
	cmd.Dir = filepath.Join(testEnv.root, "e2e", "testdata")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+testEnv.root, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unit tests failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("unexpected unittest output:\n%s", out)
	}
}

// capacityReport is the part of the run report the capacity tests read.
type capacityReport struct {
	Schema   int `json:"difyload_report"`
	Capacity struct {
		Steps []struct {
			Users       int                           `json:"users"`
			Workers     int                           `json:"workers"`
			Verdict     string                        `json:"verdict"`
			StreamsPerS *float64                      `json:"streams_per_s"`
			LatencyMS   map[string]map[string]float64 `json:"latency_ms"`
		} `json:"steps"`
		Events []struct {
			What string `json:"what"`
		} `json:"events"`
		Result struct {
			Summary   string   `json:"summary"`
			LimitedBy string   `json:"limited_by"`
			MaxUsers  *int     `json:"max_users"`
			Streams   *float64 `json:"streams_per_s"`
			Peak      *float64 `json:"capacity_streams_per_s"`
		} `json:"result"`
	} `json:"capacity"`
	LLM struct {
		Streams int64 `json:"streams"`
	} `json:"llm"`
	Series struct {
		Points []json.RawMessage `json:"points"`
	} `json:"series"`
}

func readCapacityReport(t *testing.T, path string) capacityReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r capacityReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Schema != 1 {
		t.Fatalf("%s: schema %d", path, r.Schema)
	}
	return r
}

// The mock's capacity model (difymock/doc.go): N job workers, each relayed run holding one for
// TTFT + (tokens−1) × token delay, the others queued FIFO.
const (
	modelJobWorkers = 8
	modelTTFT       = 100 * time.Millisecond
	modelTokens     = 20
	modelTokenDelay = 20 * time.Millisecond
)

// TestCapacitySearchFindsModelCapacity: headless capacity searches against the mock's capacity
// model find the throughput it implies (job workers / run duration) within 10 %, on 2.12.1 with
// a Go worker and on the newest Locust with a mixed fleet (a Go and a Python worker). The run's
// HTML report then opens in headless Chromium with the LLM section and its charts drawn.
func TestCapacitySearchFindsModelCapacity(t *testing.T) {
	run := modelTTFT + (modelTokens-1)*modelTokenDelay
	implied := float64(modelJobWorkers) / run.Seconds()
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			mock := testEnv.startMock(t, "--dify-version", "1.13.3", "--job-workers", strconv.Itoa(modelJobWorkers),
				"--ttft", modelTTFT.String(), "--tokens", strconv.Itoa(modelTokens), "--token-delay", modelTokenDelay.String())
			fleet := 1
			if version != "2.12.1" {
				fleet = 2
			}
			out := outDir(t)
			m := testEnv.startMaster(t, masterOpts{version: version, host: mock.URL, extraArgs: []string{
				"ChatUser", "--headless", "--expect-workers", strconv.Itoa(fleet),
				"--dify-capacity", "--capacity-start", "12", "--capacity-growth", "x1.5", "--capacity-max-users", "140",
				"--capacity-warmup", "2", "--capacity-hold", "5",
				"--dify-report", filepath.Join(out, "report"), "--html", filepath.Join(out, "locust.html"),
			}})
			testEnv.startWorker(t, m)
			if fleet == 2 {
				testEnv.startPythonWorker(t, version, m)
			}
			m.wait(t, 4*time.Minute)
			rep := readCapacityReport(t, filepath.Join(out, "report.json"))
			res := rep.Capacity.Result
			t.Logf("%s: %s", version, res.Summary)
			if res.Peak == nil || res.MaxUsers == nil || res.Streams == nil {
				t.Fatalf("no capacity found: %+v", res)
			}
			if math.Abs(*res.Peak-implied)/implied > 0.10 {
				t.Errorf("capacity %.2f streams/s, the model implies %.2f (job workers %d / run %s): more than 10 %% off",
					*res.Peak, implied, modelJobWorkers, run)
			}
			if *res.Streams > implied*1.10 {
				t.Errorf("max sustainable %.2f streams/s is above the model's capacity %.2f", *res.Streams, implied)
			}
			if !strings.Contains(res.LimitedBy, "saturation") {
				t.Errorf("limited by %q, want saturation (no SLO was set)", res.LimitedBy)
			}
			if !strings.HasPrefix(res.Summary, "max sustainable: "+strconv.Itoa(*res.MaxUsers)+" users") {
				t.Errorf("summary %q", res.Summary)
			}
			if len(rep.Capacity.Steps) < 3 {
				t.Errorf("only %d steps", len(rep.Capacity.Steps))
			}
			for _, s := range rep.Capacity.Steps {
				if s.Workers != fleet {
					t.Errorf("step at %d users measured with %d workers, want %d", s.Users, s.Workers, fleet)
				}
				// Time to first event: every worker sends it; queued runs wait before their first token.
				if s.LatencyMS["ttfe"]["p95"] <= 0 || s.LatencyMS["ttft"]["p95"] < s.LatencyMS["ttfe"]["p95"] {
					t.Errorf("step at %d users: TTFE %v, TTFT %v", s.Users, s.LatencyMS["ttfe"], s.LatencyMS["ttft"])
				}
			}
			var truth struct {
				JobWorkers int `json:"job_workers"`
			}
			if err := httpGetJSON(mock.URL+"/_mock/stats?records=0", &truth); err != nil || truth.JobWorkers != modelJobWorkers {
				t.Errorf("mock truth job_workers %d (%v), want %d", truth.JobWorkers, err, modelJobWorkers)
			}
			lh, err := os.ReadFile(filepath.Join(out, "locust.html"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(lh, []byte(`id="difyload-llm"`)) {
				t.Errorf("Locust's --html report has no LLM section")
			}
			checkReportInBrowser(t, filepath.Join(out, "report.html"), true)
			checkReportInBrowser(t, filepath.Join(out, "locust.html"), true)
		})
	}
}

// outDir is a directory for a master's output files inside the e2e work directory (the
// locust-latest chroot sees it at the same absolute path).
func outDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(testEnv.workDir, "out-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(d)
		}
	})
	return d
}

// chromiumPath finds headless Chromium (Debian package chromium); CI must have it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DIFYLOAD_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed (apt-get install chromium; scripts/setup.sh does)")
		}
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	return p
}

var (
	reSVG      = regexp.MustCompile(`<svg class="dl-chart"[^>]*data-title="([^"]*)"`)
	rePolyline = regexp.MustCompile(`<polyline points="([^"]+)"[^>]*class="dl-line"`)
)

// checkReportInBrowser opens an HTML report in headless Chromium, after its scripts ran: it must
// have the LLM section, drawn charts (lines with points) and, with capacity, the capacity curves
// with the knee marked; its screenshot must show them.
func checkReportInBrowser(t *testing.T, file string, capacity bool) {
	t.Helper()
	bin := chromiumPath(t)
	common := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=5000", "--window-size=1280,2600"}
	url := "file://" + file
	dom, err := exec.CommandContext(t.Context(), bin, append(common, "--dump-dom", url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v", file, err)
	}
	page := string(dom)
	if !strings.Contains(page, `id="difyload-llm"`) || !strings.Contains(page, "LLM metrics") {
		t.Errorf("%s: no LLM section in the rendered page", filepath.Base(file))
	}
	titles := map[string]bool{}
	for _, m := range reSVG.FindAllStringSubmatch(page, -1) {
		titles[m[1]] = true
	}
	for _, want := range []string{"TTFT over time (ms)", "TPOT over time (ms)", "E2E over time (ms)", "Output tokens/s",
		"Streams/s and goodput/s", "Users"} {
		if !titles[want] {
			t.Errorf("%s: chart %q not drawn (charts: %v)", filepath.Base(file), want, titles)
		}
	}
	if capacity {
		for _, want := range []string{"Throughput vs users", "Latency vs throughput (p95)"} {
			if !titles[want] {
				t.Errorf("%s: capacity chart %q not drawn", filepath.Base(file), want)
			}
		}
		if !strings.Contains(page, `class="dl-knee"`) {
			t.Errorf("%s: the knee is not marked", filepath.Base(file))
		}
	}
	lines := 0
	for _, m := range rePolyline.FindAllStringSubmatch(page, -1) {
		if strings.Count(m[1], ",") >= 2 {
			lines++
		}
	}
	if lines < 8 {
		t.Errorf("%s: %d drawn lines with at least two points, want >= 8", filepath.Base(file), lines)
	}
	shot := filepath.Join(t.TempDir(), "shot.png")
	// Tall enough for Locust's own report with the LLM section at its end.
	tall := append(append([]string{}, common...), "--window-size=1280,7000")
	if out, err := exec.CommandContext(t.Context(), bin, append(tall, "--screenshot="+shot, url)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	checkScreenshot(t, shot)
}

// checkScreenshot: the page is not blank, and the charts' first line colour (#1f77b4) is drawn.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	blue, colours := 0, map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bb, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, bb >> 8}
			colours[c] = true
			if near(c, [3]uint32{0x1f, 0x77, 0xb4}) {
				blue++
			}
		}
	}
	if len(colours) < 20 || blue < 50 {
		t.Errorf("screenshot %s looks empty: %d colours, %d chart-line pixels", path, len(colours), blue)
	}
	if os.Getenv("DIFYLOAD_KEEP_SCREENSHOT") != "" {
		_ = copyFile(path, os.Getenv("DIFYLOAD_KEEP_SCREENSHOT"))
	}
}

func near(a, b [3]uint32) bool {
	for i := range a {
		if d := int(a[i]) - int(b[i]); d > 24 || d < -24 {
			return false
		}
	}
	return true
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// liveCapacity is /difyload/report.json?live=1's capacity part.
type liveCapacity struct {
	Capacity struct {
		Enabled bool   `json:"enabled"`
		Phase   string `json:"phase"`
		Current *struct {
			Index int    `json:"index"`
			Users int    `json:"users"`
			Phase string `json:"phase"`
		} `json:"current"`
		Steps []struct {
			Users        int    `json:"users"`
			Verdict      string `json:"verdict"`
			FleetChanged string `json:"fleet_changed"`
			Workers      int    `json:"workers"`
		} `json:"steps"`
		Events []struct {
			What string `json:"what"`
		} `json:"events"`
		Result *struct {
			Summary   string `json:"summary"`
			LimitedBy string `json:"limited_by"`
		} `json:"result"`
	} `json:"capacity"`
}

// TestCapacityWebUI: the search started from the web UI's form fills the Capacity view step by
// step; a worker that leaves during a step gets that step measured again; a stop in the middle
// keeps the finished steps and says so; the run report (Download Data) and the live charts of
// the LLM view are drawn in headless Chromium.
func TestCapacityWebUI(t *testing.T) {
	for _, version := range masterVersions() {
		t.Run(version, func(t *testing.T) {
			mock := testEnv.startMock(t, "--ttft", "50ms", "--tokens", "10", "--token-delay", "10ms")
			m := testEnv.startMaster(t, masterOpts{version: version, host: mock.URL, extraArgs: []string{
				"ChatUser", "--capacity-start", "2", "--capacity-growth", "+2", "--capacity-warmup", "1", "--capacity-hold", "3",
				"--capacity-max-users", "40"}})
			w := m.web()
			testEnv.startWorker(t, m)
			leaving := testEnv.startWorker(t, m)
			waitFor(t, 30*time.Second, "two ready workers", func() bool {
				s, ok := w.stats(t)
				return ok && len(s.Workers) == 2
			})
			resp, err := locusttest.PostForm(w.base+"/swarm", url.Values{"user_count": {"1"}, "spawn_rate": {"1"},
				"host": {mock.URL}, "dify_capacity": {"true"}})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "shape class") {
				t.Fatalf("swarm did not start the capacity search: %s", body)
			}
			var live liveCapacity
			get := func() bool { return httpGetJSON(w.base+"/difyload/report.json?live=1", &live) == nil }
			info := func() string { return fmt.Sprintf("%+v", live.Capacity) }
			waitForInfo(t, 60*time.Second, "the first finished step", func() bool {
				return get() && len(live.Capacity.Steps) >= 1
			}, info)
			if v := live.Capacity.Steps[0].Verdict; v != "ok" {
				t.Fatalf("first step verdict %q", v)
			}
			// The Capacity view (2.2x+: a tab's table from /stats/requests) lists the step.
			if version != "2.12.1" {
				var st struct {
					Extended []struct {
						Key  string           `json:"key"`
						Data []map[string]any `json:"data"`
					} `json:"extended_stats"`
				}
				if err := httpGetJSON(w.base+"/stats/requests", &st); err != nil {
					t.Fatal(err)
				}
				rows := 0
				for _, e := range st.Extended {
					if e.Key == "capacity" {
						for _, r := range e.Data {
							if r["verdict"] == "ok" {
								rows++
							}
						}
					}
				}
				if rows < 1 {
					t.Errorf("Capacity tab rows: %+v", st.Extended)
				}
			}
			// A worker leaves while a step is measured: the step is measured again.
			waitForInfo(t, 60*time.Second, "a step in its hold phase", func() bool {
				return get() && live.Capacity.Current != nil && live.Capacity.Current.Index >= 2 && live.Capacity.Current.Phase == "hold"
			}, info)
			leaving.StopWith(syscall.SIGTERM, 15*time.Second)
			waitForInfo(t, 60*time.Second, "the step with the fleet change to be discarded", func() bool {
				if !get() {
					return false
				}
				for _, s := range live.Capacity.Steps {
					if s.Verdict == "discarded" && strings.Contains(s.FleetChanged, "2 -> 1") {
						return true
					}
				}
				return false
			}, info)
			waitForInfo(t, 60*time.Second, "a step measured after the change", func() bool {
				return get() && len(live.Capacity.Steps) > 0 && live.Capacity.Steps[len(live.Capacity.Steps)-1].Verdict == "ok" &&
					live.Capacity.Steps[len(live.Capacity.Steps)-1].Workers == 1
			}, info)
			kept := 0
			for _, s := range live.Capacity.Steps {
				if s.Verdict == "ok" {
					kept++
				}
			}
			// Live charts under the LLM view while running.
			page := "/?tab=llm"
			if version == "2.12.1" {
				page = "/llm"
			}
			checkLiveCharts(t, w.base+page, version == "2.12.1")
			// Stop in the middle of a step.
			w.stop(t)
			waitForInfo(t, 30*time.Second, "the search to say it was stopped", func() bool {
				return get() && live.Capacity.Result != nil
			}, info)
			if !strings.Contains(live.Capacity.Result.LimitedBy, "stopped") {
				t.Errorf("after a stop: limited by %q", live.Capacity.Result.LimitedBy)
			}
			got := 0
			for _, s := range live.Capacity.Steps {
				if s.Verdict == "ok" {
					got++
				}
			}
			if got < kept {
				t.Errorf("steps lost on stop: %d ok before, %d after", kept, got)
			}
			// The run report from Download Data.
			resp, err = locusttest.Get(w.base + "/difyload/report.html?download=1")
			if err != nil {
				t.Fatal(err)
			}
			html, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
				t.Fatalf("report download: %s %v", resp.Status, resp.Header)
			}
			js, _ := io.ReadAll(mustGet(t, w.base+"/difyload/report.json"))
			for _, key := range []string{"app-mock", "dataset-mock"} { // the master holds the mock's keys
				if strings.Contains(string(html), key) || strings.Contains(string(js), key) {
					t.Errorf("an API key (%s…) reached the run report", key)
				}
			}
			if !strings.Contains(string(html), "stopped before the search ended") {
				t.Errorf("the report does not say the search was stopped")
			}
			if version != "2.12.1" {
				idx, _ := io.ReadAll(mustGet(t, w.base+"/"))
				if !strings.Contains(string(idx), "difyload/report.html?download=1") {
					t.Errorf("Download Data does not offer the run report")
				}
			}
			file := filepath.Join(outDir(t), "report.html")
			if err := os.WriteFile(file, html, 0o644); err != nil {
				t.Fatal(err)
			}
			checkReportInBrowser(t, file, true)
		})
	}
}

func mustGet(t *testing.T, url string) io.Reader {
	t.Helper()
	resp, err := locusttest.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return bytes.NewReader(b)
}

// checkLiveCharts renders a web UI page in headless Chromium and checks the live charts.
func checkLiveCharts(t *testing.T, url string, old bool) {
	t.Helper()
	bin := chromiumPath(t)
	dom, err := exec.CommandContext(t.Context(), bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=6000", "--window-size=1280,2000", "--dump-dom", url).Output()
	if err != nil {
		t.Fatalf("chromium %s: %v", url, err)
	}
	page := string(dom)
	if !strings.Contains(page, `id="difyload-live"`) {
		t.Fatalf("%s: no live chart box", url)
	}
	if n := len(reSVG.FindAllString(page, -1)); n < 6 {
		t.Errorf("%s: %d live charts drawn, want >= 6", url, n)
	}
	if old && !strings.Contains(page, "Capacity search") {
		t.Errorf("%s: the 2.12.1 LLM page has no capacity table", url)
	}
}

// TestCapacityEarlyEnd: a search whose objectives cannot be met ends after its first step and
// says so; a master stopped by SIGTERM in the middle of a search still writes the run report,
// with the finished steps and what happened.
func TestCapacityEarlyEnd(t *testing.T) {
	cases := []struct {
		name, version string
		extra         []string
		signal        syscall.Signal
		want          string
	}{
		{"unmeetable objective", "2.12.1", []string{"--slo-ttft", "1"}, 0, "no sustainable load found"},
		{"sigterm mid-way", "latest", nil, syscall.SIGTERM, "stopped before the search ended (SIGTERM received)"},
		{"sigint mid-way", "2.12.1", nil, syscall.SIGINT, "stopped before the search ended (SIGINT received)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mock := testEnv.startMock(t, "--ttft", "50ms", "--tokens", "10", "--token-delay", "10ms")
			out := outDir(t)
			m := testEnv.startMaster(t, masterOpts{version: c.version, host: mock.URL, extraArgs: append([]string{
				"ChatUser", "--headless", "--expect-workers", "1", "--dify-capacity", "--capacity-start", "2",
				"--capacity-growth", "+2", "--capacity-warmup", "1", "--capacity-hold", "3",
				"--dify-report", filepath.Join(out, "report")}, c.extra...)})
			testEnv.startWorker(t, m)
			if c.signal != 0 {
				waitFor(t, 90*time.Second, "a finished step in the master's log", func() bool {
					return strings.Contains(m.Output(), "capacity search: step 1, 2 users:")
				})
				m.signal(c.signal)
			}
			m.wait(t, 90*time.Second)
			rep := readCapacityReport(t, filepath.Join(out, "report.json"))
			res := rep.Capacity.Result
			if !strings.Contains(res.Summary, c.want) {
				t.Errorf("summary %q, want %q", res.Summary, c.want)
			}
			if len(rep.Capacity.Steps) < 1 {
				t.Errorf("the finished steps were not kept")
			}
			if c.signal != 0 {
				noted := false
				for _, e := range rep.Capacity.Events {
					noted = noted || strings.Contains(e.What, "step not counted")
				}
				if !noted {
					t.Errorf("events %+v: the unfinished step is not noted", rep.Capacity.Events)
				}
			} else if len(rep.Capacity.Steps) != 1 || !strings.Contains(res.LimitedBy, "goodput") {
				t.Errorf("unmeetable: %d steps, limited by %q", len(rep.Capacity.Steps), res.LimitedBy)
			}
			if _, err := os.Stat(filepath.Join(out, "report.html")); err != nil {
				t.Error(err)
			}
		})
	}
}
