//go:build !goczmq

package worker

import (
	"context"
	"log/slog"
)

// zmqDial is the transport constructor of a build without ZeroMQ.
func zmqDial(context.Context, endpoint, string, *slog.Logger) (conn, error) {
	return nil, ErrNoZeroMQ
}
