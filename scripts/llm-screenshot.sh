#!/usr/bin/env bash
# llm-screenshot.sh: render docs/llm-tab.png and docs/stats-tab.png — the LLM tab of a Locust 2.46 master fed by two
# difyload workers and one Python worker, against the mock (20 tokens 5 ms apart after
# 200 ms). Needs chromium (apt-get install chromium) and the locust-latest chroot.
set -euo pipefail
cd "$(dirname "$0")/.."
LATEST=${DIFYLOAD_LOCUST_LATEST:-$(pwd)/scripts/locust-latest.sh}
go build -tags goczmq -o difyload ./cmd/difyload
work=/tmp/difyload-e2e/shot; mkdir -p "$work"; cp locustfile.py difyload_*.py "$work/"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
./difyload mock --addr 127.0.0.1:5101 --ttft 200ms --token-delay 5ms --tokens 20 >/dev/null & pids+=($!)
(cd /tmp/difyload-e2e && exec bash "$LATEST" -f shot/locustfile.py --master --master-bind-host 127.0.0.1 \
  --master-bind-port 5657 --web-host 127.0.0.1 --web-port 8189 --host http://127.0.0.1:5101 \
  --autostart -u 30 -r 30 --slo-ttft 250 --slo-tpot 10 >/dev/null 2>&1) & pids+=($!)
sleep 3
./difyload worker --master-port 5657 --log-level warn & pids+=($!)
./difyload worker --master-port 5657 --log-level warn & pids+=($!)
(cd /tmp/difyload-e2e && exec bash "$LATEST" -f shot/locustfile.py --worker --master-port 5657 >/dev/null 2>&1) & pids+=($!)
sleep 25
curl -s http://127.0.0.1:8189/llm/stats | head -c 400; echo
chromium --headless --no-sandbox --hide-scrollbars --window-size=1400,900 --virtual-time-budget=8000 \
  --screenshot=docs/llm-tab.png "http://127.0.0.1:8189/?tab=llm" 2>/dev/null
chromium --headless --no-sandbox --hide-scrollbars --window-size=1400,520 --virtual-time-budget=8000 \
  --screenshot=docs/stats-tab.png "http://127.0.0.1:8189/?tab=stats" 2>/dev/null
echo "wrote docs/llm-tab.png and docs/stats-tab.png"
