package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a run leaves a goroutine behind (in-process runs of
// `difyload run`, `difyload mock` and `difyload worker` must clean up after themselves).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
