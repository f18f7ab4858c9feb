package deploy

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const composeFile = "compose/docker-compose.yml"

type composeService struct {
	Image       string `json:"image"`
	Build       *struct{ Context, Dockerfile string }
	Command     []string           `json:"command"`
	Environment map[string]*string `json:"environment"`
	Volumes     []string           `json:"volumes"`
	Ports       []string           `json:"ports"`
	Networks    []string           `json:"networks"`
	Container   string             `json:"container_name"`
}

func loadCompose(t *testing.T) (map[string]composeService, map[string]any) {
	t.Helper()
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	var doc struct {
		Services map[string]composeService `json:"services"`
		Networks map[string]any            `json:"networks"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return doc.Services, doc.Networks
}

// interpolate applies Compose's ${VAR:-default} with every variable unset.
func interpolate(s string) string {
	return regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

func composeEnv(s composeService, name string) string {
	if v := s.Environment[name]; v != nil {
		return interpolate(*v)
	}
	return ""
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	svcs, networks := loadCompose(t)
	cliEnv := cliEnvNames(t)
	for _, name := range []string{"master", "mock", "worker", "pyworker"} {
		s, ok := svcs[name]
		if !ok {
			t.Fatalf("no service %q", name)
		}
		if len(s.Networks) != 1 || networks[s.Networks[0]] == nil {
			t.Errorf("%s: want exactly the project's private network, got %v", name, s.Networks)
		}
	}
	master, mock, worker, py := svcs["master"], svcs["mock"], svcs["worker"], svcs["pyworker"]

	// The master: the project's locustfile.py, the worker port, rebalancing.
	bind, ok1 := flagValue(master.Command, "--master-bind-port")
	web, ok2 := flagValue(master.Command, "--web-port")
	if !ok1 || !ok2 || !hasArg(master.Command, "--master") || !hasArg(master.Command, "--enable-rebalancing") {
		t.Fatalf("master command %v: want --master, --master-bind-port, --web-port, --enable-rebalancing", master.Command)
	}
	checkLocustfileVolume := func(name string, s composeService) {
		f, _ := flagValue(s.Command, "-f")
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) >= 2 && parts[1] == f {
				src, err := filepath.Abs(filepath.Join("compose", parts[0]))
				want, _ := filepath.Abs(locustfileRel)
				if err != nil || src != want {
					t.Errorf("%s: -f %s is mounted from %s, want the repository's locustfile.py", name, f, parts[0])
				}
				return
			}
		}
		t.Errorf("%s: -f %q is not a mounted file", name, f)
	}
	// The modules locustfile.py imports must be mounted beside it.
	checkModuleVolumes := func(name string, s composeService) {
		f, _ := flagValue(s.Command, "-f")
		mods, _ := filepath.Glob(filepath.Join(filepath.Dir(locustfileRel), "difyload_*.py"))
		for _, m := range mods {
			want, _ := filepath.Abs(m)
			found := false
			for _, v := range s.Volumes {
				parts := strings.Split(v, ":")
				src, err := filepath.Abs(filepath.Join("compose", parts[0]))
				if len(parts) >= 2 && err == nil && src == want && parts[1] == path.Join(path.Dir(f), filepath.Base(m)) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: %s is not mounted beside %s (locustfile.py imports it)", name, filepath.Base(m), f)
			}
		}
	}
	checkModuleVolumes("master", master)
	checkLocustfileVolume("master", master)
	if len(master.Ports) != 2 {
		t.Errorf("master ports %v: want the web UI and the worker port", master.Ports)
	}
	for i, want := range []string{web, bind} {
		if i < len(master.Ports) {
			p := interpolate(master.Ports[i])
			if !strings.HasSuffix(p, ":"+want) || !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("master port %s: want container port %s published on loopback by default", p, want)
			}
		}
	}

	// The Go workers: scalable, they dial the master's service name and worker port.
	if worker.Container != "" || len(worker.Ports) > 0 {
		t.Errorf("worker: container_name or published ports break --scale")
	}
	if len(worker.Command) != 1 || worker.Command[0] != "worker" {
		t.Errorf("worker command %v, want [worker]", worker.Command)
	}
	if composeEnv(worker, "LOCUST_MASTER_NODE_HOST") != "master" || composeEnv(worker, "LOCUST_MASTER_NODE_PORT") != bind {
		t.Errorf("worker dials %s:%s, want master:%s", composeEnv(worker, "LOCUST_MASTER_NODE_HOST"), composeEnv(worker, "LOCUST_MASTER_NODE_PORT"), bind)
	}
	if composeEnv(worker, "DIFYLOAD_WAIT_FOR_NEW_MASTER") != "true" {
		t.Errorf("worker: DIFYLOAD_WAIT_FOR_NEW_MASTER must be true (workers outlive a master restart)")
	}
	for _, s := range []struct {
		name string
		svc  composeService
	}{{"worker", worker}, {"mock", mock}} {
		for name := range s.svc.Environment {
			if !cliEnv[name] {
				t.Errorf("%s: env %s is not read by difyload (cmd/difyload)", s.name, name)
			}
		}
		if interpolate(s.svc.Image) != "difyload/difyload:latest" {
			t.Errorf("%s: image %s, want ${DIFYLOAD_IMAGE:-difyload/difyload:latest}", s.name, s.svc.Image)
		}
	}
	if mock.Build == nil || mock.Build.Context != "../.." || mock.Build.Dockerfile != "Dockerfile" {
		t.Errorf("mock: want build: {context: ../.., dockerfile: Dockerfile}")
	} else if _, err := os.Stat(filepath.Join("compose", mock.Build.Context, mock.Build.Dockerfile)); err != nil {
		t.Error(err)
	}

	// The Python worker: the master's image, its locustfile, its port.
	if py.Image != master.Image {
		t.Errorf("pyworker image %s, want the master's %s (same Locust version)", py.Image, master.Image)
	}
	if h, _ := flagValue(py.Command, "--master-host"); h != "master" {
		t.Errorf("pyworker --master-host=%s, want master", h)
	}
	if p, _ := flagValue(py.Command, "--master-port"); p != bind {
		t.Errorf("pyworker --master-port=%s, want %s", p, bind)
	}
	checkLocustfileVolume("pyworker", py)
	checkModuleVolumes("pyworker", py)

	// The mock listens on all interfaces of its container, where the master sends users.
	addr := composeEnv(mock, "DIFYLOAD_MOCK_ADDR")
	host, port, _ := strings.Cut(addr, ":")
	if host != "0.0.0.0" || composeEnv(mock, "DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK") != "true" {
		t.Errorf("mock: DIFYLOAD_MOCK_ADDR=%s, want 0.0.0.0:PORT with DIFYLOAD_MOCK_ALLOW_NON_LOOPBACK=true", addr)
	}
	if len(mock.Ports) != 1 || !strings.HasSuffix(interpolate(mock.Ports[0]), ":"+port) {
		t.Errorf("mock ports %v: want the mock's port %s", mock.Ports, port)
	}
	if got := composeEnv(master, "LOCUST_HOST"); got != "http://mock:"+port {
		t.Errorf("master LOCUST_HOST defaults to %q, want http://mock:%s", got, port)
	}

	// Keys: only passed through from the caller's environment, never written here.
	for _, s := range []composeService{master, py} {
		for _, k := range []string{"DIFY_SIMPLE_APP_KEY", "DIFY_COMPLEX_APP_KEY", "DIFY_DATASET_ID", "DIFY_DATASET_KEY"} {
			if v, ok := s.Environment[k]; !ok || v != nil {
				t.Errorf("%s: %s must be a pass-through (a name without a value)", s.Image, k)
			}
		}
	}
	raw, _ := os.ReadFile(composeFile)
	if regexp.MustCompile(`(app|dataset)-[A-Za-z0-9]{8,}`).Match(raw) {
		t.Errorf("%s contains something that looks like a Dify key", composeFile)
	}
}
