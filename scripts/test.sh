#!/usr/bin/env bash
# test.sh: difyload's whole test suite, as CI runs it, on a fresh Debian machine with Go.
#   scripts/setup.sh first (idempotent: installs libczmq, Locust 2.12.1 and the Locust 2.46
#   chroot when missing), then gofmt, go mod tidy, scripts/check-docs.sh, go vet, golangci-lint
#   (scripts/lint.sh: installs the pinned version when missing) and go test -race over every
#   package with the goczmq build tag, against real Locust masters over loopback.
# Each step prints how long it took. Extra arguments go to `go test` (e.g. scripts/test.sh
# -run TestParity -p 1).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
# step NAME: ends the previous step (printing its seconds) and starts NAME.
step_start=
step() {
  if [ -n "$step_start" ]; then echo "   ($((SECONDS - step_start)) s)"; fi
  step_start=$SECONDS
  if [ -n "${1:-}" ]; then echo "== $1"; fi
}
trap 'step' EXIT

step "setup"
bash scripts/setup.sh
export DIFYLOAD_LOCUST_LATEST="${DIFYLOAD_LOCUST_LATEST:-$here/scripts/locust-latest.sh}"
export DIFYLOAD_LOCUST_2_12="${DIFYLOAD_LOCUST_2_12:-/usr/bin/locust}"
ulimit -n 65536 2>/dev/null || true

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
step "go mod tidy"
if ! diff=$(go mod tidy -diff 2>&1); then
  echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$diff"; exit 1
fi
step "docs (one home per topic, README <= 300 lines, links)"
bash scripts/check-docs.sh
step "go vet -tags goczmq"
go vet -tags goczmq ./...
step "golangci-lint (.golangci.yml)"
bash scripts/lint.sh ./...
step "go build (with and without goczmq)"
go build ./... && go build -tags goczmq -o /dev/null ./cmd/difyload
step "go test -race -tags goczmq"
go test -race -tags goczmq -timeout 40m "$@" ./...
