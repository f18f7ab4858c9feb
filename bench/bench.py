#!/usr/bin/env python3
"""difyload generator benchmark (driven by bench/run.sh; stdlib only, matplotlib for the chart).

For each generator and shape: the mock runs alone on core MOCK_CPU, the generator on GEN_CPU
(taskset), the Locust master (Python and difyload workers need one) on MOCK_CPU next to the
mock (its CPU is measured and reported separately, never charged to the generator). Users are
closed-loop (no wait), all streaming the mock's simple chatflow; every generator runs the same
list of user counts (--users), so costs compare at equal concurrency.

A sweep step: set the user count, let it settle, reset the mock's truth, read the CPU time
(utime+stime, /proc/<pid>/stat) of generator, master and mock, sleep a fixed window, read them
again and the mock's truth (completed streams and per-request records). After the sweep the generator's per-request JSONL (message_id, absolute first-token time) is
joined with the mock's records: measurement error = generator first token - mock first-token
send time (after Write+Flush), per request.

Paired steps (--paired-users, --paired-rounds): the floor's and difyload's steps at each user
count back to back on one mock, the order swapped every round; the summary gives each round's
CPU-per-stream ratio and their median, which this VM's drift (its speed moves by 10-30 %
within minutes, with no foreign CPU to show for it) moves much less than two sweeps minutes
apart.

CPU hog (--hog-users): the same steps for the floor and difyload with a busy loop sharing the
generator's core, so the generator waits for the CPU after its bytes arrive: how true each
one's first-token times stay when it is busy.

Top steps (--top-users): the floor's and difyload's steps on bench/leanmock instead of
difymock, at loads difymock cannot serve: leanmock writes difymock's simple-chatflow stream
(the same events and writes; TestSameStreamAsDifymock) with ~5 % of its CPU in user space, so
the generator gets further up its core before the server's core is full; on the wide shape
(leanmock -pad: 2 KiB more text per answer chunk, which costs the generator's JSON check more
than the server's pre-rendered write) the generator's core fills first.

schedwake (--schedwake, --schedwake-busy): bench/schedwake, a C thread asleep in read while
another thread of its process is busy and a CPU hog shares the core, in the hog's scheduling
group and in one of its own: how late it wakes when data arrives every 5 ms, i.e. whether a
watcher thread outside Go's scheduler could see a first token before the next one merges
into it while the worker is off the CPU.

Memory: RSS of the generator with N concurrent open streams ("hold" shape: first token after
1 s, then one token every 2 s, so streams stay open and the mock stays light).

Writes OUT/results.json, OUT/sweep.csv, OUT/rss.csv, OUT/summary.md and OUT/bench.png.
"""

import argparse
import csv
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import fleet

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")

SHAPES = {
    # name: (ttft, token delay, tokens)
    "fast": ("200ms", "5ms", 20),
    "slow": ("1s", "50ms", 100),
    "hold": ("1s", "2s", 100),
    # fast with 2 KiB more text in each answer chunk (leanmock's -pad; top steps only): the
    # chunks cost the reader's JSON check more than the server's pre-rendered writes, so the
    # generator's core fills before the server's
    "wide": ("200ms", "5ms", 20),
}
# extra answer text per chunk for leanmock, by shape; difymock has no such option
LEAN_PAD = {"wide": 2048}
EVENTS_PER_STREAM_EXTRA = 7  # simple chatflow: workflow_started, 2 node_started, 2 node_finished, workflow_finished, message_end
GENERATORS = ["floor", "difyload", "py-fast", "py-http"]
LABELS = {"floor": "floor (net/http+bufio)", "difyload": "difyload worker",
          "py-fast": "Python FastHttpUser", "py-http": "Python HttpUser (requests)"}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return float("nan")
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def core_ticks():
    """Busy and total ticks per core from /proc/stat ({"0": (busy, total), ...})."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *v = line.split()
                v = [int(x) for x in v[:8]]
                idle = v[3] + v[4]
                out[name[3:]] = (sum(v) - idle, sum(v))
    return out


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def http(method, url, data=None, timeout=30):
    body = urllib.parse.urlencode(data).encode() if isinstance(data, dict) else data
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def wait_until(what, cond, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            if cond():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {limit}s waiting for {what}")


def read_first(path):
    """The first line of a file, "" if it cannot be read."""
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""


def cpu_cgroup():
    """This process's cgroup that schedules its CPU: the v2 one ("0::/…"), or v1's cpu line."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [ln.strip() for ln in f]
    except OSError:
        return ""
    for ln in lines:
        parts = ln.split(":", 2)
        if len(parts) == 3 and (parts[0] == "0" or "cpu" in parts[1].split(",")):
            return ln
    return lines[0] if lines else ""


WAKE_PROBE = """
import json, os, time
def read():
    t = time.perf_counter_ns()
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    os.read(fd, 512)
    os.close(fd)
    return time.perf_counter_ns() - t
for _ in range(20):
    read()
warm = sorted(read() for _ in range(200))[100]
cold = []
for _ in range(5):
    time.sleep(1)
    cold.append(read())
print(json.dumps({"warm_us": warm / 1e3, "after_sleep_us": sorted(cold)[2] / 1e3}))
"""


def wake_cost(cpu):
    """What a wake-up costs on this machine: the median time of an open+read+close of
    /proc/self/statm, back to back and after 1 s asleep (on cpu). Idle CPU is a few such
    wake-ups a second (heartbeats), so it scales with the second number, which varies by VM
    and by day."""
    try:
        out = subprocess.run(["taskset", "-c", str(cpu), sys.executable, "-c", WAKE_PROBE], capture_output=True,
                             text=True, check=True, timeout=60)
        return json.loads(out.stdout)
    except (subprocess.SubprocessError, ValueError) as e:
        return {"failed": str(e)}


# The CPU hog of the hog and schedwake steps: a pure CPU loop at the generator's priority.
HOG = [sys.executable, "-c", "while True: pass"]


def session(own):
    """Popen arguments for a child in a session (and so, with autogroup, a scheduling group)
    of its own, or in this script's session; its own process group either way (killpg)."""
    return {"start_new_session": own, "process_group": None if own else 0}


class Proc:
    """A process this script started (own process group; own session, and so its own autogroup,
    unless own_session is false); stopped by its PID only."""

    def __init__(self, name, argv, cwd, logdir, env=None, own_session=True):
        self.name = name
        self.logf = open(os.path.join(logdir, f"{name}.log"), "ab")
        self.p = subprocess.Popen(argv, cwd=cwd, stdout=self.logf, stderr=subprocess.STDOUT,
                                  env={**os.environ, **(env or {})}, **session(own_session))
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, wait=15):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        os.makedirs(self.work, exist_ok=True)
        # locustfile.py imports the difyload_*.py modules beside it.
        for f in ["locustfile.py"] + sorted(n for n in os.listdir(ROOT) if n.startswith("difyload_") and n.endswith(".py")):
            shutil.copy(os.path.join(ROOT, f), self.work)
        shutil.copy(os.path.join(HERE, "locustfile_bench.py"), self.work)
        self.procs = []
        self.mock = None
        self.mock_url = None
        self.http, self.wait_until, self.rss_bytes = http, wait_until, rss_bytes  # for fleet.py

    # ---- processes -------------------------------------------------------------------
    def start(self, name, argv, cpu, env=None, own_session=True):
        p = Proc(name, ["taskset", "-c", str(cpu)] + argv, self.work, self.work, env, own_session)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p is not None:
            p.stop()
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)

    def start_mock(self, shape, lean=False):
        """The mock of shape on MOCK_CPU; lean: bench/leanmock (the same stream from a light
        server) instead of difymock."""
        self.stop(self.mock)
        ttft, delay, tokens = SHAPES[shape]
        port = free_port()
        cmd = ([self.a.leanmock, "-addr", f"127.0.0.1:{port}", "-ttft", ttft, "-token-delay", delay, "-tokens", str(tokens),
                "-pad", str(LEAN_PAD.get(shape, 0))]
               if lean else [self.a.difyload, "mock", "--addr", f"127.0.0.1:{port}", "--ttft", ttft,
                             "--token-delay", delay, "--tokens", str(tokens)])
        self.mock = self.start(f"{'leanmock' if lean else 'mock'}-{shape}", cmd, self.a.mock_cpu)
        self.mock_url = f"http://127.0.0.1:{port}"
        wait_until("the mock", lambda: http("GET", self.mock_url + "/_mock/stats?records=0"), 15)

    def truth(self, records=True):
        return json.loads(http("GET", self.mock_url + "/_mock/stats" + ("" if records else "?records=0"), timeout=120))

    def start_master(self, locustfile, user_class):
        port, web = free_port(), free_port()
        m = self.start(f"master-{user_class}", ["bash", self.a.locust_latest, "-f", locustfile, "--master",
                                                "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                                                "--web-host", "127.0.0.1", "--web-port", str(web),
                                                "--host", self.mock_url, "--loglevel", "WARNING", user_class],
                       self.a.master_cpu)
        m.port, m.web = port, f"http://127.0.0.1:{web}"
        wait_until("the master's web UI", lambda: http("GET", m.web + "/stats/requests"), 60)
        return m

    # ---- generators ------------------------------------------------------------------
    def gen_start(self, gen, shape, jsonl):
        """Returns a handle with .pid (the measured process), .set_users(n, ramp), .finish()."""
        a = self.a
        h = type("Gen", (), {})()
        h.gen, h.master, h.proc = gen, None, None
        if gen == "floor":
            h.steps = 0

            def set_users(n, ramp):
                if h.proc is not None:
                    self.stop(h.proc)
                h.steps += 1
                h.proc = self.start(f"floor-{shape}-{h.steps}", [a.floor, "-url", self.mock_url, "-users", str(n),
                                                                 "-ramp", f"{ramp}s", "-duration", "0",
                                                                 "-out", f"{jsonl}.{h.steps}"], a.gen_cpu)
                h.pid = h.proc.pid
            h.set_users = set_users
            h.files = lambda: [f"{jsonl}.{i}" for i in range(1, h.steps + 1)]
            h.finish = lambda: self.stop(h.proc)
            return h
        if gen == "difyload":
            h.master = self.start_master("locustfile.py", "ChatUser")
            h.proc = self.start(f"difyload-{shape}", [a.difyload, "worker", "--master-port", str(h.master.port),
                                                      "--chat-wait", "0", "--flow-weights", "SimpleChatFlow=1,ComplexChatFlow=0",
                                                      "--requests-jsonl", jsonl, "--log-level", "warn"], a.gen_cpu)
            h.files = lambda: [jsonl]
        else:
            cls = "FastBenchChatUser" if gen == "py-fast" else "BenchChatUser"
            h.master = self.start_master("locustfile_bench.py", cls)
            h.proc = self.start(f"{gen}-{shape}", ["bash", a.locust_latest, "-f", "locustfile_bench.py", "--worker",
                                                   "--master-host", "127.0.0.1", "--master-port", str(h.master.port),
                                                   "--loglevel", "WARNING"], a.gen_cpu,
                                env={"DIFYLOAD_PY_REQUESTS_JSONL": jsonl})
            h.files = lambda: [f for f in (os.path.join(self.work, x) for x in os.listdir(self.work))
                               if f.startswith(jsonl + ".")]
        h.pid = h.proc.pid

        def workers():
            return json.loads(http("GET", h.master.web + "/stats/requests")).get("workers", [])
        wait_until("the worker to join", lambda: len(workers()) >= 1, 60)

        def set_users(n, ramp):
            http("POST", h.master.web + "/swarm", {"user_count": n, "spawn_rate": max(1, n / max(ramp, 0.5)),
                                                   "host": self.mock_url})
        h.set_users = set_users

        def finish():
            try:
                http("GET", h.master.web + "/stop")
            except Exception:
                pass
            time.sleep(2)
            self.stop(h.proc)
            self.stop(h.master)
        h.finish = finish
        return h

    # ---- one sweep step --------------------------------------------------------------
    def step(self, h, shape, users, ramp, settle, window):
        h.set_users(users, ramp)
        time.sleep(ramp + settle)
        http("POST", self.mock_url + "/_mock/reset")
        c0 = core_ticks()
        g0, m0, k0, t0 = cpu_seconds(h.pid), cpu_seconds(h.master.pid) if h.master else 0, cpu_seconds(self.mock.pid), time.time()
        rss_samples = []
        end = t0 + window
        while time.time() < end:
            time.sleep(min(1, max(0, end - time.time())))
            rss_samples.append(rss_bytes(h.pid))
        g1, m1, k1, t1 = cpu_seconds(h.pid), cpu_seconds(h.master.pid) if h.master else 0, cpu_seconds(self.mock.pid), time.time()
        c1 = core_ticks()

        def busy(core):
            b0, n0 = c0.get(core, (0, 0))
            b1, n1 = c1.get(core, (0, 1))
            return (b1 - b0) / max(1, n1 - n0)
        tr = self.truth()
        dt = t1 - t0
        ok = [r for r in tr.get("records", []) if r.get("outcome") == "ok"]
        counts = tr.get("counts", {}).get("chat-messages", {})
        streams = counts.get("ok", 0)
        events = sum(r.get("tokens", 0) + EVENTS_PER_STREAM_EXTRA for r in ok)
        ttft_ns = parse_go_duration(SHAPES[shape][0])
        late = [(r["first_token"] - r["received"] - ttft_ns) / 1e6 for r in ok if r.get("first_token")]
        return {
            "users": users, "window_s": dt, "cpu_s": g1 - g0, "cpu_frac": (g1 - g0) / dt,
            "master_cpu_frac": (m1 - m0) / dt, "mock_cpu_frac": (k1 - k0) / dt,
            # CPU of other processes (other jobs on this shared machine) on the two cores.
            "foreign_gen_core": busy(self.a.gen_cpu) - (g1 - g0) / dt,
            "foreign_mock_core": busy(self.a.mock_cpu) - (k1 - k0) / dt
            - ((m1 - m0) / dt if self.a.master_cpu == self.a.mock_cpu else 0),
            "streams": streams, "other_outcomes": {k: v for k, v in counts.items() if k != "ok"},
            "events": events, "streams_per_s": streams / dt, "events_per_s": events / dt,
            "cpu_per_1k_streams": (g1 - g0) / streams * 1000 if streams else None,
            "cpu_per_100k_events": (g1 - g0) / events * 1e5 if events else None,
            "rss_bytes": max(rss_samples) if rss_samples else rss_bytes(h.pid),
            "mock_late_ms": pct(late), "mock_in_flight": tr.get("in_flight"),
            "_mock_first_token": {r["message_id"]: r["first_token"] for r in ok if r.get("first_token")},
        }

    def schedwake(self, busy_list, samples):
        """bench/schedwake: how late a sleeping thread wakes when data reaches it while its
        process's other thread is busy BUSY % of the time and a CPU hog shares the core, with
        the hog in a scheduling group of its own (its own session: autogroup) and in the same
        group. It tells whether a watcher thread outside Go's scheduler could see a first
        token before the next one merges into it, when the worker is off the CPU."""
        a = self.a
        rows = []
        for group in ("own", "same"):
            own = group == "own"
            hog = self.start(f"schedwake-hog-{group}", HOG, a.gen_cpu, own_session=own)
            try:
                for busy in busy_list:
                    cmd = ["taskset", "-c", str(a.gen_cpu), a.schedwake, "-c", str(a.mock_cpu), "-n", str(samples), str(busy)]
                    try:
                        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=samples * 0.01 + 30,
                                             **session(own))
                        rows.append({**json.loads(out.stdout), "hog_group": group})
                    except (subprocess.SubprocessError, ValueError) as e:
                        # recorded as not measured; the run goes on (like a failed fleet step)
                        err = e.stderr if isinstance(getattr(e, "stderr", None), str) and e.stderr else str(e)
                        rows.append({"busy": busy, "hog_group": group, "failed": err.strip()[-300:]})
                        log(f"schedwake busy={busy}% hog in {group} group: not measured: {rows[-1]['failed']}")
                        continue
                    log(f"schedwake busy={busy}% hog in {group} group: wake-up delay p99 {rows[-1]['p99_ms']:.2f} ms")
            finally:
                self.stop(hog)
        return rows

    def sweep(self, gen, shape, users_list, hog=False, lean=False):
        """Steps of gen at users_list; with hog, a busy loop shares the generator's core all
        along; with lean, the server is bench/leanmock."""
        a = self.a
        self.start_mock(shape, lean)
        jsonl = os.path.join(self.work, f"req-{gen}-{shape}{'-hog' if hog else ''}{'-lean' if lean else ''}.jsonl")
        for f in os.listdir(self.work):
            if f.startswith(os.path.basename(jsonl)):
                os.remove(os.path.join(self.work, f))
        # The hog is a pure CPU loop at the generator's priority, so the scheduler splits the
        # core between them: the generator's goroutines wait for the CPU after their bytes came.
        hp = self.start(f"hog-{gen}-{shape}", HOG, a.gen_cpu) if hog else None
        h = self.gen_start(gen, shape, jsonl)
        steps = []
        try:
            settle = settle_s(shape)
            for users in users_list:
                s = self.step(h, shape, users, a.ramp, settle, a.window)
                steps.append(s)
                log(f"{gen}/{shape} users={users} cpu={s['cpu_frac']:.2f} master={s['master_cpu_frac']:.2f} "
                    f"mock={s['mock_cpu_frac']:.2f} foreign={s['foreign_gen_core']:.2f}/{s['foreign_mock_core']:.2f} streams/s={s['streams_per_s']:.0f} "
                    f"cpu/1k={fmt(s['cpu_per_1k_streams'])} mock_late_p99={fmt(s['mock_late_ms']['p99'])}")
                if s["cpu_frac"] > 0.99:
                    log(f"{gen}/{shape}: generator saturated; larger steps skipped")
                    break
                if not self.mock.alive() or not h.proc.alive():
                    raise RuntimeError(f"{gen}/{shape}: a process died (logs in {self.work})")
        finally:
            h.finish()
            self.stop(hp)
        gen_ft = read_jsonl(h.files())
        clocks = clock_counts(h.files()) if gen == "difyload" else {}
        for s in steps:
            join_first_tokens(s, gen_ft)
            s["clocks"] = clocks  # whole sweep: the JSONL is one file per generator and shape
        return steps

    # ---- paired steps ----------------------------------------------------------------
    def paired(self, shape, users_list, rounds):
        """Floor and difyload steps interleaved on one mock: for each user count, rounds pairs
        back to back, the order swapped every round (floor first, then difyload first, ...), so
        a drift of this VM's speed during the run falls on both alike."""
        a = self.a
        self.start_mock(shape)
        jsonl = {g: os.path.join(self.work, f"req-{g}-{shape}-paired.jsonl") for g in ("floor", "difyload")}
        for f in os.listdir(self.work):
            if any(f.startswith(os.path.basename(j)) for j in jsonl.values()):
                os.remove(os.path.join(self.work, f))
        fl = self.gen_start("floor", shape, jsonl["floor"])
        dl = self.gen_start("difyload", shape, jsonl["difyload"])
        settle = settle_s(shape)
        out = []

        def pause(gen):
            # The other generator must not run while one is measured: both are on the generator core.
            if gen == "floor":
                self.stop(fl.proc)
                fl.proc = None
            else:
                http("GET", dl.master.web + "/stop")
                wait_until("the worker's users to stop",
                           lambda: json.loads(http("GET", dl.master.web + "/stats/requests")).get("user_count", 1) == 0, 30)
        try:
            for users in users_list:
                for r in range(rounds):
                    pair = {"users": users, "round": r + 1}
                    for gen in (("floor", "difyload") if r % 2 == 0 else ("difyload", "floor")):
                        h = fl if gen == "floor" else dl
                        pair[gen] = self.step(h, shape, users, a.ramp, settle, a.window)
                        pause(gen)
                        x = pair[gen]
                        log(f"paired {shape} users={users} round={r + 1} {gen}: cpu={x['cpu_frac']:.2f} "
                            f"cpu/1k={fmt(x['cpu_per_1k_streams'])} mock_late_p99={fmt(x['mock_late_ms']['p99'])} "
                            f"foreign={x['foreign_gen_core']:.2f}")
                    out.append(pair)
        finally:
            fl.finish()
            dl.finish()
        ft = {g: read_jsonl(h.files()) for g, h in (("floor", fl), ("difyload", dl))}
        for pair in out:
            for gen in ("floor", "difyload"):
                join_first_tokens(pair[gen], ft[gen])
            f, d = pair["floor"]["cpu_per_1k_streams"], pair["difyload"]["cpu_per_1k_streams"]
            pair["ratio"] = d / f if f and d else None
        return out

    # ---- memory ----------------------------------------------------------------------
    def rss(self, gen, counts):
        a = self.a
        self.start_mock("hold")
        jsonl = os.path.join(self.work, f"req-{gen}-hold.jsonl")
        h = self.gen_start(gen, "hold", jsonl)
        out = []
        try:
            idle = rss_bytes(h.pid) if gen != "floor" else 0
            for n in counts:
                ramp = max(2.0, n / a.rss_rate)
                h.set_users(n, ramp)
                try:
                    wait_until(f"{n} open streams", lambda: self.truth(False).get("in_flight", 0) >= n * 0.98,
                               ramp + a.rss_wait)
                except RuntimeError as e:
                    log(f"{gen}: {e}")
                time.sleep(3)
                tr = self.truth(False)
                r = {"users": n, "open_streams": tr.get("in_flight", 0), "rss_bytes": rss_bytes(h.pid),
                     "idle_rss_bytes": idle, "cpu_frac_hint": None}
                r["rss_per_stream_kib"] = r["rss_bytes"] / max(1, r["open_streams"]) / 1024
                out.append(r)
                log(f"{gen}/hold n={n} open={r['open_streams']} rss={r['rss_bytes'] / 2**20:.1f} MiB "
                    f"({r['rss_per_stream_kib']:.1f} KiB/stream)")
                if not h.proc.alive():
                    break
        finally:
            h.finish()
        return out


def parse_go_duration(s):
    for unit, mult in (("ms", 1e6), ("us", 1e3), ("ns", 1), ("s", 1e9), ("m", 60e9)):
        if s.endswith(unit):
            return int(float(s[:-len(unit)]) * mult)
    raise ValueError(s)


def jsonl_records(files):
    """Every parsed line of the JSONL files (missing files and unparsable lines skipped)."""
    for fn in files:
        try:
            f = open(fn, encoding="utf-8")
        except OSError:
            continue
        with f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


def settle_s(shape):
    """Seconds a step waits after its ramp: one stream of the shape, plus 2 s."""
    ttft, delay, tokens = SHAPES[shape]
    return parse_go_duration(ttft) / 1e9 + tokens * parse_go_duration(delay) / 1e9 + 2


def join_first_tokens(step, gen_ft):
    """Joins a step's mock first-token send times with the generator's first-token times
    (gen_ft: message_id -> unix s): the error per request, its percentiles and the 20 largest
    errors with the mock's send time (unix s), to see whether they cluster."""
    mft = step.pop("_mock_first_token")
    pairs = [((gen_ft[mid] * 1e9 - ns) / 1e6, ns / 1e9) for mid, ns in mft.items() if mid in gen_ft]
    step["matched"], step["err_ms"] = len(pairs), pct([e for e, _ in pairs])
    step["err_top"] = [[round(e, 3), round(t, 4)] for e, t in sorted(pairs, reverse=True)[:20]]


def read_jsonl(files):
    ft = {}
    for d in jsonl_records(files):
        mid = d.get("message_id")
        if not mid:
            continue
        if "first_token" in d:
            ft[mid] = d["first_token"]
        elif d.get("ttft_ms") is not None and d.get("start") is not None and d.get("ok"):
            ft[mid] = d["start"] + d["ttft_ms"] / 1000.0
    return ft


def clock_counts(files):
    """How many JSONL lines used each clock ("kernel", "user", "mixed"; "" for none)."""
    out = {}
    for d in jsonl_records(files):
        c = d.get("clock")
        if c is not None:
            out[c] = out.get(c, 0) + 1
    return out


def pct(xs):
    if not xs:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    xs = sorted(xs)

    def q(p):
        return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))]
    return {"n": len(xs), "p50": q(0.5), "p99": q(0.99), "max": xs[-1]}


def fmt(v, d=2):
    return "-" if v is None else f"{v:.{d}f}"


ON_TIME_MS = 20  # a step counts as "mock on time" when the mock's first-token lateness p99 is at most this


def on_time(x):
    return x["streams"] and (x["mock_late_ms"]["p99"] or 0) <= ON_TIME_MS


def at_load(steps, frac, tol=0.1):
    """The step whose generator CPU is closest to frac of a core, or None if none is within tol."""
    cand = [s for s in steps if s["streams"]]
    if not cand:
        return None
    best = min(cand, key=lambda s: abs(s["cpu_frac"] - frac))
    return best if abs(best["cpu_frac"] - frac) <= tol else None


def not_reached(steps):
    return f"not reached (max {max(s['cpu_frac'] for s in steps):.0%})"

def by_users(sw):
    """The floor's and difyload's steps of one shape by user count, and the counts both ran."""
    fl = {x["users"]: x for x in sw.get("floor", [])}
    dl = {x["users"]: x for x in sw.get("difyload", [])}
    return fl, dl, sorted(set(fl) & set(dl))


def ratios(res, a):
    """The same-run ratios of issue 13: idle CPU, CPU/stream and TTFB error vs the floor, RSS/stream, master CPU."""
    lines = ["\n## Same-run ratios\n"]
    idle = res.get("idle") or []
    if idle:
        lines.append("Idle workers (registered, no users; on-CPU time of every thread over the window):\n")
        lines.append("| worker | workers on one master | CPU per worker, % of a core (mean / max) | master CPU |")
        lines.append("|---|---:|---:|---:|")
        for r in idle:
            lines.append(f"| {'difyload (Go)' if r['kind'] == 'go' else 'Locust (Python)'} | {r['workers']} "
                         f"| {100 * r['worker_cpu_frac_mean']:.3f} / {100 * r['worker_cpu_frac_max']:.3f} | {r['master_cpu_frac']:.1%} |")
        wc = res.get("wake_cost") or {}
        if "warm_us" in wc:
            lines.append(f"\nWhat a wake-up costs on this machine in this run (open+read+close of /proc/self/statm on the "
                         f"generator core, median): {wc['warm_us']:.0f} µs back to back, {wc['after_sleep_us']:.0f} µs after "
                         "1 s asleep. An idle worker is a few wake-ups a second (heartbeats), so its CPU scales with the second.")
    for shape in a.shapes:
        sw = res["sweep"].get(shape, {})
        fl = {x["users"]: x for x in sw.get("floor", [])}
        dl = {x["users"]: x for x in sw.get("difyload", [])}
        both = sorted(set(fl) & set(dl))
        if not both:
            continue
        clocks = next((x.get("clocks") for x in dl.values() if x.get("clocks")), {})
        lines.append(f"\nShape `{shape}`, same users, same run (difyload's JSONL clocks: "
                     + (", ".join(f"{k or 'none'} {v}" for k, v in sorted(clocks.items())) or "-") + "):\n")
        lines.append("| users | floor CPU | difyload CPU | CPU-s/1k streams floor / difyload | ratio | TTFB err p50 / p99 ms floor "
                     "| TTFB err p50 / p99 ms difyload | mock late p99 ms (floor / difyload step) |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for u in both:
            f, d = fl[u], dl[u]
            r = d["cpu_per_1k_streams"] / f["cpu_per_1k_streams"] if d["cpu_per_1k_streams"] and f["cpu_per_1k_streams"] else None
            lines.append(f"| {u} | {f['cpu_frac']:.0%} | {d['cpu_frac']:.0%} | {fmt(f['cpu_per_1k_streams'], 3)} / {fmt(d['cpu_per_1k_streams'], 3)} "
                         f"| {fmt(r)}x | {fmt(f['err_ms']['p50'])} / {fmt(f['err_ms']['p99'])} | {fmt(d['err_ms']['p50'])} / {fmt(d['err_ms']['p99'])} "
                         f"| {fmt(f['mock_late_ms']['p99'], 1)} / {fmt(d['mock_late_ms']['p99'], 1)} |")
    for shape, pairs in (res.get("paired") or {}).items():
        lines.append(f"\nShape `{shape}`, paired steps (floor and difyload back to back on one mock, the order swapped "
                     "every round): CPU per stream, difyload / floor, per round and the median:\n")
        lines.append("| users | CPU-s/1k streams floor / difyload, per round | ratio per round | median ratio "
                     "| TTFB err p99 ms floor / difyload (worst round) | mock late p99 ms (worst step) |")
        lines.append("|---:|---|---|---:|---:|---:|")
        for u in sorted({p["users"] for p in pairs}):
            ps = [p for p in pairs if p["users"] == u]
            rs = [p["ratio"] for p in ps if p["ratio"]]
            worst = lambda g: max((p[g]["err_ms"]["p99"] or 0) for p in ps)  # noqa: E731
            late = max((p[g]["mock_late_ms"]["p99"] or 0) for p in ps for g in ("floor", "difyload"))
            lines.append(f"| {u} | " + "; ".join(f"{fmt(p['floor']['cpu_per_1k_streams'], 3)} / {fmt(p['difyload']['cpu_per_1k_streams'], 3)}" for p in ps)
                         + " | " + ", ".join(f"{r:.2f}x" for r in rs) + f" | **{statistics.median(rs):.2f}x** | "
                         + f"{worst('floor'):.2f} / {worst('difyload'):.2f} | {late:.1f} |" if rs else f"| {u} | - | - | - | - | - |")
    for shape, sw in (res.get("hog") or {}).items():
        fl, dl, both = by_users(sw)
        if not both:
            continue
        lines.append(f"\nShape `{shape}` with a CPU hog on the generator's core (a busy loop at the same priority: the "
                     "generator waits for the CPU), same users, same run:\n")
        lines.append("| users | floor CPU (streams/s) | difyload CPU (streams/s) | TTFB err p50 / p99 ms floor "
                     "| TTFB err p50 / p99 ms difyload | mock late p99 ms (floor / difyload step) |")
        lines.append("|---:|---:|---:|---:|---:|---:|")
        for u in both:
            f, d = fl[u], dl[u]
            lines.append(f"| {u} | {f['cpu_frac']:.0%} ({f['streams_per_s']:.0f}) | {d['cpu_frac']:.0%} ({d['streams_per_s']:.0f}) "
                         f"| {fmt(f['err_ms']['p50'])} / {fmt(f['err_ms']['p99'])} | {fmt(d['err_ms']['p50'])} / {fmt(d['err_ms']['p99'])} "
                         f"| {fmt(f['mock_late_ms']['p99'], 1)} / {fmt(d['mock_late_ms']['p99'], 1)} |")
    for shape, sw in (res.get("top") or {}).items():
        fl, dl, both = by_users(sw)
        if not both:
            continue
        pad = (f", each answer chunk {LEAN_PAD[shape]} bytes longer: it costs the generator's JSON check more than the "
               "server's write, so the generator's core fills first" if shape in LEAN_PAD else "")
        lines.append(f"\nShape `{shape}` on bench/leanmock (difymock's stream from a server with ~5 % of its CPU in user "
                     f"space{pad}), same users, same run: the highest loads this machine reaches. The server runs late here "
                     "(closed-loop streams bunch up); the TTFB error compares with its own send times, so it stays exact:\n")
        lines.append("| users | floor CPU (streams/s) | difyload CPU (streams/s) | TTFB err p50 / p99 / max ms floor "
                     "| TTFB err p50 / p99 / max ms difyload | server CPU (floor / difyload step) | server late p99 ms (floor / difyload step) |")
        lines.append("|---:|---:|---:|---:|---:|---:|---:|")
        for u in both:
            f, d = fl[u], dl[u]
            lines.append(f"| {u} | {f['cpu_frac']:.0%} ({f['streams_per_s']:.0f}) | {d['cpu_frac']:.0%} ({d['streams_per_s']:.0f}) "
                         f"| {fmt(f['err_ms']['p50'])} / {fmt(f['err_ms']['p99'])} / {fmt(f['err_ms']['max'])} "
                         f"| {fmt(d['err_ms']['p50'])} / {fmt(d['err_ms']['p99'])} / {fmt(d['err_ms']['max'])} "
                         f"| {f['mock_cpu_frac']:.0%} / {d['mock_cpu_frac']:.0%} "
                         f"| {fmt(f['mock_late_ms']['p99'], 1)} / {fmt(d['mock_late_ms']['p99'], 1)} |")
    sw = res.get("schedwake") or {}
    if sw.get("steps"):
        lines.append("\nbench/schedwake, with a CPU hog on its core: how late a sleeping thread wakes when data reaches it "
                     "(every 5 ms from the other core), while its process's other thread is busy; the hog in a scheduling "
                     f"group of its own (another session) or in the same one (autogroup {sw.get('autogroup') or '?'}, "
                     f"cgroup `{sw.get('cgroup') or '?'}`). Later than the token gap, a first token merges with the next "
                     "before any thread of the worker could see it:\n")
        lines.append("| hog's group | busy thread | wake-up delay p50 / p90 / p99 / max ms | samples |")
        lines.append("|---|---:|---:|---:|")
        for r in sw["steps"]:
            if r.get("failed"):
                lines.append(f"| {r['hog_group']} | {r['busy']}% | not measured: {r['failed']} | |")
                continue
            lines.append(f"| {r['hog_group']} | {r['busy']}% | {r['p50_ms']:.2f} / {r['p90_ms']:.2f} / {r['p99_ms']:.2f} "
                         f"/ {r['max_ms']:.2f} | {r['samples']} |")
    rss = res.get("rss") or {}
    if rss.get("floor") and rss.get("difyload"):
        f, d = rss["floor"][-1], rss["difyload"][-1]
        lines.append(f"\nRSS per open stream at N={d['users']}: floor {f['rss_per_stream_kib']:.1f} KiB (open {f['open_streams']}), "
                     f"difyload {d['rss_per_stream_kib']:.1f} KiB (open {d['open_streams']}): {d['rss_bytes'] / max(1, f['rss_bytes']):.2f}x")
    fl = res.get("fleet") or []
    if fl:
        lines.append(f"\nOne master, {fl[0]['users']} users shared by the fleet (`fast` shape), master CPU over the window:\n")
        lines.append("| workers | kind | joined | master CPU, % of a core | per worker | master RSS MiB | streams/s | fleet that fills the master's core |")
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in fl:
            if r.get("failed"):
                lines.append(f"| {r['workers']} | {'Go' if r['kind'] == 'go' else 'Python'} | {r['joined']} | not measured: {r['failed']} |||||")
                continue
            per = r["master_cpu_frac_per_worker"]
            lines.append(f"| {r['workers']} | {'Go' if r['kind'] == 'go' else 'Python'} | {r['joined']} | {100 * r['master_cpu_frac']:.1f} "
                         f"| {100 * per:.2f} | {r['master_rss_bytes'] / 2**20:.0f} | {r['streams_per_s']:.0f} "
                         f"| {('~' + format(int(1 / per), ',')) if per > 0 else '-'} |")
    return "\n".join(lines) + "\n"


def summarize(res, a):
    lines = [ratios(res, a)]
    fl = {}
    for shape in a.shapes:
        lines.append(f"\n### Shape `{shape}`: first token {SHAPES[shape][0]}, {SHAPES[shape][2]} tokens {SHAPES[shape][1]} apart\n")
        lines.append("| generator | CPU-s / 1k streams (median, mock on time) | CPU-s / 100k events | x floor | streams/s @50% | events/s @50% "
                     "| streams/s @90% | events/s @90% | err p50/p99 ms @50% | err p50/p99 ms @80% | err p50/p99 ms @90% "
                     "| err p50/p99 ms @95% | mock late p99 ms (max step) | mock CPU (max) | master CPU (max) | foreign CPU gen/mock core (max) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for gen in a.generators:
            steps = res["sweep"].get(shape, {}).get(gen)
            if not steps:
                continue
            good = [s for s in steps if s["cpu_per_1k_streams"] and on_time(s)]
            c1k = statistics.median(s["cpu_per_1k_streams"] for s in good) if good else None
            c100k = statistics.median(s["cpu_per_100k_events"] for s in good) if good else None
            if gen == "floor":
                fl[shape] = c1k
            ratio = c1k / fl[shape] if c1k and fl.get(shape) else None
            cells = [LABELS[gen], fmt(c1k, 3), fmt(c100k, 3), fmt(ratio)]
            for frac in (0.5, 0.9):
                s = at_load(steps, frac)
                cells += [f"{s['streams_per_s']:.0f} ({s['cpu_frac']:.0%})", f"{s['events_per_s']:.0f}"] if s else [not_reached(steps), "-"]
            for frac in (0.5, 0.8, 0.9, 0.95):
                s = at_load(steps, frac, 0.075)
                cells.append(f"{fmt(s['err_ms']['p50'])} / {fmt(s['err_ms']['p99'])} ({s['cpu_frac']:.0%})" if s else "-")
            cells.append(fmt(max((s["mock_late_ms"]["p99"] or 0) for s in steps), 1))
            cells.append(f"{max(s['mock_cpu_frac'] for s in steps):.0%}")
            cells.append(f"{max(s['master_cpu_frac'] for s in steps):.0%}" if gen != "floor" else "-")
            cells.append(f"{max(s.get('foreign_gen_core', 0) for s in steps):.0%} / {max(s.get('foreign_mock_core', 0) for s in steps):.0%}")
            lines.append("| " + " | ".join(cells) + " |")
        # Same-users ratios against the floor, on steps where the mock kept up (first-token lateness p99 <= 20 ms).
        floor_steps = {x["users"]: x for x in res["sweep"].get(shape, {}).get("floor", []) if x["cpu_per_1k_streams"]}
        lines.append("")
        for gen in a.generators:
            if gen == "floor":
                continue
            pairs = []
            for x in res["sweep"].get(shape, {}).get(gen, []):
                f = floor_steps.get(x["users"])
                if f and x["cpu_per_1k_streams"] and on_time(f) and on_time(x):
                    pairs.append((x["users"], x["cpu_per_1k_streams"] / f["cpu_per_1k_streams"]))
            if pairs:
                lines.append(f"- {LABELS[gen]}: CPU per stream / floor's at the same users (mock on time): "
                             + ", ".join(f"{u} users {r:.2f}x" for u, r in pairs)
                             + f"; median {statistics.median(r for _, r in pairs):.2f}x")
    lines.append("\n### Every step\n")
    lines.append("| shape | generator | users | gen CPU | streams/s | events/s | CPU-s/1k streams | err p50 / p99 ms (n) "
                 "| mock late p50 / p99 ms | mock CPU | master CPU | foreign CPU gen / mock core |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    hog = {f"{k}+hog": v for k, v in (res.get("hog") or {}).items()}
    for shape, gens in [(sh, res["sweep"].get(sh, {})) for sh in a.shapes] + list(hog.items()):
        for gen in a.generators:
            for x in gens.get(gen, []):
                lines.append(f"| {shape} | {gen} | {x['users']} | {x['cpu_frac']:.0%} | {x['streams_per_s']:.0f} | {x['events_per_s']:.0f} "
                             f"| {fmt(x['cpu_per_1k_streams'], 3)} | {fmt(x['err_ms']['p50'])} / {fmt(x['err_ms']['p99'])} ({x['err_ms']['n']}) "
                             f"| {fmt(x['mock_late_ms']['p50'], 1)} / {fmt(x['mock_late_ms']['p99'], 1)} | {x['mock_cpu_frac']:.0%} "
                             f"| {x['master_cpu_frac']:.0%} | {x.get('foreign_gen_core', 0):.0%} / {x.get('foreign_mock_core', 0):.0%} |")
    if res.get("rss"):
        lines.append("\n### RSS with N concurrent open streams (`hold` shape: first token 1 s, then a token every 2 s)\n")
        counts = a.rss_counts
        lines.append("| generator | " + " | ".join(f"N={n}: RSS MiB (KiB/stream)" for n in counts) + " | x floor at largest N |")
        lines.append("|---|" + "---:|" * (len(counts) + 1))
        floor_last = None
        for gen in a.generators:
            rows = {r["users"]: r for r in res["rss"].get(gen, [])}
            if not rows:
                continue
            cells = [LABELS[gen]]
            for n in counts:
                r = rows.get(n)
                cells.append(f"{r['rss_bytes'] / 2**20:.0f} ({r['rss_per_stream_kib']:.1f}; open {r['open_streams']})" if r else "-")
            last = rows.get(counts[-1])
            if gen == "floor" and last:
                floor_last = last["rss_bytes"]
            cells.append(fmt(last["rss_bytes"] / floor_last) if last and floor_last else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(res, a):
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(a.out, "sweep.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["shape", "generator", "users", "cpu_frac", "streams_per_s", "events_per_s", "cpu_per_1k_streams",
                    "cpu_per_100k_events", "err_p50_ms", "err_p99_ms", "err_n", "mock_late_p50_ms", "mock_late_p99_ms",
                    "mock_cpu_frac", "master_cpu_frac", "foreign_gen_core", "foreign_mock_core", "rss_bytes", "other_outcomes"])
        hog = {f"{k}+hog": v for k, v in (res.get("hog") or {}).items()}
        for shape, gens in list(res["sweep"].items()) + list(hog.items()):
            for gen, steps in gens.items():
                for s in steps:
                    w.writerow([shape, gen, s["users"], f"{s['cpu_frac']:.4f}", f"{s['streams_per_s']:.1f}",
                                f"{s['events_per_s']:.0f}", fmt(s["cpu_per_1k_streams"], 4), fmt(s["cpu_per_100k_events"], 4),
                                fmt(s["err_ms"]["p50"], 3), fmt(s["err_ms"]["p99"], 3), s["err_ms"]["n"],
                                fmt(s["mock_late_ms"]["p50"], 3), fmt(s["mock_late_ms"]["p99"], 3),
                                f"{s['mock_cpu_frac']:.4f}", f"{s['master_cpu_frac']:.4f}", f"{s['foreign_gen_core']:.3f}",
                                f"{s['foreign_mock_core']:.3f}", s["rss_bytes"],
                                json.dumps(s["other_outcomes"])])
    with open(os.path.join(a.out, "rss.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["generator", "users", "open_streams", "rss_bytes", "rss_per_stream_kib"])
        for gen, rows in res.get("rss", {}).items():
            for r in rows:
                w.writerow([gen, r["users"], r["open_streams"], r["rss_bytes"], f"{r['rss_per_stream_kib']:.2f}"])
    md = summarize(res, a)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    chart(res, a)


def chart(res, a):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (apt-get install python3-matplotlib): no chart")
        return
    shapes = [s for s in a.shapes if s in res["sweep"]]
    if not shapes:
        return
    fig, axes = plt.subplots(2, len(shapes), figsize=(6.5 * len(shapes), 8), squeeze=False)
    for j, shape in enumerate(shapes):
        for gen in a.generators:
            steps = sorted(res["sweep"][shape].get(gen, []), key=lambda s: s["users"])
            steps = [s for s in steps if s["cpu_per_1k_streams"]]
            if not steps:
                continue
            u = [s["users"] for s in steps]
            axes[0][j].plot(u, [s["cpu_per_1k_streams"] for s in steps], marker="o", label=LABELS[gen])
            axes[1][j].plot(u, [s["err_ms"]["p99"] or float("nan") for s in steps], marker="o", label=LABELS[gen] + " p99")
            axes[1][j].plot(u, [s["err_ms"]["p50"] or float("nan") for s in steps], marker=".", linestyle=":",
                            color=axes[1][j].lines[-1].get_color())
            for s in steps:
                axes[0][j].annotate(f"{s['cpu_frac']:.0%}", (s["users"], s["cpu_per_1k_streams"]), fontsize=7,
                                    textcoords="offset points", xytext=(3, 3))
        t, d, n = SHAPES[shape]
        axes[0][j].set_title(f"{shape}: first token {t}, {n} tokens {d} apart (labels: CPU of 1 core)", fontsize=9)
        axes[0][j].set_ylabel("CPU-seconds per 1,000 streams")
        axes[1][j].set_ylabel("TTFB error vs mock send, ms (solid p99, dotted p50)")
        axes[1][j].set_yscale("symlog", linthresh=1)
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xlabel("concurrent users (closed loop)")
            ax.set_xscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.set_ylim(bottom=0)
        axes[0][j].legend(fontsize=8)
    fig.suptitle("Load generators on one pinned core (mock on the other): cost and TTFB measurement error", fontsize=11)
    fig.tight_layout()
    path = os.path.join(a.out, "bench.png")
    fig.savefig(path, dpi=110)
    log("chart:", path)


def _interrupt(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cleanup below must finish
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--difyload", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--leanmock", required=True, help="bench/leanmock binary (the light server of the top steps)")
    ap.add_argument("--schedwake", default="", help="bench/schedwake binary (run.sh builds it with cc; empty: no schedwake steps)")
    ap.add_argument("--schedwake-busy", default="50,80",
                    help="schedwake steps: percent of the core its busy thread takes, with a hog beside it")
    ap.add_argument("--schedwake-samples", type=int, default=3000, help="wake-ups per schedwake step (5 ms apart)")
    ap.add_argument("--locust-latest", default=os.environ.get("DIFYLOAD_LOCUST_LATEST")
                    or os.path.join(ROOT, "scripts", "locust-latest.sh"),
                    help="Locust 2.46 launcher for the master and Python workers [env DIFYLOAD_LOCUST_LATEST]")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--work", default="/tmp/difyload-bench")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--shapes", default="fast,slow")
    ap.add_argument("--users", default="fast=50,150,300,450,700,1100;slow=300,1000,2000,3000,4500",
                    help="user counts per shape: shape=n,n,...;shape=...")
    ap.add_argument("--window", type=float, default=8)
    ap.add_argument("--ramp", type=float, default=2)
    ap.add_argument("--hog-users", default="fast=150,300,600",
                    help="steps (floor and difyload) with a busy loop on the generator's core: shape=n,n,...;shape=...")
    ap.add_argument("--top-users", default="fast=1100,1700,2300,2900;wide=800,1400,2000",
                    help="steps (floor and difyload) on bench/leanmock, up to a saturated generator: shape=n,n,...")
    ap.add_argument("--paired-users", default="fast=150,300,450,600",
                    help="user counts of the paired steps (floor and difyload interleaved): shape=n,n,...")
    ap.add_argument("--paired-rounds", type=int, default=3, help="floor/difyload pairs per user count (0: none)")
    ap.add_argument("--rss-counts", default="1000,10000,19500")
    ap.add_argument("--rss-rate", type=float, default=1000, help="users started per second in the RSS runs (2000/s saturated a pinned worker and its master link)")
    ap.add_argument("--rss-wait", type=float, default=40)
    ap.add_argument("--idle-workers", default="1,20", help="idle fleet sizes (Go workers; one Python worker beside)")
    ap.add_argument("--idle-window", type=float, default=20)
    ap.add_argument("--idle-python", type=int, default=1, help="also measure one idle Python worker (0: no)")
    ap.add_argument("--fleet-workers", default="10,50,100", help="Go worker counts for the master-scale step")
    ap.add_argument("--fleet-python-workers", default="10,50", help="Python worker counts for the master-scale step")
    ap.add_argument("--fleet-users", type=int, default=100, help="users shared by the fleet in the master-scale step")
    ap.add_argument("--fleet-window", type=float, default=15)
    ap.add_argument("--mock-cpu", default="0")
    ap.add_argument("--gen-cpu", default="1")
    ap.add_argument("--master-cpu", default="0")
    ap.add_argument("--resummarize", metavar="DIR", help="re-render summary.md and bench.png from DIR/results.json, run nothing")
    ap.add_argument("--smoke", action="store_true", help="tiny run for CI: floor and difyload, 1 shape, 2 steps, small RSS")
    a = ap.parse_args()
    a.generators = [g for g in a.generators.split(",") if g]
    a.shapes = [s for s in a.shapes.split(",") if s]
    def per_shape(v):
        return {k: [int(x) for x in u.split(",") if x] for k, u in (p.split("=", 1) for p in v.split(";") if p)}
    a.users, a.hog_users, a.paired_users = per_shape(a.users), per_shape(a.hog_users), per_shape(a.paired_users)
    a.top_users = per_shape(a.top_users)
    for name, shapes in (("--shapes", a.shapes), ("--hog-users", a.hog_users), ("--paired-users", a.paired_users)):
        if bad := [sh for sh in shapes if sh in LEAN_PAD or sh not in SHAPES]:
            ap.error(f"{name}: shape {bad[0]} is not one of difymock's ({', '.join(sh for sh in SHAPES if sh not in LEAN_PAD)})")
    if bad := [sh for sh in a.top_users if sh not in SHAPES]:
        ap.error(f"--top-users: unknown shape {bad[0]}")
    a.rss_counts = [int(x) for x in a.rss_counts.split(",") if x]
    a.schedwake_busy = [int(x) for x in a.schedwake_busy.split(",") if x]
    ints = lambda v: [int(x) for x in v.split(",") if x]  # noqa: E731
    a.idle_workers, a.fleet_workers, a.fleet_python_workers = ints(a.idle_workers), ints(a.fleet_workers), ints(a.fleet_python_workers)
    if a.smoke:
        a.shapes, a.window, a.ramp = ["fast"], 2, 1
        a.rss_counts, a.rss_wait = [50], 10
        a.users, a.hog_users, a.paired_users, a.paired_rounds = {"fast": [10, 40]}, {"fast": [40]}, {"fast": [40]}, 2
        a.top_users = {"fast": [40], "wide": [40]}
        a.schedwake_busy, a.schedwake_samples = [80], 200
        a.idle_workers, a.idle_window, a.idle_python = [1], 3, 0
        a.fleet_workers, a.fleet_python_workers, a.fleet_users, a.fleet_window = [2], [1], 4, 3
    if a.resummarize:
        with open(os.path.join(a.resummarize, "results.json")) as f:
            res = json.load(f)
        for k in ("generators", "shapes", "rss_counts"):
            setattr(a, k, res["args"][k])
        a.generators = [g for g in GENERATORS if g in a.generators]
        a.out = a.resummarize
        write_outputs(res, a)
        return
    signal.signal(signal.SIGTERM, _interrupt)
    b = Bench(a)
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": {k: v for k, v in vars(a).items()},
           "machine": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "uname": " ".join(os.uname())},
           "sweep": {}, "paired": {}, "hog": {}, "top": {}, "rss": {}}
    try:
        for shape in a.shapes:
            for gen in a.generators:
                log(f"=== sweep {gen} / {shape}")
                res["sweep"].setdefault(shape, {})[gen] = b.sweep(gen, shape, a.users[shape])
        for shape, users in a.paired_users.items():
            if a.paired_rounds > 0 and {"floor", "difyload"} <= set(a.generators):
                log(f"=== paired floor / difyload / {shape}, {a.paired_rounds} rounds")
                res["paired"][shape] = b.paired(shape, users, a.paired_rounds)
        for shape, users in a.hog_users.items():
            for gen in a.generators:
                if gen in ("floor", "difyload"):
                    log(f"=== sweep {gen} / {shape}, CPU hog on the generator's core")
                    res["hog"].setdefault(shape, {})[gen] = b.sweep(gen, shape, users, hog=True)
        for shape, users in a.top_users.items():
            for gen in a.generators:
                if gen in ("floor", "difyload"):
                    log(f"=== sweep {gen} / {shape} on leanmock (top steps)")
                    res["top"].setdefault(shape, {})[gen] = b.sweep(gen, shape, users, lean=True)
        if a.schedwake and a.schedwake_busy:
            log("=== schedwake: a sleeping thread's wake-up delay beside a busy thread and a CPU hog")
            res["schedwake"] = {"autogroup": read_first("/proc/sys/kernel/sched_autogroup_enabled"),
                                "cgroup": cpu_cgroup(),
                                "steps": b.schedwake(a.schedwake_busy, a.schedwake_samples)}
        if a.rss_counts:
            for gen in a.generators:
                log(f"=== rss {gen}")
                res["rss"][gen] = b.rss(gen, a.rss_counts)
        res["idle"], res["fleet"] = [], []
        if a.idle_workers:
            res["wake_cost"] = wake_cost(a.gen_cpu)
            log(f"wake-up cost on the generator core: {res['wake_cost']}")
        for n in a.idle_workers:
            log(f"=== idle: {n} Go workers")
            res["idle"].append(fleet.idle(b, "go", n, a.idle_window))
            log(f"idle go x{n}: {res['idle'][-1]['worker_cpu_frac_mean']:.4%} of a core per worker")
        if a.idle_workers and a.idle_python:
            log("=== idle: 1 Python worker")
            res["idle"].append(fleet.idle(b, "py", 1, a.idle_window))
        for kind, counts in (("go", a.fleet_workers), ("py", a.fleet_python_workers)):
            for n in counts:
                log(f"=== master with {n} {kind} workers, {a.fleet_users} users")
                r = fleet.master_scale(b, kind, n, a.fleet_users, a.fleet_window, settle=3)
                res["fleet"].append(r)
                if r.get("failed"):
                    log(f"master x{n} {kind}: not measured: {r['failed']}")
                    continue
                log(f"master x{n} {kind}: {r['master_cpu_frac']:.1%} of a core, {r['master_rss_bytes'] / 2**20:.0f} MiB, "
                    f"{r['streams_per_s']:.0f} streams/s")
    finally:
        b.stop_all()
        res["machine"]["loadavg_end"] = os.getloadavg()
        write_outputs(res, a)


if __name__ == "__main__":
    main()
