package locustbin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Versions a test can ask for.
const (
	V2_12  = "2.12.1" // Debian bookworm's python3-locust
	Latest = "latest" // Debian sid's python3-locust through scripts/locust-latest.sh
)

// Command returns the argv prefix that runs the Locust of version (V2_12 or
// Latest), or an error saying what is missing and how to get it.
func Command(version string) ([]string, error) {
	switch version {
	case V2_12:
		p := os.Getenv("DIFYLOAD_LOCUST_2_12")
		if p == "" {
			p = "/usr/bin/locust"
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("no Locust 2.12.1 at %s (scripts/setup.sh installs python3-locust; or set DIFYLOAD_LOCUST_2_12)", p)
		}
		return []string{p}, nil
	case Latest:
		p := os.Getenv("DIFYLOAD_LOCUST_LATEST")
		if p == "" {
			root, err := RepoRoot()
			if err != nil {
				return nil, err
			}
			p = filepath.Join(root, "scripts", "locust-latest.sh")
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("newest-Locust wrapper not found at %s (set DIFYLOAD_LOCUST_LATEST)", p)
		}
		return []string{"bash", p}, nil
	}
	return nil, fmt.Errorf("unknown Locust version %q", version)
}

// ChrootRoot is where scripts/locust-latest.sh keeps its chroot.
func ChrootRoot() string {
	if r := os.Getenv("LOCUST_LATEST_ROOT"); r != "" {
		return r
	}
	return "/var/tmp/locust-latest"
}

// Require returns Command(version), or skips t, or (in CI) fails it.
func Require(t testing.TB, version string) []string {
	t.Helper()
	argv, err := Command(version)
	if err != nil {
		Missing(t, err.Error())
	}
	return argv
}

// Missing skips t because something the test needs is absent; in CI it fails
// t instead.
func Missing(t testing.TB, why string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI: %s", why)
	}
	t.Skip(why)
}

// InCI reports whether CI is set to a true value (CI=true, CI=1).
func InCI() bool {
	b, _ := strconv.ParseBool(os.Getenv("CI"))
	return b
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
