// Command difyload is a Go worker for a stock Python Locust master that load-tests Dify
// LLM apps, plus a standalone runner and a Dify-compatible mock server.
//
//	difyload worker   join a Locust master (--master-host, --master-port)
//	difyload run      run without a master: -u users, -r spawn rate, -t run time
//	difyload mock     serve the Dify-compatible mock API
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "difyload:", err)
	}
	if err != nil {
		stop()
		os.Exit(exitCode(err))
	}
}

// raiseFileLimit lifts the soft open-files limit to the hard limit: every open stream is a
// socket, and the usual soft limit of 1024 is far below what one worker holds.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
