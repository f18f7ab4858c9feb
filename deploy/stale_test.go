package deploy

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Docker test names what it creates after its process id: compose projects
// difyloadt<pid><suffix> and the image difyload/difyload:test-<pid>. A run that was
// interrupted (go test's timeout, Ctrl-C, a killed CI job) never reaches its cleanup, so
// the next run removes whatever belongs to a process id that is no longer alive.
var (
	staleProjectRe = regexp.MustCompile(`^difyloadt([0-9]+)[a-z0-9]*$`)
	staleImageRe   = regexp.MustCompile(`^difyload/difyload:test-([0-9]+)$`)
)

// stalePIDOf returns the process id in name if name is one of the test's own and that
// process is gone (not this one, not a concurrent run).
func stalePIDOf(re *regexp.Regexp, name string, alive func(pid int) bool) (int, bool) {
	m := re.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 || pid == os.Getpid() || alive(pid) {
		return 0, false
	}
	return pid, true
}

// processAlive: signal 0 reaches the process (EPERM means it exists, owned by another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// removeStale takes down the compose projects and removes the test images that an
// interrupted earlier run left behind. Failures are logged, not fatal: the run's own
// project names cannot collide with them.
func removeStale(ctx context.Context, t *testing.T, compose []string) {
	t.Helper()
	projects := map[string]bool{}
	for _, args := range [][]string{
		{"ps", "-a", "--format", `{{.Label "com.docker.compose.project"}}`},
		{"network", "ls", "--format", `{{.Label "com.docker.compose.project"}}`},
		{"volume", "ls", "--format", `{{.Label "com.docker.compose.project"}}`},
	} {
		out, err := run(ctx, time.Minute, nil, "docker", args...)
		if err != nil {
			t.Logf("docker %s: %v %s", strings.Join(args, " "), err, tail(out, 3))
			continue
		}
		for _, p := range strings.Fields(out) {
			if _, ok := stalePIDOf(staleProjectRe, p, processAlive); ok {
				projects[p] = true
			}
		}
	}
	names := make([]string, 0, len(projects))
	for p := range projects {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		args := append(append([]string{}, compose[1:]...), "-f", "compose/docker-compose.yml", "-p", p, "down", "-v", "--remove-orphans", "-t", "1")
		if out, err := run(ctx, 2*time.Minute, nil, compose[0], args...); err != nil {
			t.Logf("removing stale compose project %s: %v %s", p, err, tail(out, 5))
		} else {
			t.Logf("removed compose project %s left by an interrupted run", p)
		}
	}
	out, err := run(ctx, time.Minute, nil, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "difyload/difyload")
	if err != nil {
		t.Logf("docker image ls: %v %s", err, tail(out, 3))
		return
	}
	for _, img := range strings.Fields(out) {
		if _, ok := stalePIDOf(staleImageRe, img, processAlive); !ok {
			continue
		}
		if o, err := run(ctx, 2*time.Minute, nil, "docker", "rmi", "--no-prune", img); err != nil {
			t.Logf("removing stale image %s: %v %s", img, err, tail(o, 3))
		} else {
			t.Logf("removed image %s left by an interrupted run", img)
		}
	}
}

func TestStalePIDOf(t *testing.T) {
	t.Parallel()
	self := os.Getpid()
	alive := func(pid int) bool { return pid == 4242 }
	for _, c := range []struct {
		re    *regexp.Regexp
		name  string
		stale bool
	}{
		{staleProjectRe, "difyloadt999999l246", true},
		{staleProjectRe, "difyloadt999999l212", true},
		{staleProjectRe, "difyloadt4242l246", false}, // a run still going
		{staleProjectRe, "difyloadt" + strconv.Itoa(self) + "l246", false},
		{staleProjectRe, "difyload", false}, // the user's own compose project
		{staleProjectRe, "myproject", false},
		{staleImageRe, "difyload/difyload:test-999999", true},
		{staleImageRe, "difyload/difyload:test-4242", false},
		{staleImageRe, "difyload/difyload:latest", false},
		{staleImageRe, "other/difyload:test-999999", false},
	} {
		if _, got := stalePIDOf(c.re, c.name, alive); got != c.stale {
			t.Errorf("%s: stale %v, want %v", c.name, got, c.stale)
		}
	}
}

// TestRemoveStale plants what an interrupted run leaves (a compose network of project
// difyloadt<dead pid>… and a test image tag) and checks that removeStale takes both away
// and leaves a live project's alone.
func TestRemoveStale(t *testing.T) {
	if testing.Short() || os.Getenv("DIFYLOAD_DOCKER_TESTS") == "0" {
		t.Skip("Docker test (-short or DIFYLOAD_DOCKER_TESTS=0)")
	}
	ctx := context.Background()
	if out, err := run(ctx, 30*time.Second, nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("no usable Docker engine: %v %s", err, tail(out, 3))
	}
	compose := composeCommand(ctx)
	if compose == nil {
		t.Skip("Docker engine without Compose")
	}
	dead := 4194000 // above any pid_max default: never a live process
	for processAlive(dead) {
		dead++
	}
	project := fmt.Sprintf("difyloadt%dl246", dead)
	live := fmt.Sprintf("difyloadt%dl246", os.Getpid())
	for _, p := range []string{project, live} {
		if out, err := run(ctx, time.Minute, nil, "docker", "network", "create", "--label", "com.docker.compose.project="+p,
			"--label", "com.docker.compose.network=difyload", p+"_difyload"); err != nil {
			t.Fatalf("docker network create: %v %s", err, out)
		}
	}
	t.Cleanup(func() { _, _ = run(ctx, time.Minute, nil, "docker", "network", "rm", live+"_difyload") })
	image := fmt.Sprintf("difyload/difyload:test-%d", dead)
	if out, err := run(ctx, time.Minute, nil, "docker", "tag", "debian:bookworm-slim", image); err != nil {
		t.Skipf("no debian:bookworm-slim to tag (scripts/images.sh makes it): %v %s", err, out)
	}
	removeStale(ctx, t, compose)
	if out, _ := run(ctx, time.Minute, nil, "docker", "network", "ls", "--format", "{{.Name}}"); strings.Contains(out, project) || !strings.Contains(out, live) {
		t.Errorf("networks after removeStale:\n%s\nwant %s gone and %s kept", out, project, live)
	}
	if out, _ := run(ctx, time.Minute, nil, "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(out, image) {
		t.Errorf("image %s left after removeStale", image)
	}
}
