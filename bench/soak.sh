#!/usr/bin/env bash
# soak.sh: a leak soak of the difyload worker behind a real Locust master, against the
# Dify mock injecting a mix of faults (HTTP errors, error events, resets, cut and malformed
# streams, stalls that end in idle timeouts, too-large and big events, invalid UTF-8).
#
#   bench/soak.sh                 10 minutes of load (~100,000 chat streams + retrievals)
#   bench/soak.sh --smoke         a ≤ 60 s version for CI (bench/soak_test.go runs it)
#   options: --duration 10m  --users 60  --out FILE  --bin PATH (a difyload built with
#            -tags goczmq; default: built here)  --locust PATH (default /usr/bin/locust;
#            LOCUST env works too)
#
# It samples the worker process (Threads and VmRSS from /proc/PID/status, open fds from
# /proc/PID/fd, go_goroutines from its --metrics-addr endpoint):
#   cold    registered, before any load
#   warm    after a short warm-up run and a stop (the keep-alive pool is now filled)
#   during  every --every during the soak
#   after   after the soak's stop
#   idle    (full run only) 95 s later, once the idle keep-alive connections expired (90 s)
# and checks: after ≈ warm (goroutines and fds back to where the warm-up left them: no
# per-stream leak), idle ≈ cold (full run: everything returns to the first baseline),
# RSS flat during the soak (full run: the peak of the second half within 25 % + 8 MiB of
# the peak of the first half, from a minute in), the master's request count equals the mock's, and the mock ends with nothing
# in flight and nothing abandoned. The smoke run asserts only loosely (no timing at all).
# Results (every sample and the verdict) go to --out (default: a file in $TMPDIR).
# Exit 0 = pass, 1 = a check failed, 77 = cannot run here (no Locust).
set -euo pipefail

mode=full
duration=10m
users=60
out=""
bin=""
locust="${LOCUST:-/usr/bin/locust}"
while [ $# -gt 0 ]; do
	case "$1" in
	--smoke) mode=smoke ;;
	--duration) duration="$2"; shift ;;
	--users) users="$2"; shift ;;
	--out) out="$2"; shift ;;
	--bin) bin="$2"; shift ;;
	--locust) locust="$2"; shift ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/difyload-soak.XXXXXX")
[ -n "$out" ] || out="$work/soak-results.txt"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work/bin" "$work/m"
}
trap cleanup EXIT

if [ ! -x "$locust" ]; then
	echo "soak.sh: no Locust master at $locust (set LOCUST or --locust)" >&2
	exit 77
fi
command -v python3 >/dev/null || { echo "soak.sh: python3 needed" >&2; exit 77; }
command -v curl >/dev/null || { echo "soak.sh: curl needed" >&2; exit 77; }

if [ "$mode" = smoke ]; then
	secs=20; warm=4; every=5
else
	secs=$(python3 -c "
import re,sys
s='$duration'; t=0
for n,u in re.findall(r'(\d+(?:\.\d+)?)([hms]?)', s):
    t += float(n)*{'h':3600,'m':60,'s':1,'':1}[u]
print(int(t))")
	warm=20; every=30
fi

if [ -z "$bin" ]; then
	mkdir -p "$work/bin"
	bin="$work/bin/difyload"
	(cd "$here" && go build -tags goczmq -o "$bin" ./cmd/difyload)
fi

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
mport=$(freeport); wport=$(freeport); mkport=$(freeport); metport=$(freeport)
mock="http://127.0.0.1:$mkport"
web="http://127.0.0.1:$wport"
faults="429=0.03,500=0.01,401=0.005,error_event=0.03,workflow_failed=0.01,no_terminal=0.02,malformed_json=0.02"
faults="$faults,reset=0.02,reset_mid_event=0.01,stall=0.01,partial_line=0.01,big_event=0.005,oversized=0.003"
faults="$faults,invalid_utf8=0.01,terminal_swap=0.01,retrieve_500=0.01"

"$bin" mock --addr "127.0.0.1:$mkport" --ttft 20ms --token-delay 5ms --tokens 10 --retrieval-latency 5ms \
	--faults "$faults" >"$work/mock.log" 2>&1 &
pids+=($!)
mkdir -p "$work/m"
cp "$here/locustfile.py" "$here"/difyload_*.py "$work/m/"
(cd "$work/m" && exec "$locust" -f locustfile.py --master --master-bind-host 127.0.0.1 --master-bind-port "$mport" \
	--web-host 127.0.0.1 --web-port "$wport" --host "$mock" --stop-timeout 3 --loglevel WARNING) >"$work/master.log" 2>&1 &
pids+=($!)

# Wait (bounded) for a URL to answer.
wait_url() {
	for _ in $(seq 1 150); do
		curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "soak.sh: $1 never answered" >&2
	return 1
}
wait_url "$mock/_mock/stats?records=0"
wait_url "$web/stats/requests"

"$bin" worker --master-host 127.0.0.1 --master-port "$mport" --node-id soak-worker --log-level warn \
	--metrics-addr "127.0.0.1:$metport" --idle-timeout 1s --header "X-Mock-Stall: 2s" \
	--chat-wait 0.05-0.15 --retrieve-wait 0.05-0.15 --connect-timeout 60s >"$work/worker.log" 2>&1 &
wpid=$!
pids+=($wpid)

# json PATH EXPR: evaluate a Python expression on the JSON at PATH (as j).
json() { curl -fsS --max-time 5 "$1" | python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"; }
# wait_json PATH EXPR: wait (bounded, 60 s) until EXPR is True.
wait_json() {
	for _ in $(seq 1 300); do
		[ "$(json "$1" "$2" 2>/dev/null || echo False)" = True ] && return 0
		sleep 0.2
	done
	echo "soak.sh: timed out waiting for $2 on $1" >&2
	return 1
}
worker_ready='any(w["id"]=="soak-worker" and w["state"]=="ready" for w in j["workers"])'
wait_json "$web/stats/requests" "$worker_ready"

# sample PHASE: one line of numbers about the worker process.
sample() {
	local threads rss fds gor
	threads=$(awk '/^Threads:/{print $2}' "/proc/$wpid/status")
	rss=$(awk '/^VmRSS:/{print $2}' "/proc/$wpid/status")
	fds=$(find "/proc/$wpid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	gor=$(curl -fsS --max-time 5 "http://127.0.0.1:$metport/metrics" | awk '/^go_goroutines /{print $2}')
	printf '%-7s %6ds threads=%-4s rss_kib=%-8s fds=%-5s goroutines=%s\n' "$1" "$(( $(date +%s) - t0 ))" "$threads" "$rss" "$fds" "$gor" | tee -a "$work/samples"
}
field() { awk -v p="$1" -v f="$2=" '$1==p { for (i=1;i<=NF;i++) if (index($i,f)==1) v=substr($i,length(f)+1) } END { print v }' "$work/samples"; }

swarm() { curl -fsS --max-time 10 -o /dev/null -d "user_count=$users&spawn_rate=$users" "$web/swarm"; }
stop_and_settle() {
	curl -fsS --max-time 10 -o /dev/null "$web/stop"
	wait_json "$web/stats/requests" 'j["state"]=="stopped"'
	wait_json "$mock/_mock/stats?records=0" 'j["in_flight"]==0'
	# The worker re-registers stop_timeout (3 s) after client_stopped.
	wait_json "$web/stats/requests" "$worker_ready"
	sleep 2
}

t0=$(date +%s)
: >"$work/samples"
sample cold
swarm
sleep "$warm"
stop_and_settle
sample warm

curl -fsS --max-time 5 -o /dev/null -X POST "$mock/_mock/reset"
swarm
end=$(( $(date +%s) + secs ))
while :; do
	left=$(( end - $(date +%s) ))
	[ "$left" -gt 0 ] || break
	sleep "$(( left < every ? left : every ))"
	sample during
done
stop_and_settle
sample after

mock_counts=$(json "$mock/_mock/stats?records=0" 'json.dumps(j["counts"], sort_keys=True)')
mock_total=$(json "$mock/_mock/stats?records=0" 'sum(sum(v.values()) for v in j["counts"].values())')
mock_streams=$(json "$mock/_mock/stats?records=0" 'sum(j["counts"].get("chat-messages",{}).values())')
mock_gone=$(json "$mock/_mock/stats?records=0" 'sum(v.get("client_gone",0) for v in j["counts"].values())')
master_total=$(json "$web/stats/requests" 'sum(r["num_requests"] for r in j["stats"] if r["name"] in ("/v1/chat-messages","/v1/datasets/[id]/retrieve"))')
master_fail=$(json "$web/stats/requests" 'sum(r["num_failures"] for r in j["stats"] if r["name"]!="Aggregated")')

if [ "$mode" = full ]; then
	sleep 95
	sample idle
fi

fail=0
check() { # check DESCRIPTION PYTHON-EXPR
	if [ "$(python3 -c "print($2)")" = True ]; then
		echo "ok    $1" | tee -a "$work/verdict"
	else
		echo "FAIL  $1" | tee -a "$work/verdict"
		fail=1
	fi
}
: >"$work/verdict"
wg=$(field warm goroutines); ag=$(field after goroutines)
wf=$(field warm fds); af=$(field after fds)
check "master counted every request the mock served ($master_total = $mock_total)" "$master_total == $mock_total"
check "no request abandoned (mock client_gone = $mock_gone)" "$mock_gone == 0"
check "goroutines back after the soak ($ag after vs $wg warm; slack 2 per user + 20)" "$ag <= $wg + 2*$users + 20"
check "fds back after the soak ($af after vs $wf warm; slack 1 per user + 10)" "$af <= $wf + $users + 10"
if [ "$mode" = full ]; then
	cg=$(field cold goroutines); ig=$(field idle goroutines)
	cf=$(field cold fds); if_=$(field idle fds)
	check "goroutines return to the cold baseline once idle ($ig vs $cg; slack 10)" "$ig <= $cg + 10"
	check "fds return to the cold baseline once idle ($if_ vs $cf; slack 5)" "$if_ <= $cf + 5"
	# RSS flat: the GC makes RSS swing between samples, so compare peaks: the highest
	# sample of the second half of the soak against the highest of the first half
	# (from a minute in).
	read -r r1 r2 < <(awk -v w="$warm" -v s="$secs" '
		$1=="during" { t=$2+0; for (i=1;i<=NF;i++) if ($i ~ /^rss_kib=/) v=substr($i,9)+0
			if (t < 60+w) next
			if (t < w+s/2) { if (v>a) a=v } else { if (v>b) b=v } }
		END { if (a==0) a=b; print a, b }' "$work/samples")
	check "RSS flat during the soak (peak $r2 KiB in the second half vs $r1 KiB in the first; ≤ +25 % + 8 MiB)" "$r2 <= $r1 * 1.25 + 8192"
fi

{
	echo "difyload soak ($mode): $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $("$locust" --version 2>&1 | head -1)"
	echo "users $users, load ${secs}s, worker --idle-timeout 1s, mock X-Mock-Stall 2s, faults $faults"
	echo "requests in the soak: $mock_total ($mock_streams chat streams), master failures $master_fail"
	echo "mock outcomes: $mock_counts"
	echo
	cat "$work/samples"
	echo
	cat "$work/verdict"
} >"$out"
echo "soak.sh: results in $out"
if [ "$fail" != 0 ]; then
	echo "--- worker log (tail)"; tail -20 "$work/worker.log"
	exit 1
fi
