//go:build goczmq

package e2e

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

//nolint:gochecknoglobals // TestMain's one environment (the difyload binary built once), the testing package's idiom
var testEnv *env

func TestMain(m *testing.M) {
	e, err := newEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	testEnv = e
	code := m.Run()
	os.Remove(e.binary)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}
