#!/usr/bin/env bash
# test.sh: difyload's whole test suite, as CI runs it, on a fresh Debian machine with Go.
#   scripts/setup.sh first (idempotent: installs libczmq, Locust 2.12.1 and the Locust 2.46
#   chroot when missing), then gofmt, go mod tidy, scripts/check-docs.sh, go vet and go test -race over every
#   package with the goczmq build tag, against real Locust masters over loopback.
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestParity -p 1).
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
bash scripts/setup.sh
export DIFYLOAD_LOCUST_LATEST="${DIFYLOAD_LOCUST_LATEST:-$here/scripts/locust-latest.sh}"
export DIFYLOAD_LOCUST_2_12="${DIFYLOAD_LOCUST_2_12:-/usr/bin/locust}"
ulimit -n 65536 2>/dev/null || true

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
echo "== go mod tidy"
if ! diff=$(go mod tidy -diff 2>&1); then
  echo "go.mod/go.sum are not tidy (run go mod tidy):"; echo "$diff"; exit 1
fi
echo "== docs (one home per topic, README <= 300 lines, links)"
bash scripts/check-docs.sh
echo "== go vet -tags goczmq"
go vet -tags goczmq ./...
echo "== go build (with and without goczmq)"
go build ./... && go build -tags goczmq -o /dev/null ./cmd/difyload
echo "== go test -race -tags goczmq"
go test -race -tags goczmq -timeout 40m "$@" ./...
