#!/usr/bin/env bash
# bench/run.sh: build difyload and the floor client, then run bench/bench.py (see its --help).
#
#   bench/run.sh                 # full run (about 35 minutes: sweep, paired, hog, top, schedwake, RSS, idle, master scale), results in bench/results/
#   bench/run.sh --smoke         # CI smoke: floor + difyload worker, tiny, ~3.5 min, results in a temp dir
#   bench/run.sh --generators floor,difyload --shapes fast   # any bench.py option
#
# Needs: Go, taskset (util-linux), libczmq-dev, the Locust 2.46 launcher ($DIFYLOAD_LOCUST_LATEST, default scripts/locust-latest.sh)
# for the master and Python workers, python3; python3-matplotlib for the chart (optional).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin="${DIFYLOAD_BENCH_BIN:-/tmp/difyload-bench/bin}"
mkdir -p "$bin"
(cd "$root" && go build -tags goczmq -o "$bin/difyload" ./cmd/difyload && go build -o "$bin/floor" ./bench/floor && go build -o "$bin/leanmock" ./bench/leanmock)
# bench/schedwake is C (a thread outside any runtime); cgo's compiler builds it.
"${CC:-cc}" -O2 -Wall -Werror -pthread -o "$bin/schedwake" "$here/schedwake/schedwake.c"
py=python3
# The chart needs matplotlib; Debian's /usr/bin/python3 has it after apt-get install python3-matplotlib.
if ! $py -c 'import matplotlib' 2>/dev/null && /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then py=/usr/bin/python3; fi
extra=()
for arg in "$@"; do
  if [ "$arg" = "--smoke" ] && [[ " $* " != *" --out "* ]]; then
    extra+=(--out "$(mktemp -d /tmp/difyload-bench-smoke.XXXXXX)" --work /tmp/difyload-bench/smoke --generators floor,difyload)
  fi
done
exec $py "$here/bench.py" --difyload "$bin/difyload" --floor "$bin/floor" --leanmock "$bin/leanmock" --schedwake "$bin/schedwake" "${extra[@]}" "$@"
