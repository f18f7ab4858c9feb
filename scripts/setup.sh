#!/usr/bin/env bash
# setup.sh: install what difyload's build and tests need on Debian (idempotent).
#   - libczmq-dev + pkg-config: the ZeroMQ transport (go build -tags goczmq)
#   - python3-locust: Locust 2.12.1 (Debian bookworm), the master the tests run
#   - chromium: headless browser for the HTML report tests (e2e/capacity_test.go)
#   - the newest Locust (2.46.x) in a cached Debian sid chroot via shared/tools/locust-latest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
need=()
for p in libczmq-dev pkg-config python3-locust debootstrap chromium; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
latest="${DIFYLOAD_LOCUST_LATEST:-$here/../shared/tools/locust-latest}"
if [ -x "$latest" ] || [ -f "$latest" ]; then
  bash "$latest" --version >/dev/null 2>&1 || echo "setup: warning: $latest --version failed" >&2
else
  echo "setup: no locust-latest wrapper at $latest; 2.46.x tests will be skipped" >&2
fi
