package deploy

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/difyload/difyload/difymock"
)

// dockerBudget bounds the whole Docker test: base images, the image build and the fleet
// scenario against both masters. Every step inside has its own, shorter bound.
const dockerBudget = 14 * time.Minute

// fleetVersion is one master under test.
type fleetVersion struct {
	name      string // subtest name
	short     string // compose project suffix
	image     string // the master's (and Python worker's) image, from scripts/images.sh
	pyWorkers int    // stock Python workers in the fleet
}

// fleetVersions: Debian's 2.12.1 worker cannot join Debian's 2.12.1 master (its version
// string is empty, which that master rejects), so that fleet has Go workers only.
func fleetVersions() []fleetVersion {
	return []fleetVersion{
		{name: "locust-2.46", short: "l246", image: "difyload/locust:2.46", pyWorkers: 1},
		{name: "locust-2.12.1", short: "l212", image: "difyload/locust:2.12.1", pyWorkers: 0},
	}
}

const (
	goWorkers = 4
	fullUsers = 20
	mockHost  = "http://mock:5001"
)

// run runs a command with a bound and returns its combined output.
func run(ctx context.Context, bound time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: no result within %s: %w", name, strings.Join(args, " "), bound, ctx.Err())
	}
	return out.String(), err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// composeCommand finds the Compose tool: the v2 plugin, else the standalone docker-compose.
func composeCommand(ctx context.Context) []string {
	if _, err := run(ctx, 30*time.Second, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		if _, err := run(ctx, 30*time.Second, nil, "docker-compose", "version"); err == nil {
			return []string{"docker-compose"}
		}
	}
	return nil
}

func TestDockerFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the Docker fleet test")
	}
	if os.Getenv("DIFYLOAD_DOCKER_TESTS") == "0" {
		t.Skip("DIFYLOAD_DOCKER_TESTS=0")
	}
	budget := dockerBudget
	if dl, ok := t.Deadline(); ok && time.Until(dl)-30*time.Second < budget {
		budget = time.Until(dl) - 30*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	if out, err := run(ctx, 30*time.Second, nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("no usable Docker engine: docker info: %v %s", err, tail(out, 3))
	}
	compose := composeCommand(ctx)
	if compose == nil {
		t.Skip("Docker engine without Compose (neither `docker compose` nor `docker-compose` works)")
	}
	begin := time.Now()
	removeStale(ctx, t, compose)

	// The base images: local stand-ins on a machine without a registry (idempotent).
	out, err := run(ctx, 10*time.Minute, os.Environ(), "bash", "../scripts/images.sh")
	if err != nil {
		t.Fatalf("scripts/images.sh: %v\n%s", err, tail(out, 20))
	}
	t.Logf("base images ready after %s", time.Since(begin).Round(time.Second))

	image := fmt.Sprintf("difyload/difyload:test-%d", os.Getpid())
	buildStart := time.Now()
	out, err = run(ctx, 10*time.Minute, os.Environ(), "docker", "build", "-t", image, "..")
	if err != nil {
		t.Fatalf("docker build: %v\n%s", err, tail(out, 40))
	}
	t.Cleanup(func() {
		// The tag, and the legacy builder's step images from the sources on (stale as soon as
		// a source changes); --no-prune keeps the layers below them (Debian packages, Go
		// modules): the next run's cache. BuildKit prints no step images: nothing to do.
		if out, err := run(context.Background(), 2*time.Minute, nil, "docker", "rmi", "--no-prune", image); err != nil {
			t.Errorf("docker rmi %s: %v %s", image, err, out)
		}
		steps := staleStepImages(out)
		for i := len(steps) - 1; i >= 0; i-- {
			if o, err := run(context.Background(), time.Minute, nil, "docker", "rmi", "--no-prune", steps[i]); err != nil && !strings.Contains(o, "No such image") {
				t.Logf("docker rmi %s: %s", steps[i], strings.TrimSpace(o)) // shared with another image: kept
			}
		}
	})
	t.Logf("docker build %s: %s", image, time.Since(buildStart).Round(time.Second))
	checkImage(ctx, t, image)

	for _, v := range fleetVersions() {
		t.Run(v.name, func(t *testing.T) {
			start := time.Now()
			runFleet(ctx, t, compose, image, v)
			t.Logf("%s fleet scenario: %s", v.name, time.Since(start).Round(time.Second))
		})
	}
	t.Logf("Docker test total: %s", time.Since(begin).Round(time.Second))
}

// staleStepImages picks, from a legacy `docker build` log, the step images that depend on the
// sources: the build stage from `COPY . .` on, the runtime stage from `COPY --from` on.
func staleStepImages(log string) []string {
	stepRe := regexp.MustCompile(`^Step \d+/\d+ : (.*)$`)
	idRe := regexp.MustCompile(`^ ---> ([0-9a-f]{12})$`)
	var ids []string
	stale := false
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimRight(line, "\r")
		if m := stepRe.FindStringSubmatch(line); m != nil {
			switch {
			case strings.HasPrefix(m[1], "COPY . "), strings.HasPrefix(m[1], "COPY --from="):
				stale = true
			case strings.HasPrefix(m[1], "FROM "):
				stale = false
			}
			continue
		}
		if m := idRe.FindStringSubmatch(line); m != nil && stale {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// checkImage: the runtime image runs difyload as a non-root user, holds the runtime
// libraries and not the toolchain, and no key in any layer.
func checkImage(ctx context.Context, t *testing.T, image string) {
	t.Helper()
	out, err := run(ctx, time.Minute, nil, "docker", "image", "inspect", image, "--format", "{{json .Config}}")
	if err != nil {
		t.Fatalf("docker image inspect: %v %s", err, out)
	}
	var cfg struct {
		User       string
		Entrypoint []string
		Cmd        []string
		Env        []string
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("image config: %v: %s", err, out)
	}
	if cfg.User == "" || cfg.User == "root" || strings.HasPrefix(cfg.User, "0") {
		t.Errorf("image runs as %q, want a non-root user", cfg.User)
	}
	if strings.Join(cfg.Entrypoint, " ") != "difyload" || strings.Join(cfg.Cmd, " ") != "worker" {
		t.Errorf("ENTRYPOINT %v CMD %v, want [difyload] [worker]", cfg.Entrypoint, cfg.Cmd)
	}
	secretName := regexp.MustCompile(`(?i)(KEY|SECRET|TOKEN|PASSWORD)`)
	for _, e := range cfg.Env {
		if name, _, _ := strings.Cut(e, "="); secretName.MatchString(name) {
			t.Errorf("image sets %s: no secret may be baked in", name)
		}
	}
	hist, err := run(ctx, time.Minute, nil, "docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
	if err != nil {
		t.Fatalf("docker history: %v %s", err, hist)
	}
	for _, key := range []string{difymock.SimpleChatKey, difymock.ComplexChatKey, difymock.DatasetKey, "Bearer "} {
		if strings.Contains(hist, key) {
			t.Errorf("a layer's history contains %q", key)
		}
	}
	checks := []struct {
		entrypoint string
		args       []string
		want       *regexp.Regexp
	}{
		{"", []string{"version"}, regexp.MustCompile(`^difyload \S+\n$`)},
		{"id", []string{"-u"}, regexp.MustCompile(`^[1-9][0-9]*\n$`)},
		// every shared library resolves, libczmq among them; no Go toolchain, no compiler
		{"sh", []string{"-c", `ldd /usr/local/bin/difyload | grep -c "not found"; ldd /usr/local/bin/difyload | grep -c libczmq; command -v go gcc | wc -l`}, regexp.MustCompile(`^0\n1\n0\n$`)},
	}
	for _, c := range checks {
		args := []string{"run", "--rm", "--network", "none"}
		if c.entrypoint != "" {
			args = append(args, "--entrypoint", c.entrypoint)
		}
		args = append(append(args, image), c.args...)
		out, err := run(ctx, time.Minute, nil, "docker", args...)
		if err != nil || !c.want.MatchString(out) {
			t.Errorf("docker %s: %v, output %q, want %s", strings.Join(args, " "), err, out, c.want)
		}
	}
}

// fleet is one compose project on the engine.
type fleet struct {
	t       *testing.T
	compose []string
	project string
	env     []string
	client  *http.Client
	start   time.Time
}

func (f *fleet) logf(format string, args ...any) {
	f.t.Helper()
	f.t.Logf("[%6.1fs] %s", time.Since(f.start).Seconds(), fmt.Sprintf(format, args...))
}

func (f *fleet) run(ctx context.Context, bound time.Duration, args ...string) (string, error) {
	all := append(append(append([]string{}, f.compose[1:]...), "-f", "compose/docker-compose.yml", "-p", f.project), args...)
	return run(ctx, bound, f.env, f.compose[0], all...)
}

func (f *fleet) must(ctx context.Context, bound time.Duration, args ...string) string {
	f.t.Helper()
	out, err := f.run(ctx, bound, args...)
	if err != nil {
		f.t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, tail(out, 30))
	}
	return out
}

func (f *fleet) docker(ctx context.Context, args ...string) string {
	f.t.Helper()
	out, err := run(ctx, time.Minute, nil, "docker", args...)
	if err != nil {
		f.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, tail(out, 10))
	}
	return out
}

// url is where a service's published port is on the host (it changes on a restart).
func (f *fleet) url(ctx context.Context, service, port string) (string, error) {
	out, err := f.run(ctx, 30*time.Second, "port", service, port)
	addr := strings.TrimSpace(out)
	if err != nil {
		return "", fmt.Errorf("compose port %s %s: %w %q", service, port, err, out)
	}
	if !strings.Contains(addr, ":") || strings.HasSuffix(addr, ":0") {
		return "", fmt.Errorf("compose port %s %s: no published address in %q", service, port, out)
	}
	return "http://" + addr, nil
}

type container struct {
	id, name, service, state string
}

// containers lists the project's containers by their hostname (the short id), which is
// the first part of a Locust node id (hostname_uuid).
func (f *fleet) containers(ctx context.Context) map[string]container {
	f.t.Helper()
	out := f.docker(ctx, "ps", "-a", "--no-trunc", "--filter", "label=com.docker.compose.project="+f.project,
		"--format", `{{.ID}}\t{{.Names}}\t{{.Label "com.docker.compose.service"}}\t{{.State}}`)
	m := map[string]container{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		p := strings.Split(line, "\t")
		if len(p) != 4 {
			continue
		}
		m[p[0][:12]] = container{id: p[0], name: p[1], service: p[2], state: p[3]}
	}
	return m
}

type workerInfo struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	UserCount int    `json:"user_count"`
}

func (w workerInfo) host() string { h, _, _ := strings.Cut(w.ID, "_"); return h }

type masterState struct {
	State     string       `json:"state"`
	UserCount int          `json:"user_count"`
	Workers   []workerInfo `json:"workers"`
	Stats     []struct {
		Method      string `json:"method"`
		Name        string `json:"name"`
		NumRequests int64  `json:"num_requests"`
	} `json:"stats"`
}

func (m masterState) total() int64 {
	for _, s := range m.Stats {
		if s.Name == "Aggregated" {
			return s.NumRequests
		}
	}
	return 0
}

// live are the workers the master has not marked missing, and their users.
func (m masterState) live() (n, users int) {
	for _, w := range m.Workers {
		if w.State != "missing" {
			n++
			users += w.UserCount
		}
	}
	return n, users
}

func (m masterState) String() string {
	var ws []string
	for _, w := range m.Workers {
		ws = append(ws, fmt.Sprintf("%s:%s/%d", w.host(), w.State, w.UserCount))
	}
	return fmt.Sprintf("state=%s users=%d workers=[%s] requests=%d", m.State, m.UserCount, strings.Join(ws, " "), m.total())
}

func (f *fleet) get(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, tail(string(body), 3))
	}
	if b, ok := v.(*[]byte); ok {
		*b = body
		return nil
	}
	return json.Unmarshal(body, v)
}

func (f *fleet) post(ctx context.Context, u string, form url.Values) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s %s", u, resp.Status, tail(string(body), 3))
	}
	return nil
}

// waitFor polls cond every 500ms until it holds; past bound the test fails with the last
// observation.
func (f *fleet) waitFor(ctx context.Context, what string, bound time.Duration, cond func(ctx context.Context) (bool, string)) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	start := time.Now()
	last := "(nothing observed)"
	for {
		ok, obs := cond(ctx)
		if obs != "" {
			last = obs
		}
		if ok {
			f.logf("%s (%.1fs): %s", what, time.Since(start).Seconds(), last)
			return
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("%s: not within %s; last seen: %s", what, bound, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitMaster waits for a master condition through its HTTP API.
func (f *fleet) waitMaster(ctx context.Context, master *string, what string, bound time.Duration, cond func(masterState) bool) masterState {
	f.t.Helper()
	var got masterState
	f.waitFor(ctx, what, bound, func(ctx context.Context) (bool, string) {
		if *master == "" {
			u, err := f.url(ctx, "master", "8089")
			if err != nil {
				return false, err.Error()
			}
			*master = u
		}
		var m masterState
		if err := f.get(ctx, *master+"/stats/requests", &m); err != nil {
			return false, err.Error()
		}
		got = m
		return cond(m), m.String()
	})
	return got
}

func (f *fleet) swarm(ctx context.Context, master string, users int) {
	f.t.Helper()
	form := url.Values{"user_count": {strconv.Itoa(users)}, "spawn_rate": {strconv.Itoa(max(users, 1))}, "host": {mockHost}}
	if err := f.post(ctx, master+"/swarm", form); err != nil {
		f.t.Fatal(err)
	}
	f.logf("POST /swarm user_count=%d", users)
}

type mockTruth struct {
	Counts   map[string]map[string]int64 `json:"counts"`
	InFlight int64                       `json:"in_flight"`
}

func finished(byOutcome map[string]int64) int64 {
	var n int64
	for outcome, c := range byOutcome {
		if outcome != difymock.OutcomeClientGone {
			n += c
		}
	}
	return n
}

func runFleet(ctx context.Context, t *testing.T, compose []string, image string, v fleetVersion) {
	env := []string{
		"DIFYLOAD_IMAGE=" + image,
		"LOCUST_IMAGE=" + v.image,
		"DIFYLOAD_UI_BIND=127.0.0.1:", // → 127.0.0.1::8089, an ephemeral loopback port
		"DIFYLOAD_MOCK_BIND=127.0.0.1:",
		"DIFYLOAD_MASTER_BIND=127.0.0.1:",
		"DIFYLOAD_TARGET=" + mockHost,
		"DIFYLOAD_LOG_LEVEL=info",
	}
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(name, "DIFY") || name == "LOCUST_IMAGE" || name == "COMPOSE_PROJECT_NAME" || name == "COMPOSE_FILE" {
			continue // no key or setting of the caller's reaches the fleet
		}
		env = append(env, e)
	}
	f := &fleet{
		t: t, compose: compose, env: env,
		project: fmt.Sprintf("difyloadt%d%s", os.Getpid(), v.short),
		client:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		start:   time.Now(),
	}
	t.Cleanup(func() {
		// t's context is done when cleanups run; tear down under ctx's values, not its end.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := f.run(cctx, time.Minute, "logs", "--no-color", "--tail=40")
			t.Logf("compose logs (last 40 lines per container):\n%s", out)
		}
		if out, err := f.run(cctx, 2*time.Minute, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, tail(out, 10))
		}
	})

	// 1. One master, the mock, 4 Go workers and the Python worker(s), each its own container.
	f.must(ctx, 3*time.Minute, "up", "-d", "--no-build", "--scale", fmt.Sprintf("worker=%d", goWorkers), "--scale", fmt.Sprintf("pyworker=%d", v.pyWorkers))
	f.logf("compose up: master, mock, %d Go workers, %d Python workers", goWorkers, v.pyWorkers)
	var master string
	mock, err := f.url(ctx, "mock", "5001")
	if err != nil {
		t.Fatal(err)
	}
	all := goWorkers + v.pyWorkers
	m := f.waitMaster(ctx, &master, "all workers ready", 2*time.Minute, func(m masterState) bool {
		n := 0
		for _, w := range m.Workers {
			if w.State == "ready" {
				n++
			}
		}
		return n == all
	})
	cs := f.containers(ctx)
	initial := map[string]bool{}
	var goHosts []string
	for _, w := range m.Workers {
		c, ok := cs[w.host()]
		if !ok {
			t.Fatalf("worker %s matches no container of the project", w.ID)
		}
		if c.service != "worker" && c.service != "pyworker" {
			t.Fatalf("worker %s runs in %s (service %s)", w.ID, c.name, c.service)
		}
		initial[w.host()] = true
		if c.service == "worker" {
			goHosts = append(goHosts, w.host())
		}
	}
	sort.Strings(goHosts)
	if len(goHosts) != goWorkers {
		t.Fatalf("want %d Go workers among %v", goWorkers, m)
	}
	isPy := func(host string) bool { return cs[host].service == "pyworker" }

	// 2. Ramp 0 → N: every worker, Go and Python, gets users.
	f.swarm(ctx, master, fullUsers)
	f.waitMaster(ctx, &master, fmt.Sprintf("%d users on all %d workers", fullUsers, all), time.Minute, func(m masterState) bool {
		n, users := m.live()
		for _, w := range m.Workers {
			if w.UserCount == 0 {
				return false
			}
		}
		return m.State == "running" && m.UserCount == fullUsers && users == fullUsers && n == all
	})
	f.waitFor(ctx, "requests reach the mock and the master's stats", 30*time.Second, func(ctx context.Context) (bool, string) {
		var tr mockTruth
		var ms masterState
		if err := f.get(ctx, mock+"/_mock/stats", &tr); err != nil {
			return false, err.Error()
		}
		if err := f.get(ctx, master+"/stats/requests", &ms); err != nil {
			return false, err.Error()
		}
		return finished(tr.Counts[difymock.EndpointChat]) > 0 && finished(tr.Counts[difymock.EndpointRetrieve]) > 0 && ms.total() > 0,
			fmt.Sprintf("mock %v, master %d requests", tr.Counts, ms.total())
	})

	// 3. N → N/2.
	half := fullUsers / 2
	f.swarm(ctx, master, half)
	f.waitMaster(ctx, &master, fmt.Sprintf("ramped down to %d users", half), time.Minute, func(m masterState) bool {
		_, users := m.live()
		return m.State == "running" && m.UserCount == half && users == half
	})

	// 4. A worker container started mid-run gets users (--enable-rebalancing).
	f.must(ctx, 2*time.Minute, "up", "-d", "--no-build", "--no-recreate", "--scale", fmt.Sprintf("worker=%d", goWorkers+1), "--scale", fmt.Sprintf("pyworker=%d", v.pyWorkers))
	var added string
	for host, c := range f.containers(ctx) {
		if c.service == "worker" && !initial[host] {
			added = host
		}
	}
	if added == "" {
		t.Fatal("compose --scale worker=5 started no new worker container")
	}
	f.waitMaster(ctx, &master, "the added worker "+added+" gets users", time.Minute, func(m masterState) bool {
		_, users := m.live()
		for _, w := range m.Workers {
			if w.host() == added && w.State == "running" && w.UserCount > 0 {
				return users == half
			}
		}
		return false
	})

	// 5. The network between the master and one worker cut, then restored: the worker goes
	// missing, then heals itself and gets users again.
	cut := goHosts[1]
	network := f.project + "_difyload"
	f.docker(ctx, "network", "disconnect", network, cs[cut].name)
	f.logf("docker network disconnect %s %s", network, cs[cut].name)
	f.waitMaster(ctx, &master, "the cut-off worker is missing", time.Minute, func(m masterState) bool {
		for _, w := range m.Workers {
			if w.host() == cut {
				return w.State == "missing"
			}
		}
		return false
	})
	f.docker(ctx, "network", "connect", network, cs[cut].name)
	f.logf("docker network connect %s %s", network, cs[cut].name)
	f.waitMaster(ctx, &master, "the reconnected worker heals (no longer missing)", 2*time.Minute, func(m masterState) bool {
		for _, w := range m.Workers {
			if w.host() == cut {
				return w.State != "missing"
			}
		}
		return false
	})
	f.waitMaster(ctx, &master, "the healed worker has users", 2*time.Minute, func(m masterState) bool {
		_, users := m.live()
		for _, w := range m.Workers {
			if w.host() == cut && w.State == "running" && w.UserCount > 0 {
				return m.State == "running" && users >= half
			}
		}
		return false
	})
	// Locust 2.46 rebalances onto a healed worker. 2.12.1 moved the missing worker's users
	// to the others and, when it heals, counts the users it kept on top (more than N/2) until
	// the next spawn. Either way a new /swarm settles the fleet on N/2 exactly.
	f.swarm(ctx, master, half)
	f.waitMaster(ctx, &master, fmt.Sprintf("after the heal, exactly %d users again", half), time.Minute, func(m masterState) bool {
		_, users := m.live()
		for _, w := range m.Workers {
			if w.host() == cut && (w.State != "running" || w.UserCount == 0) {
				return false
			}
		}
		return m.State == "running" && m.UserCount == half && users == half
	})

	// 6. A worker container killed: marked missing, its users move, the test goes on.
	victim := goHosts[0]
	f.docker(ctx, "kill", cs[victim].name)
	f.logf("docker kill %s (%s)", cs[victim].name, victim)
	m = f.waitMaster(ctx, &master, "the killed worker is missing and its users moved", time.Minute, func(m masterState) bool {
		missing := false
		for _, w := range m.Workers {
			missing = missing || (w.host() == victim && w.State == "missing")
		}
		_, users := m.live()
		return missing && m.State == "running" && users == half
	})
	before := m.total()
	f.waitMaster(ctx, &master, "requests go on after the kill", 30*time.Second, func(m masterState) bool {
		return m.State == "running" && m.total() > before+int64(half)
	})

	// 7. N/2 → 0, then stop.
	f.swarm(ctx, master, 0)
	f.waitMaster(ctx, &master, "ramped down to 0 users", time.Minute, func(m masterState) bool {
		_, users := m.live()
		return m.UserCount == 0 && users == 0
	})
	if err := f.get(ctx, master+"/stop", new(json.RawMessage)); err != nil {
		t.Fatal(err)
	}
	f.waitMaster(ctx, &master, "stopped", time.Minute, func(m masterState) bool { return m.State == "stopped" })

	// 8. The master container restarted: every running Go worker registers with the new one.
	f.must(ctx, 2*time.Minute, "restart", "-t", "10", "master")
	f.logf("compose restart master")
	master = "" // a restart publishes the UI on a new ephemeral port
	var goLive []string
	for host, c := range f.containers(ctx) {
		if c.service == "worker" && c.state == "running" {
			goLive = append(goLive, host)
		}
	}
	sort.Strings(goLive)
	if len(goLive) != goWorkers { // 4 + 1 added - 1 killed
		t.Fatalf("want %d running Go worker containers, got %v", goWorkers, goLive)
	}
	f.waitMaster(ctx, &master, fmt.Sprintf("the new master knows the Go workers %v (and %d Python)", goLive, v.pyWorkers), 2*time.Minute, func(m masterState) bool {
		ready := map[string]bool{}
		py := 0
		for _, w := range m.Workers {
			if w.State == "ready" {
				ready[w.host()] = true
				if isPy(w.host()) {
					py++
				}
			}
		}
		for _, h := range goLive {
			if !ready[h] {
				return false
			}
		}
		return py == v.pyWorkers
	})

	// 9. The master's CSV totals equal the mock's counts of finished requests.
	if err := f.post(ctx, mock+"/_mock/reset", nil); err != nil {
		t.Fatal(err)
	}
	users := 12
	f.swarm(ctx, master, users)
	f.waitMaster(ctx, &master, fmt.Sprintf("%d users on the new master", users), time.Minute, func(m masterState) bool {
		_, u := m.live()
		return m.State == "running" && m.UserCount == users && u == users
	})
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(10 * time.Second):
	}
	if err := f.get(ctx, master+"/stop", new(json.RawMessage)); err != nil {
		t.Fatal(err)
	}
	f.logf("GET /stop")
	// After a stop, workers rejoin once the master's --stop-timeout has passed; by then
	// every final report is in.
	f.waitMaster(ctx, &master, "stopped, every worker ready again", time.Minute, func(m masterState) bool {
		n := 0
		for _, w := range m.Workers {
			if w.State == "ready" {
				n++
			}
		}
		return m.State == "stopped" && n == len(goLive)+v.pyWorkers
	})
	var rows map[string]csvRow
	var truth mockTruth
	var lastCSV []byte
	f.waitFor(ctx, "the master's CSV is stable and the mock idle", 30*time.Second, func(ctx context.Context) (bool, string) {
		var body []byte
		if err := f.get(ctx, master+"/stats/requests/csv", &body); err != nil {
			return false, err.Error()
		}
		if err := f.get(ctx, mock+"/_mock/stats", &truth); err != nil {
			return false, err.Error()
		}
		stable := lastCSV != nil && bytes.Equal(body, lastCSV) && truth.InFlight == 0
		lastCSV = body
		if !stable {
			time.Sleep(2 * time.Second)
			return false, fmt.Sprintf("mock in flight %d", truth.InFlight)
		}
		r, err := parseStatsCSV(body)
		if err != nil {
			t.Fatalf("master CSV: %v\n%s", err, body)
		}
		rows = r
		return true, fmt.Sprintf("mock %v", truth.Counts)
	})
	compareCounts(t, rows, truth)
}

type csvRow struct{ requests, failures int64 }

// parseStatsCSV reads Locust's requests CSV into rows keyed "Type Name".
func parseStatsCSV(body []byte) (map[string]csvRow, error) {
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) < 2 {
		return nil, errors.New("no rows")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for _, h := range []string{"Type", "Name", "Request Count", "Failure Count"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("no column %q in %v", h, recs[0])
		}
	}
	rows := map[string]csvRow{}
	for _, r := range recs[1:] {
		req, err1 := strconv.ParseInt(r[col["Request Count"]], 10, 64)
		fail, err2 := strconv.ParseInt(r[col["Failure Count"]], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("row %v: bad counts", r)
		}
		rows[strings.TrimSpace(r[col["Type"]]+" "+r[col["Name"]])] = csvRow{req, fail}
	}
	return rows, nil
}

// compareCounts: every request the mock finished is in the master's CSV, no more, no less.
// A chat the client abandoned (outcome client_gone) may have its POST row (the headers
// arrived) but has no Full Response row.
func compareCounts(t *testing.T, rows map[string]csvRow, truth mockTruth) {
	t.Helper()
	t.Logf("master CSV: %v; mock: %v", rows, truth.Counts)
	for ep := range truth.Counts {
		if ep != difymock.EndpointChat && ep != difymock.EndpointRetrieve {
			t.Errorf("the mock saw requests to %q: %v", ep, truth.Counts[ep])
		}
	}
	for ep, byOutcome := range truth.Counts {
		for outcome := range byOutcome {
			if outcome != difymock.OutcomeOK && outcome != difymock.OutcomeClientGone {
				t.Errorf("mock outcome %s/%s without injected faults", ep, outcome)
			}
		}
	}
	chat, retrieve := truth.Counts[difymock.EndpointChat], truth.Counts[difymock.EndpointRetrieve]
	full, post, ret := rows["SSE Full Response"], rows["POST /v1/chat-messages"], rows["POST /v1/datasets/[id]/retrieve"]
	if finished(chat) == 0 || finished(retrieve) == 0 {
		t.Fatalf("the mock finished no chat or no retrieve: %v", truth.Counts)
	}
	if full.requests != finished(chat) {
		t.Errorf("Full Response rows %d != chats the mock finished %d", full.requests, finished(chat))
	}
	if ret.requests != finished(retrieve) {
		t.Errorf("retrieve rows %d != retrieves the mock finished %d", ret.requests, finished(retrieve))
	}
	if post.requests < full.requests || post.requests > full.requests+chat[difymock.OutcomeClientGone] {
		t.Errorf("POST /v1/chat-messages rows %d outside [%d, %d]", post.requests, full.requests, full.requests+chat[difymock.OutcomeClientGone])
	}
	var sum, fails int64
	for name, r := range rows {
		fails += r.failures
		if name != "Aggregated" && !strings.HasPrefix(name, "SSE ") {
			sum += r.requests // Aggregated counts the requests, not the stream rows
		}
	}
	if fails != 0 {
		t.Errorf("failures in the master's CSV without injected faults: %v", rows)
	}
	if agg := rows["Aggregated"].requests; agg != sum || agg != post.requests+ret.requests {
		t.Errorf("Aggregated %d != the request rows %d (POST %d + retrieve %d)", agg, sum, post.requests, ret.requests)
	}
}

func TestStaleStepImages(t *testing.T) {
	t.Parallel()
	log := `Step 5/17 : WORKDIR /src
 ---> Using cache
 ---> 72474fb67223
Step 7/17 : RUN go mod download
 ---> Using cache
 ---> 9d8b5dacd7c8
Step 8/17 : COPY . .
 ---> 29050c4ae37b
Step 9/17 : ARG VERSION=dev
 ---> Running in 8c49c037c716
Removing intermediate container 8c49c037c716
 ---> 025ea89dd483
Step 11/17 : FROM ${RUNTIME_IMAGE}
 ---> c9be7805c702
Step 12/17 : RUN set -eux; apt-get update
 ---> Using cache
 ---> b6899eb65fc0
Step 13/17 : COPY --from=build /out/difyload /usr/local/bin/difyload
 ---> 089a51a21ae8
Step 17/17 : CMD ["worker"]
 ---> fd63c937c328
Successfully built fd63c937c328
`
	got := staleStepImages(log)
	want := []string{"29050c4ae37b", "025ea89dd483", "089a51a21ae8", "fd63c937c328"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := staleStepImages("#5 [build 3/6] COPY . .\n#5 DONE 0.1s\n"); len(got) != 0 {
		t.Errorf("BuildKit log: got %v, want none", got)
	}
}
