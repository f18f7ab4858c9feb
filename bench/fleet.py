"""Fleet measurements for bench.py: idle workers, and the master with many workers.

idle:   one Locust 2.46 master, N registered workers with no users; on-CPU time of every
        worker (sum of its threads' /proc/<pid>/task/*/schedstat run time, nanoseconds) over a
        quiet window. Same for one Python worker on the project's locustfile.
master: the master (alone on its core with the mock) with W workers (all on the generator
        core) sharing the same U closed-loop users on the mock's fast shape; the master's CPU
        share and RSS over a window, for Go workers and for Python workers. Its CPU per worker
        says at what fleet size the master, not the workers, limits a test (the master is one
        Python process: one core).
"""

import glob
import json
import time


def run_ns(pid):
    """On-CPU nanoseconds of every live thread of pid."""
    total = 0
    for p in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(p) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _workers(master, http):
    return json.loads(http("GET", master.web + "/stats/requests")).get("workers", [])


def start_workers(b, kind, master, n, tag):
    """n workers of kind ("go" or "py") on the generator core, joined to master."""
    a = b.a
    procs = []
    for i in range(n):
        if kind == "go":
            argv = [a.difyload, "worker", "--master-port", str(master.port), "--chat-wait", "0",
                    "--flow-weights", "SimpleChatFlow=1,ComplexChatFlow=0", "--log-level", "warn"]
            procs.append(b.start(f"{tag}-go-{i}", argv, a.gen_cpu))
        else:
            argv = ["bash", a.locust_latest, "-f", "locustfile_bench.py", "--worker", "--master-host", "127.0.0.1",
                    "--master-port", str(master.port), "--loglevel", "WARNING"]
            procs.append(b.start(f"{tag}-py-{i}", argv, a.gen_cpu))
    b.wait_until(f"{n} {kind} workers to join", lambda: len(_workers(master, b.http)) >= n, 60 + 3 * n)
    return procs


def _start_master(b, kind):
    """A fresh fast-shape mock and a master whose users suit the fleet's kind of worker."""
    b.start_mock("fast")
    lf, cls = ("locustfile.py", "ChatUser") if kind == "go" else ("locustfile_bench.py", "BenchChatUser")
    return b.start_master(lf, cls)


def idle(b, kind, n, window):
    """Per-worker CPU share (fraction of one core) of n idle workers over window seconds."""
    master = _start_master(b, kind)
    procs = []
    try:
        procs = start_workers(b, kind, master, n, f"idle{n}")
        time.sleep(5)  # registration, first stats
        pids = [p.pid for p in procs]  # locust-latest execs: the PID is the Python worker
        w0 = [run_ns(pid) for pid in pids]
        m0, t0 = run_ns(master.pid), time.time()
        time.sleep(window)
        w1 = [run_ns(pid) for pid in pids]
        m1, t1 = run_ns(master.pid), time.time()
        dt = t1 - t0
        per = sorted((y - x) / 1e9 / dt for x, y in zip(w0, w1))
        alive = sum(1 for p in procs if p.alive())
        return {"kind": kind, "workers": n, "alive": alive, "window_s": dt,
                "worker_cpu_frac_mean": sum(per) / len(per), "worker_cpu_frac_max": per[-1],
                "worker_cpu_frac_min": per[0], "master_cpu_frac": (m1 - m0) / 1e9 / dt}
    finally:
        for p in reversed(procs):
            b.stop(p)
        b.stop(master)


def master_scale(b, kind, n, users, window, settle):
    """Master CPU share and RSS with n workers of kind sharing users closed-loop users."""
    master = _start_master(b, kind)
    procs = []
    try:
        procs = start_workers(b, kind, master, n, f"fleet{n}")
        b.http("POST", master.web + "/swarm", {"user_count": users, "spawn_rate": users, "host": b.mock_url})
        seen = {}

        def started():
            st = json.loads(b.http("GET", master.web + "/stats/requests"))
            seen.update(user_count=st.get("user_count", 0), state=st.get("state"), joined=len(st.get("workers", [])))
            return seen["user_count"] >= users
        try:
            b.wait_until(f"{users} users on {n} workers", started,
                         60 + 2 * n)  # a big Python fleet on one core takes a while to start its users
        except RuntimeError as e:
            # Recorded, not fatal: the rest of the run still measures (the summary shows the row as not started).
            return {"kind": kind, "workers": n, "joined": seen.get("joined", 0), "users": users, "failed": f"{e}; master: {seen}",
                    "alive": sum(1 for p in procs if p.alive())}
        time.sleep(settle)
        http_reset = b.mock_url + "/_mock/reset"
        b.http("POST", http_reset)
        m0, t0 = run_ns(master.pid), time.time()
        rss = []
        end = t0 + window
        while time.time() < end:
            time.sleep(min(1, max(0, end - time.time())))
            rss.append(b.rss_bytes(master.pid))
        m1, t1 = run_ns(master.pid), time.time()
        tr = b.truth(False)
        dt = t1 - t0
        streams = tr.get("counts", {}).get("chat-messages", {}).get("ok", 0)
        st = json.loads(b.http("GET", master.web + "/stats/requests"))
        frac = (m1 - m0) / 1e9 / dt
        return {"kind": kind, "workers": n, "joined": len(st.get("workers", [])), "users": users, "window_s": dt,
                "master_cpu_frac": frac, "master_cpu_frac_per_worker": frac / n,
                "master_rss_bytes": max(rss) if rss else 0, "streams_per_s": streams / dt,
                "alive": sum(1 for p in procs if p.alive())}
    finally:
        try:
            b.http("GET", master.web + "/stop")
        except Exception:
            pass
        for p in reversed(procs):
            b.stop(p)
        b.stop(master)
