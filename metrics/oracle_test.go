package metrics

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/difyload/difyload/internal/locustbin"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Locust sources used as oracles. Only pure code is used: the files are
// copied next to stub modules so the host python3 can import locust.stats
// without gevent or the rest of Locust.
const (
	locustPkg    = "usr/lib/python3/dist-packages/locust"  // inside the locust-latest chroot: 2.46.7
	locustOldDir = "/usr/lib/python3/dist-packages/locust" // 2.12.1
)

// python runs script with python3 (skipping the test when there is none),
// feeding stdin, and returns stdout. dir, if set, is put first on sys.path.
func python(t *testing.T, dir, script string, stdin []byte) []byte {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		locustbin.Missing(t, "python3 not installed")
	}
	cmd := exec.CommandContext(t.Context(), py, "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	if dir != "" {
		cmd.Env = append(cmd.Env, "PYTHONPATH="+dir)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.Bytes())
	}
	return out
}

// locustStats returns a directory holding an importable "locust" package
// made of Locust 2.46's stats.py, exception.py, util/date.py and
// util/rounding.py plus a stub gevent module, or skips the test.
func locustStats(t *testing.T) string {
	t.Helper()
	locustLatestDir := filepath.Join(locustbin.ChrootRoot(), locustPkg)
	if _, err := os.Stat(filepath.Join(locustLatestDir, "stats.py")); err != nil {
		locustbin.Missing(t, "Locust 2.46 sources not available (scripts/setup.sh builds them)")
	}
	dir := t.TempDir()
	files := map[string]string{
		"locust/stats.py":         filepath.Join(locustLatestDir, "stats.py"),
		"locust/exception.py":     filepath.Join(locustLatestDir, "exception.py"),
		"locust/util/date.py":     filepath.Join(locustLatestDir, "util/date.py"),
		"locust/util/rounding.py": filepath.Join(locustLatestDir, "util/rounding.py"),
	}
	stubs := map[string]string{
		"locust/__init__.py":      "",
		"locust/util/__init__.py": "",
		"gevent.py":               "def sleep(*args, **kwargs):\n    pass\n",
	}
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Skipf("read %s: %v", src, err)
		}
		stubs[dst] = string(b)
	}
	for name, content := range stubs {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
