#!/usr/bin/env bash
# images.sh: seed a registry-less Docker engine with local stand-ins for the base images
# difyload's Dockerfile and compose file name (idempotent; CI calls it).
#
#   debian:bookworm-slim    debootstrap --variant=minbase bookworm, imported with `docker import`
#   golang:1.26-bookworm    that rootfs + gcc/pkg-config/git/libczmq-dev (chroot apt-get)
#                           + this machine's Go toolchain at /usr/local/go
#   difyload/locust:2.12.1  that rootfs + Debian's python3-locust + python3-requests
#   difyload/locust:2.46    the Debian sid chroot that scripts/locust-latest.sh builds
#                           (Locust 2.46.x), copied without its /proc and bind mounts;
#                           also tagged locustio/locust:<its version> (e.g. 2.46.7)
#
# A tag that `docker image inspect` already finds is skipped, so a machine that can pull the
# official images (docker pull debian:bookworm-slim golang:1.26-bookworm) keeps them.
# On such a machine only the two difyload/locust tags need this script (or any Locust image:
# see deploy/README.md).
#
# Environment:
#   DIFYLOAD_IMAGE_CACHE   where rootfs tarballs are cached (default /var/cache/difyload-images)
#   DEBIAN_MIRROR          Debian mirror (default http://deb.debian.org/debian)
#   LOCUST_LATEST_ROOT     the locust-latest chroot (default /var/tmp/locust-latest)
#   DIFYLOAD_LOCUST_LATEST the locust-latest wrapper that builds it when missing
#   GOROOT_HOST            the Go toolchain copied into golang:* (default: `go env GOROOT`)
#   DIFYLOAD_IMAGES        space-separated subset to build (default: all four)
#
# Needs root (debootstrap, chroot, mount) and Debian's mirror; never a container registry.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${DIFYLOAD_IMAGE_CACHE:-/var/cache/difyload-images}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LATEST_ROOT="${LOCUST_LATEST_ROOT:-/var/tmp/locust-latest}"
LATEST_WRAPPER="${DIFYLOAD_LOCUST_LATEST:-$here/scripts/locust-latest.sh}"
GO_VERSION_TAG="1.26"
IMG_DEBIAN="debian:bookworm-slim"
IMG_GOLANG="golang:${GO_VERSION_TAG}-bookworm"
IMG_LOCUST_OLD="difyload/locust:2.12.1"
IMG_LOCUST_NEW="difyload/locust:2.46"
WANT="${DIFYLOAD_IMAGES:-$IMG_DEBIAN $IMG_GOLANG $IMG_LOCUST_OLD $IMG_LOCUST_NEW}"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o Dpkg::Use-Pty=0 -o APT::Install-Recommends=false)
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { echo "images: $*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }
wanted() { case " $WANT " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

docker info >/dev/null 2>&1 || { log "docker engine not reachable"; exit 1; }
missing=""
for t in $WANT; do have "$t" || missing="$missing $t"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || { log "to create$missing: needs root (debootstrap, chroot, mount)"; exit 1; }
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9 # one seeding at a time; a second caller waits, then finds the tags
fi

need_host_pkg() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# chroot_run ROOT CMD...: run in a chroot with /proc and the host's DNS, undone afterwards.
chroot_run() {
  local root=$1
  shift
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  local rc=0
  DEBIAN_FRONTEND=noninteractive chroot "$root" "$@" || rc=$?
  umount "$root/proc"
  return $rc
}

# rootfs NAME PACKAGES...: a cached tarball of bookworm minbase (+ PACKAGES); prints its path.
# The bare rootfs is debootstrapped once; the others start from its tarball.
rootfs() {
  local name=$1
  shift
  local tarball="$CACHE/$name.tar"
  if [ -s "$tarball" ]; then
    echo "$tarball"
    return
  fi
  local dir
  dir=$(mktemp -d "$CACHE/$name.XXXXXX")
  if [ $# -eq 0 ]; then
    need_host_pkg debootstrap
    log "debootstrap --variant=minbase bookworm → $name (about a minute)"
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$CACHE/$name.log" 2>&1 ||
      { log "debootstrap failed, see $CACHE/$name.log"; rm -rf "$dir"; exit 1; }
    slimify "$dir"
  else
    local base
    base=$(rootfs bookworm-minbase)
    tar --numeric-owner -C "$dir" -xf "$base"
    log "$name: apt-get install $*"
    : >"$CACHE/$name.log"
    chroot_run "$dir" apt-get "${APT_OPTS[@]}" update -qq >>"$CACHE/$name.log" 2>&1
    chroot_run "$dir" apt-get "${APT_OPTS[@]}" install -y -qq "$@" >>"$CACHE/$name.log" 2>&1 ||
      { log "apt-get install failed, see $CACHE/$name.log"; rm -rf "$dir"; exit 1; }
  fi
  # As in the official slim images: no package lists, no caches, no host resolv.conf.
  chroot "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/tmp/* "$dir"/var/log/apt/*
  : >"$dir/etc/resolv.conf"
  tar --numeric-owner --one-file-system -C "$dir" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$dir"
  echo "$tarball"
}

# slimify ROOT: what the official debian:*-slim images add to a minbase rootfs (debuerreotype):
# apt keeps no caches or translations, dpkg skips docs, man pages and locales.
slimify() {
  local root=$1 d=$1/etc/apt/apt.conf.d
  cat >"$d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::GzipIndexes "true";' >"$d/docker-gzip-indexes"
  echo 'Acquire::Languages "none";' >"$d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$d/docker-autoremove-suggests"
  echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
DPKG
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/* "$root"/var/cache/apt/*.bin
}

# machine_cas: this machine's own CA certificates (/usr/local/share/ca-certificates, e.g. an
# egress proxy's CA), which the Go build inside `docker build` needs to reach the module proxy
# from behind a TLS-intercepting egress. Empty on an ordinary machine.
machine_cas() {
  find /usr/local/share/ca-certificates -maxdepth 2 -type f -name '*.crt' 2>/dev/null | sort
}

import() { # import TAG TARBALL-or-- CHANGES...
  local tag=$1 src=$2
  shift 2
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  docker import "${changes[@]}" --message "difyload scripts/images.sh stand-in" "$src" "$tag" >/dev/null
  log "created $tag"
}

if wanted "$IMG_DEBIAN" && ! have "$IMG_DEBIAN"; then
  t=$(rootfs bookworm-minbase)
  import "$IMG_DEBIAN" "$t" "ENV $PATH_ENV" 'CMD ["bash"]'
fi

if wanted "$IMG_GOLANG" && ! have "$IMG_GOLANG"; then
  goroot="${GOROOT_HOST:-$(go env GOROOT)}"
  gover=$("$goroot/bin/go" env GOVERSION)
  case "$gover" in go"$GO_VERSION_TAG"*) ;; *)
    log "$goroot is $gover, $IMG_GOLANG needs go$GO_VERSION_TAG"
    exit 1
    ;;
  esac
  # The official image is buildpack-deps:bookworm-scm + gcc; libczmq-dev is preinstalled here
  # so the Dockerfile's apt step finds nothing to do on a machine without a registry.
  base=$(rootfs bookworm-gobuild ca-certificates git gcc libc6-dev make pkg-config libczmq-dev)
  work=$(mktemp -d "$CACHE/golang.XXXXXX")
  tar --numeric-owner -C "$work" -xf "$base"
  mapfile -t cas < <(machine_cas)
  if [ ${#cas[@]} -gt 0 ]; then
    log "$IMG_GOLANG: trusting this machine's CAs: ${cas[*]}"
    for c in "${cas[@]}"; do
      cp "$c" "$work/usr/local/share/ca-certificates/machine-$(basename "$c")"
    done
    chroot "$work" update-ca-certificates >/dev/null 2>&1
  fi
  # /usr/local/go without caches and test data the image never uses
  mkdir -p "$work/usr/local/go" "$work/go/bin" "$work/go/src"
  tar -C "$goroot" --exclude=./pkg/obj --exclude=./test -cf - . | tar -C "$work/usr/local/go" -xf -
  tar --numeric-owner -C "$work" -cf - . | docker import \
    --change "ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV GOLANG_VERSION=${gover#go}" --change "ENV GOPATH=/go" --change "ENV GOTOOLCHAIN=local" \
    --change "WORKDIR /go" --change 'CMD ["bash"]' \
    --message "difyload scripts/images.sh stand-in" - "$IMG_GOLANG" >/dev/null
  log "created $IMG_GOLANG"
  rm -rf "$work"
fi

if wanted "$IMG_LOCUST_OLD" && ! have "$IMG_LOCUST_OLD"; then
  t=$(rootfs bookworm-locust python3-locust python3-requests)
  import "$IMG_LOCUST_OLD" "$t" \
    "ENV $PATH_ENV" "WORKDIR /home/locust" "EXPOSE 5557 8089" 'ENTRYPOINT ["locust"]'
fi

if wanted "$IMG_LOCUST_NEW" && ! have "$IMG_LOCUST_NEW"; then
  if [ ! -x "$LATEST_ROOT/usr/bin/locust" ]; then
    log "building $LATEST_ROOT with $LATEST_WRAPPER"
    bash "$LATEST_WRAPPER" --version >/dev/null
  fi
  # A non-recursive bind mount shows the chroot's own tree: not its /proc, not the host
  # directories the wrapper bind-mounts into it (those may appear at any time).
  view=$(mktemp -d "$CACHE/locust-latest-view.XXXXXX")
  mount --bind "$LATEST_ROOT" "$view"
  mount -o remount,bind,ro "$view" 2>/dev/null || true
  rc=0
  tar --numeric-owner --one-file-system -C "$view" \
    --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' --exclude='./tmp/*' \
    --exclude=./etc/resolv.conf -cf - . |
    docker import --change "ENV $PATH_ENV" --change "WORKDIR /home/locust" \
      --change "EXPOSE 5557 8089" --change 'ENTRYPOINT ["locust"]' \
      --message "difyload scripts/images.sh stand-in" - "$IMG_LOCUST_NEW" >/dev/null || rc=$?
  umount "$view"
  rmdir "$view"
  [ $rc = 0 ] || { log "importing $LATEST_ROOT failed"; exit 1; }
  log "created $IMG_LOCUST_NEW"
fi

# The official name as well (locustio/locust:<version>), so the compose and Kubernetes
# defaults resolve on this machine too.
if wanted "$IMG_LOCUST_NEW"; then
  ver=$(docker run --rm --network none --entrypoint python3 "$IMG_LOCUST_NEW" \
    -c 'import locust; print(locust.__version__)')
  if [ -n "$ver" ] && ! have "locustio/locust:$ver"; then
    docker tag "$IMG_LOCUST_NEW" "locustio/locust:$ver"
    log "tagged $IMG_LOCUST_NEW as locustio/locust:$ver"
  fi
fi

for t in $WANT; do
  have "$t" || { log "missing $t"; exit 1; }
done
log "ok: $WANT"
