package locustbin

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandDefaultsInsideTheRepository(t *testing.T) {
	t.Setenv("DIFYLOAD_LOCUST_LATEST", "")
	argv, err := Command(Latest)
	if err != nil {
		t.Fatal(err) // scripts/locust-latest.sh is part of the repository
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "scripts", "locust-latest.sh"); argv[len(argv)-1] != want {
		t.Fatalf("argv %q, want the repository's %s", argv, want)
	}
}

func TestCommandMissing(t *testing.T) {
	t.Setenv("DIFYLOAD_LOCUST_2_12", filepath.Join(t.TempDir(), "no-locust"))
	if _, err := Command(V2_12); err == nil || !strings.Contains(err.Error(), "no-locust") {
		t.Fatalf("err %v, want one naming the missing path", err)
	}
	if _, err := Command("1.0"); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "false": false, "yes": false} {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI %v, want %v", v, got, want)
		}
	}
}
