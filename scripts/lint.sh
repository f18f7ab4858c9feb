#!/usr/bin/env bash
# lint.sh: golangci-lint, at the version .golangci.yml is written for, over every package with
# the goczmq build tag. Installs that version with `go install` (through the Go module proxy
# only; no root needed) into GOBIN, else $(go env GOPATH)/bin, when the binary there is
# missing or another version; a golangci-lint elsewhere on PATH is never used. Prints how long
# the run took. Run by scripts/test.sh; alone: scripts/lint.sh [packages...] (default ./...).
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.15.0
bin=$(go env GOBIN)
bin=${bin:-$(go env GOPATH)/bin}
lint=$bin/golangci-lint
have=$("$lint" version --short 2>/dev/null || true)
if [ "$have" != "$version" ]; then
  echo "lint: installing golangci-lint v$version into $bin (found: ${have:-none})" >&2
  start=$SECONDS
  rm -f "$lint" # go install will not replace a file that is not a Go binary
  GOBIN=$bin go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$version"
  echo "lint: installed in $((SECONDS - start)) s" >&2
  have=$("$lint" version --short)
  if [ "$have" != "$version" ]; then
    echo "lint: $lint reports version $have, want $version" >&2
    exit 1
  fi
fi
[ $# -gt 0 ] || set -- ./...
start=$SECONDS
status=0
"$lint" run --build-tags goczmq "$@" || status=$?
echo "lint: golangci-lint run took $((SECONDS - start)) s" >&2
exit $status
