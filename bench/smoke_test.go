//go:build goczmq

package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs `bench/run.sh --smoke` (the floor client and the difyload worker behind a
// Locust 2.46 master, one shape, two short steps, 50 open streams) so the benchmark cannot
// rot. It checks that the run completed and produced its outputs; it asserts no timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the benchmark smoke run starts real processes; skipped with -short")
	}
	for _, tool := range []string{"taskset", "python3", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	latest, err := filepath.Abs("../scripts/locust-latest.sh")
	if err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("DIFYLOAD_LOCUST_LATEST"); p != "" {
		latest = p
	}
	if _, err := os.Stat(latest); err != nil {
		t.Skipf("locust-latest wrapper not found at %s", latest)
	}
	out := t.TempDir()
	gen := "1"
	if runtime.NumCPU() < 2 {
		gen = "0"
	}
	// A bound against a hung child, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "run.sh", "--smoke", "--out", out, "--work", "/tmp/difyload-bench/smoke",
		"--generators", "floor,difyload,py-fast", "--locust-latest", latest, "--gen-cpu", gen)
	cmd.Env = append(os.Environ(), "DIFYLOAD_BENCH_BIN="+t.TempDir())
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench/run.sh --smoke: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatalf("no results.json: %v\n%s", err, b)
	}
	var res struct {
		Sweep map[string]map[string][]struct {
			Streams int64 `json:"streams"`
			Matched int64 `json:"matched"`
		} `json:"sweep"`
		Paired map[string][]struct {
			Ratio float64 `json:"ratio"`
		} `json:"paired"`
		Hog map[string]map[string][]struct {
			Streams int64 `json:"streams"`
			Matched int64 `json:"matched"`
		} `json:"hog"`
		Top map[string]map[string][]struct {
			Streams int64 `json:"streams"`
			Matched int64 `json:"matched"`
		} `json:"top"`
		Schedwake struct {
			Steps []struct {
				HogGroup string `json:"hog_group"`
				Busy     int    `json:"busy"`
				Samples  int    `json:"samples"`
			} `json:"steps"`
		} `json:"schedwake"`
		RSS map[string][]struct {
			OpenStreams int64 `json:"open_streams"`
			RSSBytes    int64 `json:"rss_bytes"`
		} `json:"rss"`
		Idle []struct {
			Workers int     `json:"workers"`
			Alive   int     `json:"alive"`
			CPU     float64 `json:"worker_cpu_frac_mean"`
		} `json:"idle"`
		Fleet []struct {
			Workers int     `json:"workers"`
			Joined  int     `json:"joined"`
			Master  float64 `json:"master_cpu_frac"`
		} `json:"fleet"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"floor", "difyload", "py-fast"} {
		steps := res.Sweep["fast"][g]
		if len(steps) == 0 {
			t.Errorf("%s: no sweep steps", g)
			continue
		}
		var streams, matched int64
		for _, s := range steps {
			streams += s.Streams
			matched += s.Matched
		}
		if streams == 0 || matched == 0 {
			t.Errorf("%s: %d streams completed, %d matched with the mock's records; want > 0", g, streams, matched)
		}
		if r := res.RSS[g]; len(r) == 0 || r[0].RSSBytes == 0 || r[0].OpenStreams == 0 {
			t.Errorf("%s: no RSS measurement: %+v", g, r)
		}
	}
	if p := res.Paired["fast"]; len(p) != 2 || p[0].Ratio <= 0 || p[1].Ratio <= 0 {
		t.Errorf("paired steps: want 2 rounds, each with a CPU ratio: %+v", p)
	}
	// The CPU-hog steps run the floor and difyload only.
	for _, g := range []string{"floor", "difyload"} {
		if h := res.Hog["fast"][g]; len(h) == 0 || h[0].Streams == 0 || h[0].Matched == 0 {
			t.Errorf("%s: no CPU-hog step, or one with no stream matched: %+v", g, h)
		}
	}
	if _, ok := res.Hog["fast"]["py-fast"]; ok {
		t.Errorf("py-fast ran a CPU-hog step")
	}
	// The top steps (the floor and difyload on bench/leanmock, with difymock's chunks and
	// with leanmock's padded ones): streams served and joined with leanmock's records.
	for _, shape := range []string{"fast", "wide"} {
		for _, g := range []string{"floor", "difyload"} {
			if h := res.Top[shape][g]; len(h) == 0 || h[0].Streams == 0 || h[0].Matched == 0 {
				t.Errorf("%s/%s: no top step on leanmock, or one with no stream matched: %+v", shape, g, h)
			}
		}
	}
	// schedwake: one step with the hog in its own scheduling group, one in the same, each
	// with every wake-up it asked for.
	if sw := res.Schedwake.Steps; len(sw) != 2 || sw[0].HogGroup != "own" || sw[1].HogGroup != "same" ||
		sw[0].Samples != 200 || sw[1].Samples != 200 {
		t.Errorf("schedwake steps: %+v", sw)
	}
	if len(res.Idle) == 0 || res.Idle[0].Alive != res.Idle[0].Workers {
		t.Errorf("idle step missing or a worker died: %+v", res.Idle)
	}
	// The smoke's master-scale step runs one Go fleet and one Python fleet (locustfile_bench.py).
	if len(res.Fleet) != 2 {
		t.Errorf("master-scale steps: got %d, want a Go and a Python fleet: %+v", len(res.Fleet), res.Fleet)
	}
	for _, f := range res.Fleet {
		if f.Joined != f.Workers || f.Master <= 0 {
			t.Errorf("master-scale step: a worker did not join, or no master CPU: %+v", f)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil || !strings.Contains(string(md), "difyload worker") {
		t.Errorf("summary.md missing or without the difyload row: %v", err)
	}
}
