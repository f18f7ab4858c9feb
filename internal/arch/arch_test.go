package arch

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/difyload/difyload"

// rule says which of the module's packages pkg may depend on (directly or not).
// allowed nil means none; a package the table does not name may import anything.
type rule struct {
	pkg     string
	allowed []string
}

// mapRules is the package map of doc.go, as arrows.
func mapRules() []rule {
	return []rule{
		{pkg: "sse", allowed: []string{"sse/internal/jsonscan", "sse/internal/h1"}},
		{pkg: "sse/internal/jsonscan"},
		{pkg: "sse/internal/h1"},
		{pkg: "metrics"},
		{pkg: "runner"},
		{pkg: "difymock"},
		{pkg: "report"},
		{pkg: "internal/locustbin"},
		{pkg: "internal/locusttest", allowed: []string{"internal/locustbin"}},
		{pkg: "workload", allowed: []string{"sse", "sse/internal/jsonscan", "sse/internal/h1"}},
		{pkg: "tasks", allowed: []string{"runner", "sse", "sse/internal/jsonscan", "sse/internal/h1", "metrics", "workload"}},
		{pkg: "worker", allowed: []string{"runner", "metrics"}},
	}
}

// violations lists every dependency of deps (package → its module dependencies,
// relative to the module) that rules forbid, and every ruled package that is missing.
func violations(deps map[string][]string, rules []rule) []string {
	var out []string
	for _, r := range rules {
		ds, ok := deps[r.pkg]
		if !ok {
			out = append(out, r.pkg+": package not found (the map names a package that is gone)")
			continue
		}
		for _, d := range ds {
			if d != r.pkg && !slices.Contains(r.allowed, d) {
				out = append(out, r.pkg+" imports "+d)
			}
		}
	}
	return out
}

// moduleDeps runs go list -deps over the module and returns, per package of the
// module, the module's packages it depends on (production code, not tests).
func moduleDeps(t *testing.T, tags string) map[string][]string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	args := []string{"list", "-json=ImportPath,Deps", "./..."}
	if tags != "" {
		args = []string{"list", "-tags", tags, "-json=ImportPath,Deps", "./..."}
	}
	cmd := exec.CommandContext(t.Context(), gobin, args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		name, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		var mine []string
		for _, d := range p.Deps {
			if rd, ok := relative(d); ok {
				mine = append(mine, rd)
			}
		}
		deps[name] = mine
	}
	if len(deps) == 0 {
		t.Fatal("go list found no package of the module")
	}
	return deps
}

func relative(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, module+"/")
	return rest, ok
}

// TestArrows: the module's real import graph keeps every arrow of the map.
func TestArrows(t *testing.T) {
	t.Parallel()
	for _, tags := range []string{"", "goczmq"} {
		for _, v := range violations(moduleDeps(t, tags), mapRules()) {
			t.Errorf("tags %q: %s", tags, v)
		}
	}
}

// TestViolations: the checker catches a forbidden arrow, a transitive one and a
// package that vanished, and accepts what the rules allow.
func TestViolations(t *testing.T) {
	t.Parallel()
	deps := map[string][]string{
		"runner": {"metrics"},
		"worker": {"runner", "metrics", "tasks", "sse"}, // sse only through tasks
		"tasks":  {"runner", "sse"},
	}
	rules := []rule{
		{pkg: "runner"},
		{pkg: "worker", allowed: []string{"runner", "metrics"}},
		{pkg: "tasks", allowed: []string{"runner", "sse"}},
		{pkg: "sse"},
	}
	got := violations(deps, rules)
	want := []string{
		"runner imports metrics",
		"worker imports tasks",
		"worker imports sse",
		"sse: package not found (the map names a package that is gone)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations =\n%q\nwant\n%q", got, want)
	}
}
