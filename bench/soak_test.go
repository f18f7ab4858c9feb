//go:build goczmq

package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSoakSmoke runs `bench/soak.sh --smoke`: a difyload worker behind a real Locust master
// (2.12.1, $LOCUST or /usr/bin/locust) streams against the mock with a mix of every kind of
// fault for 20 s, and the script checks that the master counted exactly what the mock
// served, that nothing was abandoned, and (loosely) that the worker's goroutines and open
// fds came back to their warm baseline. No timing is asserted. The 10-minute version is
// `bench/soak.sh` (see its header); its results are recorded in bench/soak-results.txt.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak smoke takes about a minute")
	}
	out := filepath.Join(t.TempDir(), "soak-results.txt")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "soak.sh", "--smoke", "--out", out)
	cmd.WaitDelay = 10 * time.Second
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 77 {
		t.Skipf("soak.sh cannot run here:\n%s", b)
	}
	if err != nil {
		t.Fatalf("soak.sh --smoke: %v\n%s", err, b)
	}
	res, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak.sh --smoke:\n%s", res)
}
