#!/usr/bin/env bash
# test.sh: difyload's whole test suite, as CI runs it.
#   gofmt, go vet and go test -race over every package, with the goczmq build tag, against
#   real Locust masters (2.12.1 and 2.46.x) over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
export DIFYLOAD_LOCUST_LATEST="${DIFYLOAD_LOCUST_LATEST:-$(cd "$here/.." && pwd)/shared/tools/locust-latest}"
export DIFYLOAD_LOCUST_2_12="${DIFYLOAD_LOCUST_2_12:-/usr/bin/locust}"
ulimit -n 65536 2>/dev/null || true

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi
echo "== go vet -tags goczmq"
go vet -tags goczmq ./...
echo "== go build (with and without goczmq)"
go build ./... && go build -tags goczmq -o /dev/null ./cmd/difyload
echo "== go test -race -tags goczmq"
go test -race -tags goczmq -timeout 40m "$@" ./...
