// Package e2e holds difyload's end-to-end tests: real Locust masters (Debian's 2.12.1 and
// the newest Debian release through scripts/locust-latest.sh), the difyload binary as worker
// and as Dify mock, and Python workers, all as separate processes over loopback.
//
// The tests need the goczmq build tag (the worker's ZeroMQ transport):
//
//	go test -race -tags goczmq ./e2e/
//
// DIFYLOAD_LOCUST_2_12 (default /usr/bin/locust) and DIFYLOAD_LOCUST_LATEST (default
// the repository's scripts/locust-latest.sh) name the masters; a test whose master is
// missing is skipped with the reason, or fails when CI=true (internal/locustbin).
package e2e
