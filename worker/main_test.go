package worker

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	warmUpZMQ()
	goleak.VerifyTestMain(m)
}
