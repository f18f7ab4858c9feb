#!/usr/bin/env bash
# quickstart.sh: from a fresh Debian machine with Go to TTFB / Full Response rows in under a
# minute. Installs libczmq-dev and python3-locust (when root), builds difyload, starts the
# Dify-compatible mock on 127.0.0.1:5001, then runs a 20 s test: a real Locust master with
# one difyload worker when Locust is installed, a standalone run otherwise.
#   USERS=20 RATE=10 RUNTIME=20s scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-20}; RATE=${RATE:-10}; RUNTIME=${RUNTIME:-20s}
MOCK_ADDR=${MOCK_ADDR:-127.0.0.1:5001}; MASTER_PORT=${MASTER_PORT:-5557}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for p in libczmq-dev pkg-config python3-locust; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "quickstart: installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

tags=""
pkg-config --exists libczmq 2>/dev/null && tags="-tags goczmq"
echo "quickstart: go build $tags -o difyload ./cmd/difyload"
go build $tags -o difyload ./cmd/difyload

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

./difyload mock --addr "$MOCK_ADDR" --ttft 200ms --token-delay 20ms >/dev/null &
pids+=($!)
for _ in $(seq 50); do curl -fsS "http://$MOCK_ADDR/_mock/stats?records=0" >/dev/null 2>&1 && break; sleep 0.1; done

mkdir -p out
if [ -n "$tags" ] && command -v locust >/dev/null; then
  echo "quickstart: Locust master + 1 difyload worker, $USERS users for $RUNTIME against the mock"
  locust -f locustfile.py --master --headless -u "$USERS" -r "$RATE" -t "$RUNTIME" \
    --expect-workers 1 --master-bind-host 127.0.0.1 --master-bind-port "$MASTER_PORT" \
    --host "http://$MOCK_ADDR" --csv out/quickstart --only-summary 2>&1 | grep -v MonkeyPatchWarning | grep -v "monkey.patch_all" &
  master=$!
  ./difyload worker --master-port "$MASTER_PORT" --log-level warn &
  pids+=($!)
  wait "$master" || true
  echo; echo "quickstart: the master's CSV (out/quickstart_stats.csv):"
  cut -d, -f1-8 out/quickstart_stats.csv | column -s, -t
else
  echo "quickstart: Locust not available; standalone run ($USERS users, $RUNTIME)"
  ./difyload run --host "http://$MOCK_ADDR" -u "$USERS" -r "$RATE" -t "$RUNTIME" --print-every 0 --csv out/quickstart
fi
