#!/usr/bin/env bash
# capacity-demo.sh: the README's capacity report and comparison, against the mock's capacity
# model. Two headless capacity searches (Locust 2.12.1 master, one Go worker, ChatUser only),
# one with 4 and one with 8 job workers (each run 100 ms + 19 x 20 ms = 0.48 s, so the model
# implies 8.3 and 16.7 streams/s), then `difyload report compare` and Chromium screenshots.
#
#   scripts/capacity-demo.sh [OUT_DIR]     (default out/capacity-demo; about 3 minutes)
#
# Writes OUT_DIR/jobs4.{html,json}, jobs8.{html,json}, compare.html, compare.txt and, with
# chromium installed, docs/capacity-report.png and docs/capacity-compare.png.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$here/out/capacity-demo}" && cd "${1:-$here/out/capacity-demo}" && pwd)
locust=${DIFYLOAD_LOCUST_2_12:-/usr/bin/locust}
bin="$out/difyload"
(cd "$here" && go build -tags goczmq -o "$bin" ./cmd/difyload)
cp "$here/locustfile.py" "$here"/difyload_*.py "$out/"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

search() { # name job-workers mock-port master-port
  local name=$1 jobs=$2 mport=$3 lport=$4
  "$bin" mock --addr "127.0.0.1:$mport" --dify-version 1.13.3 --job-workers "$jobs" \
    --ttft 100ms --tokens 20 --token-delay 20ms >"$out/$name-mock.log" 2>&1 & pids+=($!)
  local mock=$!
  (cd "$out" && timeout 600 "$locust" -f locustfile.py ChatUser --master --headless \
    --master-bind-host 127.0.0.1 --master-bind-port "$lport" --expect-workers 1 \
    --host "http://127.0.0.1:$mport" --dify-capacity --capacity-start 4 --capacity-growth x1.5 \
    --capacity-warmup 3 --capacity-hold 8 --capacity-refine 2 --capacity-max-users 200 \
    --dify-report "$name" >"$out/$name-master.log" 2>&1) & local master=$!
  pids+=($master)
  sleep 2
  timeout 600 "$bin" worker --master-host 127.0.0.1 --master-port "$lport" >"$out/$name-worker.log" 2>&1 & pids+=($!)
  wait "$master"
  kill "$mock" 2>/dev/null || true
  grep -h "max sustainable\|no sustainable" "$out/$name-master.log" | tail -1
}

search jobs4 4 15801 15802
search jobs8 8 15811 15812
"$bin" report compare --names "4 job workers,8 job workers" --html "$out/compare.html" \
  "$out/jobs4.json" "$out/jobs8.json" | tee "$out/compare.txt"

if command -v chromium >/dev/null; then
  shot() { chromium --headless --no-sandbox --disable-gpu --user-data-dir="$out/chrome" \
    --virtual-time-budget=5000 --window-size="$2" --screenshot="$3" "$1" 2>/dev/null; }
  shot "file://$out/jobs8.html#capacity" 1240,1100 "$here/docs/capacity-report.png"
  shot "file://$out/compare.html" 1240,1500 "$here/docs/capacity-compare.png"
fi
