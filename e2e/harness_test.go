//go:build goczmq

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/internal/locustbin"
	"github.com/difyload/difyload/internal/locusttest"
)

// binary is the difyload binary built once for the package by TestMain.
type env struct {
	root    string // repository root
	binary  string // difyload built with -tags goczmq
	workDir string // bind-mounted into the locust-latest chroot: every master file lives here
}

func newEnv() (*env, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	// One stable directory for the whole run: locust-latest bind-mounts the caller's
	// directory into its chroot, so one mount serves every test's subdirectory.
	work := filepath.Join(os.TempDir(), "difyload-e2e")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(work, fmt.Sprintf("difyload-%d", os.Getpid()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "goczmq", "-o", bin, "./cmd/difyload")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build difyload: %w\n%s", err, out)
	}
	return &env{root: root, binary: bin, workDir: work}, nil
}

// masterVersions are the masters every protocol test runs against.
func masterVersions() []string { return []string{locustbin.V2_12, locustbin.Latest} }

// proc is a process a test started (internal/locusttest): stopped at cleanup,
// its output logged if the test failed.
type proc struct{ *locusttest.Proc }

func start(t *testing.T, name, dir string, argv []string, extraEnv ...string) *proc {
	t.Helper()
	return &proc{locusttest.StartT(t, locusttest.ProcOptions{Name: name, Argv: argv, Dir: dir, Env: extraEnv})}
}

// wait fails t unless the process exits within limit.
func (p *proc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	if _, err := p.Wait(limit); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func freePort(t *testing.T) int { return locusttest.FreePort(t) }

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}

// mock is a `difyload mock` process.
type mock struct {
	*proc
	URL string
}

func (e *env) startMock(t *testing.T, args ...string) *mock {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := start(t, "mock", e.workDir, append([]string{e.binary, "mock", "--addr", addr}, args...))
	m := &mock{proc: p, URL: "http://" + addr}
	waitFor(t, 10*time.Second, "the mock to listen", func() bool {
		resp, err := locusttest.Get(m.URL + "/_mock/stats?records=0")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return m
}

// truth is the mock's own count of what it served, without per-request records.
func (m *mock) truth(t *testing.T) difymock.Truth {
	t.Helper()
	return m.fetchTruth(t, "?records=0")
}

// truthRecords is the mock's per-request records.
func (m *mock) truthRecords(t *testing.T) []difymock.Record {
	t.Helper()
	return m.fetchTruth(t, "").Records
}

func (m *mock) fetchTruth(t *testing.T, query string) difymock.Truth {
	t.Helper()
	resp, err := locusttest.Get(m.URL + "/_mock/stats" + query)
	if err != nil {
		t.Fatalf("mock stats: %v", err)
	}
	defer resp.Body.Close()
	var tr difymock.Truth
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("mock stats: %v", err)
	}
	return tr
}

// master is a Locust master process and its files.
type master struct {
	*proc
	dir     string // absolute test directory (inside env.workDir)
	rel     string // the same, relative to env.workDir
	webPort int
	port    int
}

type masterOpts struct {
	version   string
	headless  bool
	users     int
	rate      float64
	runTime   string
	expect    int
	host      string
	stopTO    int
	extraArgs []string
	files     map[string]string // written into the master's directory (e.g. a workload)
	env       []string          // extra environment (e.g. the workload's key variables)
	noWait    bool              // do not wait for it to listen: it is expected to fail
	port      int               // the workers' port; 0 picks a free one
}

// startMaster starts a master running the project's locustfile.py (and the modules it
// imports from beside it, difyload_*.py).
func (e *env) startMaster(t *testing.T, o masterOpts) *master {
	t.Helper()
	files := map[string]string{}
	mods, _ := filepath.Glob(filepath.Join(e.root, "difyload_*.py"))
	for _, src := range append([]string{filepath.Join(e.root, "locustfile.py")}, mods...) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(src)] = string(b)
	}
	for name, content := range o.files {
		files[name] = content
	}
	lo := locusttest.MasterOptions{Version: o.version, Port: o.port, NoWait: o.noWait, Env: o.env}
	if o.host != "" {
		lo.Args = append(lo.Args, "--host", o.host)
	}
	if o.stopTO > 0 {
		lo.Args = append(lo.Args, "--stop-timeout", strconv.Itoa(o.stopTO))
	}
	if o.headless {
		lo.Headless = &locusttest.Headless{Users: o.users, SpawnRate: o.rate, RunTime: o.runTime, ExpectWorkers: o.expect}
	}
	return e.launchMaster(t, "m-", "locustfile.py", files, lo, o.extraArgs...)
}

// launchMaster starts a master in a new directory below env.workDir (removed after a
// passing test), where it finds files; its CSVs are run_*.csv there. In extraArgs,
// "{dir}" is that directory relative to the master's working directory.
func (e *env) launchMaster(t *testing.T, prefix, locustfile string, files map[string]string, o locusttest.MasterOptions, extraArgs ...string) *master {
	t.Helper()
	dir, err := os.MkdirTemp(e.workDir, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	rel, _ := filepath.Rel(e.workDir, dir)
	o.Dir, o.KeepMount = e.workDir, true // one bind mount of workDir serves every master
	o.Files = map[string]string{}
	for name, content := range files {
		o.Files[filepath.Join(rel, name)] = content
	}
	o.Locustfile = filepath.Join(rel, locustfile)
	o.CSV = filepath.Join(rel, "run")
	o.LogLevel = "INFO"
	for _, a := range extraArgs {
		o.Args = append(o.Args, strings.ReplaceAll(a, "{dir}", rel))
	}
	lm := locusttest.StartMasterT(t, o)
	return &master{proc: &proc{lm.Proc}, dir: dir, rel: rel, port: lm.Port, webPort: lm.WebPort}
}

func (e *env) startWorker(t *testing.T, m *master, args ...string) *proc {
	t.Helper()
	argv := append([]string{e.binary, "worker", "--master-host", "127.0.0.1", "--master-port", strconv.Itoa(m.port), "--log-level", "debug"}, args...)
	return start(t, "worker", e.workDir, argv)
}

// startPythonWorker runs locustfile.py on a Python worker of the same Locust version.
func (e *env) startPythonWorker(t *testing.T, version string, m *master) *proc {
	t.Helper()
	argv := append(locustbin.Require(t, version), "-f", filepath.Join(m.rel, "locustfile.py"), "--worker",
		"--master-host", "127.0.0.1", "--master-port", strconv.Itoa(m.port))
	return start(t, "python worker", e.workDir, argv)
}

// csvRows reads a Locust CSV into maps keyed by the header.
func csvRows(t *testing.T, path string) []map[string]string { return locusttest.CSVRows(t, path) }

// statsRow finds the (Type, Name) row of a *_stats.csv.
func statsRow(rows []map[string]string, typ, name string) map[string]string {
	for _, r := range rows {
		if r["Type"] == typ && r["Name"] == name {
			return r
		}
	}
	return nil
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("not an integer: %q", s)
	}
	return n
}

// failureCounts sums a *_failures.csv by error text. Masters before 2.28 show string
// errors repr()'d ('text'); the quotes are stripped so both versions compare alike.
func failureCounts(t *testing.T, path string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, r := range csvRows(t, path) {
		msg := r["Error"]
		if len(msg) >= 2 && (msg[0] == '\'' || msg[0] == '"') && msg[len(msg)-1] == msg[0] {
			msg = msg[1 : len(msg)-1]
		}
		out[r["Method"]+" "+r["Name"]+": "+msg] += atoi(t, r["Occurrences"])
	}
	return out
}

// web is the master's web API.
type web struct{ base string }

func (m *master) web() web { return web{base: fmt.Sprintf("http://127.0.0.1:%d", m.webPort)} }

func (w web) swarm(t *testing.T, users int, rate float64, host string) {
	t.Helper()
	form := url.Values{"user_count": {strconv.Itoa(users)}, "spawn_rate": {strconv.FormatFloat(rate, 'f', -1, 64)}}
	if host != "" {
		form.Set("host", host)
	}
	resp, err := locusttest.PostForm(w.base+"/swarm", form)
	if err != nil {
		t.Fatalf("POST /swarm: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /swarm: %d %s", resp.StatusCode, body)
	}
}

func (w web) stop(t *testing.T) {
	t.Helper()
	resp, err := locusttest.Get(w.base + "/stop")
	if err != nil {
		t.Fatalf("GET /stop: %v", err)
	}
	resp.Body.Close()
}

// uiStats is the part of /stats/requests the tests read.
type uiStats struct {
	State     string `json:"state"`
	UserCount int    `json:"user_count"`
	Stats     []struct {
		Method      string `json:"method"`
		Name        string `json:"name"`
		NumRequests int64  `json:"num_requests"`
		NumFailures int64  `json:"num_failures"`
	} `json:"stats"`
	Errors []struct {
		Method      string `json:"method"`
		Name        string `json:"name"`
		Error       string `json:"error"`
		Occurrences int64  `json:"occurrences"`
	} `json:"errors"`
	Workers []struct {
		ID        string `json:"id"`
		State     string `json:"state"`
		UserCount int    `json:"user_count"`
	} `json:"workers"`
}

func (w web) stats(t *testing.T) (uiStats, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.base+"/stats/requests", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return uiStats{}, false
	}
	defer resp.Body.Close()
	var s uiStats
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&s) != nil {
		return uiStats{}, false
	}
	return s, true
}

func (s uiStats) row(method, name string) (req, fail int64) {
	for _, r := range s.Stats {
		if r.Method == method && r.Name == name {
			return r.NumRequests, r.NumFailures
		}
	}
	return 0, 0
}

// waitOneReady waits until the master lists exactly one worker, in state ready.
func (w web) waitOneReady(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "the worker to be ready", func() bool {
		s, ok := w.stats(t)
		return ok && len(s.Workers) == 1 && s.Workers[0].State == "ready"
	})
}
