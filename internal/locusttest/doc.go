// Package locusttest holds what the Locust test harnesses share
// (worker/integration_test.go and e2e/harness*_test.go):
//
//   - StartMaster / StartMasterT start a real Locust master (the version's
//     command comes from internal/locustbin: Debian's 2.12.1 or the newest
//     through scripts/locust-latest.sh), write its locustfile and other files
//     into its directory, and wait until it listens (the workers' port, and
//     the web UI's unless headless); a master that exits or does not listen
//     in time is stopped and reported with its log tail. StartMasterT also
//     removes the chroot's bind mount of a test's directory.
//   - Start / StartT start any other process of a test (a worker, the mock)
//     the same way.
//
// Every process runs in a process group of its own and keeps its output in
// memory. Stop ends it in two stages (SIGTERM, or the StopSignal asked for, to
// the group; SIGKILL after the grace period); when the leader exits, whatever
// is left of its group is killed; the T variants stop it at cleanup and when
// the test's context (its deadline, less the grace period) ends; and on Linux
// the kernel kills it if the test binary dies first (Pdeathsig), as it does
// when go test's -timeout panics past the cleanups.
//
// FreePort gives free loopback ports; ReadCSV and CSVRows read the CSV files
// a master writes; Get, Post and PostForm are net/http's, each request bounded
// by RequestTimeout.
package locusttest
