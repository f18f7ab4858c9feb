#!/usr/bin/env bash
# setup.sh: install what difyload's build and tests need on Debian. Idempotent: when
# everything is there it only checks, in well under a second.
#   - libczmq-dev + pkg-config: the ZeroMQ transport (go build -tags goczmq)
#   - gcc: cgo's compiler, and bench/run.sh's for bench/schedwake
#   - python3-locust: Locust 2.12.1 on Debian bookworm, the older master the tests run
#   - chromium: headless browser for the HTML report tests (e2e/capacity_test.go)
#   - debootstrap + scripts/locust-latest.sh: the newest Debian Locust (2.46.x) in a cached
#     chroot (LOCUST_LATEST_ROOT, default /var/tmp/locust-latest), the newer master
# Installing needs root; without root a missing piece is reported and setup fails.
# golangci-lint is not installed here: scripts/lint.sh installs its pinned version (with
# go install, no root) the first time it runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
need=()
for p in gcc libczmq-dev pkg-config python3-locust debootstrap chromium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
latest="${DIFYLOAD_LOCUST_LATEST:-$here/scripts/locust-latest.sh}"
if ! out=$(bash "$latest" --version 2>&1); then
  echo "setup: $latest --version failed:" >&2
  echo "$out" >&2
  exit 1
fi
