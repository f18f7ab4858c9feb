#!/usr/bin/env bash
# locust-latest.sh: run the newest Locust that Debian ships (the python3-locust package of
# Debian unstable, 2.46.x at the time of writing) on a machine whose own Debian has an older
# one. It keeps a Debian chroot with that package in a cache directory and runs `locust`
# inside it with the arguments given:
#
#   scripts/locust-latest.sh --version
#   scripts/locust-latest.sh -f locustfile.py --master --headless -u 10 -t 30s
#
# The chroot uses the host's network, so ports it binds (--master-bind-port, --web-port)
# are on the host's 127.0.0.1, and Go workers connect to it as to any master. The working
# directory is bind-mounted at the same path inside the chroot (for this call only), so relative paths such as
# `-f locustfile.py` or `--csv out/run` mean what they mean outside.
#
# The first call creates the chroot (debootstrap + apt-get; about a minute; root and a
# Debian mirror needed). Later calls only check that it is there. Concurrent first calls
# wait for one another under a lock, so test suites may call this in parallel.
#
# Environment:
#   LOCUST_LATEST_ROOT   chroot directory (default /var/tmp/locust-latest)
#   LOCUST_LATEST_SUITE  Debian suite whose python3-locust is used (default sid)
#   DEBIAN_MIRROR        Debian mirror (default http://deb.debian.org/debian)
set -euo pipefail

root="${LOCUST_LATEST_ROOT:-/var/tmp/locust-latest}"
suite="${LOCUST_LATEST_SUITE:-sid}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { echo "locust-latest: $*" >&2; }

ready() { [ -x "$root/usr/bin/locust" ]; }

# create builds the chroot in a scratch directory and moves it into place only when
# python3-locust is installed, so an interrupted build never looks finished.
create() {
  [ "$(id -u)" = 0 ] || { say "$root is missing and creating it needs root (debootstrap, chroot)"; exit 1; }
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local scratch="$root.building" logf="$root.build.log"
  rm -rf "$scratch"
  say "creating a Debian $suite chroot with python3-locust in $root (log: $logf)"
  if ! debootstrap --variant=minbase "$suite" "$scratch" "$mirror" >"$logf" 2>&1; then
    say "debootstrap failed; see $logf"
    exit 1
  fi
  cp /etc/resolv.conf "$scratch/etc/resolv.conf" 2>/dev/null || true
  local apt=(apt-get -o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0)
  if ! { chroot "$scratch" "${apt[@]}" update -qq &&
    DEBIAN_FRONTEND=noninteractive chroot "$scratch" "${apt[@]}" install -y -qq \
      --no-install-recommends python3-locust; } >>"$logf" 2>&1; then
    say "apt-get install python3-locust failed; see $logf"
    exit 1
  fi
  mv "$scratch" "$root"
}

if ! ready; then
  mkdir -p "$(dirname "$root")"
  exec 9>"$root.lock"
  flock 9
  ready || create
  exec 9>&-
fi

# psutil (Locust's CPU figures) needs /proc; the caller's directory must be visible at the
# same path. Both are mounted in a private mount namespace of this call (unshare), so they
# vanish with the process: no mounts pile up in the chroot, and none goes stale when a
# directory is deleted and made again between calls.
dir=$PWD
if [ "$*" = "--version" ] || [ "$dir" = / ]; then
  dir=/ # nothing to share (and never bind the host's / over the chroot)
else
  mkdir -p "$root$dir"
fi
# shellcheck disable=SC2016 # the inner scripts expand their own positional parameters
exec unshare --mount --propagation private /bin/sh -c '
  root=$1 dir=$2; shift 2
  mount -t proc proc "$root/proc" || exit 1
  if [ "$dir" != / ]; then
    # A mount left there by an older version of this script may be stale: drop it (here only).
    umount -l "$root$dir" 2>/dev/null
    mount --bind "$dir" "$root$dir" || exit 1
  fi
  exec chroot "$root" /bin/sh -c "cd \"\$0\" && exec locust \"\$@\"" "$dir" "$@"' sh "$root" "$dir" "$@"
