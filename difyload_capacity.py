"""difyload capacity search: a load shape for the Locust master (--dify-capacity).

The search runs steps of users (start, growth rule, ramp, warm-up, hold). Each step is measured
from the LLM payloads every worker already sends (difyload_llm, merged on the master): only the
payloads whose interval midpoint falls in the step's hold window, and the per-second stream,
goodput and token counts of the seconds inside the window. Nothing runs on the workers.

A step is judged against the objectives:
  * the goodput fraction (streams meeting every --slo-* limit) >= --capacity-good-fraction,
  * the stream failure rate <= --capacity-max-failure-rate,
  * not saturated: when users grew by du (relative), completed streams/s must grow by at least
    --capacity-saturation (0.5) x du, unless latency (E2E p50) did not rise.
The search stops at the first step that breaks one (optionally bisecting between the last good
and the first bad step, --capacity-refine), at --capacity-max-users, or when the run stops.
It names the result: "max sustainable: N users, X streams/s, TTFT p95 Y ms - limited by ...".

This module is loaded by locustfile.py (install()); it imports nothing from it: the LLM helpers
are passed in. See README "Capacity search and reports".
"""

import logging
import math
import time

from locust import LoadTestShape

_log = logging.getLogger("difyload.capacity")

LATENCY_METRICS = ("ttft", "ttfe", "tpot", "itl", "e2e")
PCTS = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
REPORT_INTERVAL = 3.0  # Locust workers report every 3 s (WORKER_REPORT_INTERVAL)


def add_arguments(parser):
    parser.add_argument("--dify-capacity", action="store_true", default=False,
                        help="Run a capacity search (a load shape) instead of a fixed user count")
    parser.add_argument("--capacity-start", type=int, default=10, help="Capacity search: users of the first step")
    parser.add_argument("--capacity-growth", default="+10",
                        help="Capacity search: next step's users, '+N' (add) or 'xF' (multiply)")
    parser.add_argument("--capacity-max-users", type=int, default=1000,
                        help="Capacity search: stop after the step with this many users")
    parser.add_argument("--capacity-spawn-rate", type=float, default=0,
                        help="Capacity search: users started per second (0 = the step's size per second)")
    parser.add_argument("--capacity-warmup", type=float, default=10,
                        help="Capacity search: seconds after a step's ramp that are not measured")
    parser.add_argument("--capacity-hold", type=float, default=30,
                        help="Capacity search: seconds measured per step")
    parser.add_argument("--capacity-refine", type=int, default=0,
                        help="Capacity search: bisection steps between the last good and the first bad step")
    parser.add_argument("--capacity-good-fraction", type=float, default=0.95,
                        help="Capacity search: min fraction of streams meeting every --slo-* limit")
    parser.add_argument("--capacity-max-failure-rate", type=float, default=0.01,
                        help="Capacity search: max fraction of failed streams")
    parser.add_argument("--capacity-per-class", action="store_true", default=False,
                        help="Capacity search: search each user class (app) alone, one after the other")
    parser.add_argument("--capacity-saturation", type=float, default=0.5,
                        help="Capacity search: saturated when streams/s grows by less than this x the users' growth")


def parse_growth(text):
    """'+10' -> ('add', 10); 'x2' or '*1.5' -> ('mul', 2.0). Raises ValueError on anything else."""
    t = str(text).strip().lower()
    if t[:1] in ("x", "*"):
        f = float(t[1:])
        if not f > 1.0:
            raise ValueError(f"capacity growth {text!r}: a factor must be > 1")
        return ("mul", f)
    n = int(t[1:] if t[:1] == "+" else t)
    if n < 1:
        raise ValueError(f"capacity growth {text!r}: must add at least 1 user")
    return ("add", n)


def next_users(users, growth):
    kind, v = growth
    return users + v if kind == "add" else max(users + 1, int(math.ceil(users * v)))


class Settings:
    """The search's options, validated. Errors name the option."""

    def __init__(self, opts):
        g = lambda name, default: getattr(opts, name, default) if opts is not None else default  # noqa: E731
        self.start = int(g("capacity_start", 10))
        self.growth_text = str(g("capacity_growth", "+10"))
        self.growth = parse_growth(self.growth_text)
        self.max_users = int(g("capacity_max_users", 1000))
        self.spawn_rate = float(g("capacity_spawn_rate", 0) or 0)
        self.warmup = float(g("capacity_warmup", 10))
        self.hold = float(g("capacity_hold", 30))
        self.refine = int(g("capacity_refine", 0))
        self.good_fraction = float(g("capacity_good_fraction", 0.95))
        self.max_failure_rate = float(g("capacity_max_failure_rate", 0.01))
        self.saturation = float(g("capacity_saturation", 0.5))
        self.per_class = bool(g("capacity_per_class", False))
        self.slo_ms = {}
        for k in ("ttft", "tpot", "e2e"):
            try:
                v = float(g(f"slo_{k}", 0) or 0)
            except (TypeError, ValueError):
                v = 0.0
            if v > 0:
                self.slo_ms[k] = v
        problems = []
        if self.start < 1:
            problems.append("--capacity-start must be >= 1")
        if self.max_users < self.start:
            problems.append("--capacity-max-users must be >= --capacity-start")
        if self.hold < 1:
            problems.append("--capacity-hold must be >= 1 s")
        if self.warmup < 0:
            problems.append("--capacity-warmup must be >= 0")
        if not 0 <= self.good_fraction <= 1:
            problems.append("--capacity-good-fraction must be in 0..1")
        if not 0 <= self.max_failure_rate <= 1:
            problems.append("--capacity-max-failure-rate must be in 0..1")
        if self.refine < 0:
            problems.append("--capacity-refine must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    def as_dict(self):
        return {"start": self.start, "growth": self.growth_text, "max_users": self.max_users,
                "spawn_rate": self.spawn_rate, "warmup_s": self.warmup, "hold_s": self.hold,
                "refine": self.refine, "good_fraction": self.good_fraction,
                "max_failure_rate": self.max_failure_rate, "saturation": self.saturation,
                "per_class": self.per_class,
                "slo_ms": dict(self.slo_ms)}


class Window:
    """What one step's hold window collected: histograms of the payloads whose interval midpoint
    lies in [t0, t1), and the per-second counts of the whole seconds inside it."""

    def __init__(self, t0, t1):
        self.t0, self.t1 = t0, t1
        self.hist = {}
        self.streams = self.failed = self.good = self.tokens = self.payloads = 0
        self.nodes = set()

    def take(self, data, node, merge_hist):
        try:
            mid = (float(data.get("start") or 0) + float(data.get("end") or 0)) / 2.0
        except (TypeError, ValueError):
            return
        if not self.t0 <= mid < self.t1:
            return
        self.payloads += 1
        self.nodes.add(str(node))
        for m, counts in (data.get("hist") or {}).items():
            merge_hist(self.hist.setdefault(m, {}), counts or {})
        self.streams += int(data.get("streams") or 0)
        self.failed += int(data.get("failed") or 0)
        self.good += int(data.get("good") or 0)
        self.tokens += int(data.get("output_tokens") or 0)

    def seconds(self):
        return range(int(math.ceil(self.t0)), int(math.floor(self.t1)))


def _rate(per_sec, secs):
    n = len(secs)
    return round(sum(per_sec.get(s, 0) for s in secs) / n, 3) if n else None


def _grow(a, b):
    """Relative growth from a to b (None when unknown)."""
    if a is None or b is None or a <= 0:
        return None
    return b / a - 1.0


class Search:
    """The capacity search's state machine; tick() is Locust's LoadTestShape.tick."""

    def __init__(self, env, quantile, merge_hist, clock=time.time, sync=None):
        self.env = env
        self.sync = sync  # local runs: folds the process's own LLM collector into the aggregate
        self.quantile = quantile
        self.merge_hist = merge_hist
        self.clock = clock
        self.per_sec = {"streams": {}, "good": {}, "tokens": {}}
        self.node_last_end = {}
        self.on_finish = []  # called once per search when it ends
        self.reset()

    # --- state -------------------------------------------------------------------------------
    def reset(self):
        self.settings = None
        self.error = None
        self.steps = []
        self.events = []  # what happened (fleet changes, stops), in order
        self.result = None
        self.phase = "idle"
        self.step = None
        self.good = None  # last good step
        self.bad = None  # first bad step
        self.refining = 0
        self.repeated = False
        self.started = None
        self.cls = None  # --capacity-per-class: the user class searched now, and those still to come
        self.cls_queue = []
        self.class_results = []

    def begin(self):
        self.reset()
        try:
            self.settings = Settings(getattr(self.env, "parsed_options", None))
        except ValueError as e:
            self.error = str(e)
            self.result = {"summary": f"capacity search not started: {e}", "limited_by": "invalid options"}
            _log.error("capacity search: %s", e)
            return
        self.started = self.clock()
        self.events.append({"t": self.started, "what": "search started"})
        if self.settings.per_class:
            self.cls_queue = list(getattr(self.env, "user_classes", None) or [])
            if not self.cls_queue:
                self._note("--capacity-per-class: no user classes; searching the whole workload")
            else:
                self.cls = self.cls_queue.pop(0)
        self._start_step(self.settings.start, "grow")

    def _note(self, what):
        self.events.append({"t": self.clock(), "what": what})
        _log.warning("capacity search: %s", what)

    def _workers(self):
        r = getattr(self.env, "runner", None)
        try:
            return int(r.worker_count)
        except Exception:
            return 1

    def _fleet(self):
        """The ids of the workers that run users (a worker swapped for another counts as a change)."""
        r = getattr(self.env, "runner", None)
        try:
            c = r.clients
            return tuple(sorted(str(w.id) for w in list(c.ready) + list(c.spawning) + list(c.running)))
        except Exception:
            return ("n=%d" % self._workers(),)

    def _user_count(self):
        r = getattr(self.env, "runner", None)
        try:
            return int(r.user_count)
        except Exception:
            return 0

    def _start_step(self, users, kind):
        now = self.clock()
        s = self.settings
        rate = s.spawn_rate if s.spawn_rate > 0 else float(max(users, 1))
        prev = self.steps[-1]["users"] if self.steps else 0
        ramp_limit = abs(users - prev) / rate + 2 * REPORT_INTERVAL + 2
        self.step = {"index": len(self.steps) + 1, "users": users, "kind": kind, "spawn_rate": rate,
                     "started": now, "ramp_deadline": now + ramp_limit, "workers_at_start": None}
        self.phase = "ramp"
        _log.info("capacity search: step %d, %d users (%s)", self.step["index"], users, kind)

    # --- data in -------------------------------------------------------------------------------
    def on_payload(self, data, node):
        """Every merged difyload_llm payload (called by the master's aggregate)."""
        if not isinstance(data, dict):
            return
        try:
            self.node_last_end[str(node)] = float(data.get("end") or 0)
        except (TypeError, ValueError):
            pass
        for name, key in (("streams", "streams_per_sec"), ("good", "good_per_sec"), ("tokens", "tokens_per_sec")):
            self.merge_hist(self.per_sec[name], data.get(key) or {})
        st = self.step
        if st is not None and st.get("window") is not None:
            st["window"].take(data, node, self.merge_hist)

    # --- the shape ----------------------------------------------------------------------------
    def tick(self):
        if self.phase in ("idle", "done"):
            return None
        try:
            if self.sync is not None:
                self.sync(self.env)
            out = self._tick()
        except Exception:
            _log.exception("capacity search failed; stopping")
            self._finish("internal error (see the master's log)", final=True)
            return None
        if out is not None and self.cls is not None:
            return out[0], out[1], [self.cls]
        return out

    def _tick(self):
        now = self.clock()
        st = self.step
        s = self.settings
        if self.phase == "drain":
            if self._user_count() > 0 and now < self.drain_deadline:
                return 0, float(max(s.start, 1))
            if self._user_count() > 0:
                self._note(f"{self._user_count()} users of the previous class still running")
            self._start_step(s.start, "grow")
            st = self.step
        if self.phase == "ramp":
            if self._user_count() >= st["users"] or now >= st["ramp_deadline"]:
                if self._user_count() < st["users"]:
                    self._note(f"step {st['index']}: only {self._user_count()} of {st['users']} users running "
                               "after the ramp (too few workers?)")
                st["ramped"] = now
                self.phase = "warmup"
            return st["users"], st["spawn_rate"]
        if self.phase == "warmup":
            if now - st["ramped"] >= s.warmup:
                st["window"] = Window(now, now + s.hold)
                st["workers_at_start"] = self._workers()
                st["fleet_at_start"] = self._fleet()
                st["rows_at_start"] = self._row_snapshot()
                self.phase = "hold"
            return st["users"], st["spawn_rate"]
        if self.phase == "hold":
            if now >= st["window"].t1:
                st["workers_at_end"] = self._workers()
                st["fleet_at_end"] = self._fleet()
                st["settle_deadline"] = now + 2 * REPORT_INTERVAL + 1
                self.phase = "settle"
            return st["users"], st["spawn_rate"]
        if self.phase == "settle":
            w = st["window"]
            nodes = set(self.node_last_end)
            complete = bool(nodes) and all(self.node_last_end[n] >= w.t1 for n in nodes
                                           if self.node_last_end[n] >= w.t0 - 2 * REPORT_INTERVAL)
            if not complete and now < st["settle_deadline"]:
                return st["users"], st["spawn_rate"]
            return self._evaluate(now)
        return None

    # --- judging ------------------------------------------------------------------------------
    def measure(self, st):
        w = st["window"]
        secs = list(w.seconds())
        out = {"index": st["index"], "users": st["users"], "kind": st["kind"], "user_class": self._class_name(),
               "window": [round(w.t0, 3), round(w.t1, 3)], "seconds": len(secs),
               "workers": st.get("workers_at_end"), "payloads": w.payloads,
               "streams": w.streams, "failed": w.failed, "good": w.good,
               "streams_per_s": _rate(self.per_sec["streams"], secs),
               "goodput_per_s": _rate(self.per_sec["good"], secs),
               "tokens_per_s": _rate(self.per_sec["tokens"], secs),
               "failure_rate": round(w.failed / w.streams, 4) if w.streams else None,
               "good_fraction": round(w.good / w.streams, 4) if w.streams else None}
        lat = {}
        for m, counts in w.hist.items():
            if m not in LATENCY_METRICS or not counts:
                continue
            lat[m] = {k: round(self.quantile(counts, q) / 1000.0, 3) for k, q in PCTS}
            lat[m]["count"] = sum(counts.values())
        out["latency_ms"] = lat
        out["ttfe_measured"] = "ttfe" in lat
        out.update(self._locust_rates(secs, st.get("rows_at_start")))
        try:
            out["user_classes"] = dict(getattr(self.env.runner, "reported_user_classes_count", None)
                                       or getattr(self.env.runner, "user_classes_count", {}) or {})
        except Exception:
            out["user_classes"] = {}
        return out

    def _row_snapshot(self):
        """Per Locust row: its response-time histogram and counts (the master's merged stats)."""
        stats = getattr(getattr(self.env, "runner", None), "stats", None)
        snap = {}
        for key, e in (getattr(stats, "entries", None) or {}).items():
            snap[key] = (dict(getattr(e, "response_times", {}) or {}), int(e.num_requests), int(e.num_failures))
        return snap

    def _locust_rates(self, secs, before=None):
        stats = getattr(getattr(self.env, "runner", None), "stats", None)
        if stats is None or not secs:
            return {"requests_per_s": None, "request_failures_per_s": None, "rows": []}
        total = stats.total
        out = {"requests_per_s": _rate(getattr(total, "num_reqs_per_sec", {}) or {}, secs),
               "request_failures_per_s": _rate(getattr(total, "num_fail_per_sec", {}) or {}, secs)}
        rows = []
        before = before or {}
        for (name, method), e in sorted(getattr(stats, "entries", {}).items()):
            rps = _rate(getattr(e, "num_reqs_per_sec", {}) or {}, secs)
            if not rps:
                continue
            row = {"type": method, "name": name, "requests_per_s": rps,
                   "failures_per_s": _rate(getattr(e, "num_fail_per_sec", {}) or {}, secs)}
            # Percentiles of the row's samples since the window began (Locust's ms buckets).
            rt0, n0, f0 = before.get((name, method), ({}, 0, 0))
            diff = {k: c - rt0.get(k, 0) for k, c in (getattr(e, "response_times", {}) or {}).items()
                    if c - rt0.get(k, 0) > 0}
            if diff:
                for k, q in PCTS:
                    row[k + "_ms"] = self.quantile(diff, q)
            row["requests"], row["failures"] = int(e.num_requests) - n0, int(e.num_failures) - f0
            rows.append(row)
        out["rows"] = rows
        return out

    def judge(self, m, base):
        """The objective this step breaks (text), or None."""
        s = self.settings
        if not m["streams"]:
            return "no stream completed in the step"
        fr = m["failure_rate"] or 0.0
        if fr > s.max_failure_rate:
            return f"failure rate {fr * 100:.1f} % > {s.max_failure_rate * 100:g} %"
        gf = m["good_fraction"] or 0.0
        if s.slo_ms and gf < s.good_fraction:
            limits = ", ".join(f"{k.upper()} <= {v:g} ms" for k, v in s.slo_ms.items())
            return f"goodput {gf * 100:.1f} % of streams within SLO ({limits}) < {s.good_fraction * 100:g} %"
        if base is not None:
            du = _grow(base["users"], m["users"])
            dt = _grow(base["streams_per_s"], m["streams_per_s"])
            b_e2e = (base["latency_ms"].get("e2e") or {}).get("p50")
            m_e2e = (m["latency_ms"].get("e2e") or {}).get("p50")
            dl = _grow(b_e2e, m_e2e)
            if du is not None and du > 0 and dt is not None and dt < s.saturation * du and (dl is None or dl > 0.1):
                return (f"saturation: {m['users']} users (+{du * 100:.0f} %) gave {m['streams_per_s']:g} streams/s "
                        f"({dt * 100:+.0f} %) while E2E p50 went {b_e2e:g} -> {m_e2e:g} ms")
        return None

    def _evaluate(self, now):
        st = self.step
        s = self.settings
        m = self.measure(st)
        changed = (st.get("workers_at_start") != st.get("workers_at_end")
                   or st.get("fleet_at_start") != st.get("fleet_at_end"))
        if changed:
            a, b = st.get("workers_at_start"), st.get("workers_at_end")
            m["fleet_changed"] = (f"workers {a} -> {b} during the step" if a != b
                                  else f"workers replaced during the step ({a} before and after)")
            self._note(f"step {st['index']} ({st['users']} users): {m['fleet_changed']}; "
                       + ("measuring it again" if not self.repeated else "kept, marked"))
            if not self.repeated:
                m["verdict"] = "discarded"
                self.steps.append(m)
                self.repeated = True
                self._start_step(st["users"], st["kind"] + " (repeat)")
                return self.step["users"], self.step["spawn_rate"]
        self.repeated = False
        base = self.good if self.good is not None else None
        breach = self.judge(m, base)
        m["verdict"] = "ok" if breach is None else "bad"
        m["breach"] = breach
        self.steps.append(m)
        _log.info("capacity search: step %d, %d users: %s streams/s, TTFT p95 %s ms, E2E p95 %s ms, "
                  "failures %s, good %s -> %s", m["index"], m["users"], m["streams_per_s"],
                  (m["latency_ms"].get("ttft") or {}).get("p95"), (m["latency_ms"].get("e2e") or {}).get("p95"),
                  m["failure_rate"], m["good_fraction"], breach or "ok")
        if breach is None:
            self.good = m
        elif self.bad is None or m["users"] < self.bad["users"]:
            self.bad = m
        if self.bad is not None:
            lo = self.good["users"] if self.good is not None else 0
            hi = self.bad["users"]
            if self.refining < s.refine and hi - lo > 1 and lo > 0:
                self.refining += 1
                self._start_step((lo + hi) // 2, f"refine {self.refining}/{s.refine}")
                return self.step["users"], self.step["spawn_rate"]
            return self._finish(self.bad["breach"])
        nxt = next_users(st["users"], s.growth)
        if st["users"] >= s.max_users:
            return self._finish(f"max users reached (--capacity-max-users {s.max_users}); no objective broke")
        self._start_step(min(nxt, s.max_users), "grow")
        return self.step["users"], self.step["spawn_rate"]

    def stopped(self, why):
        """The run stopped (UI stop, Ctrl-C, --run-time, quit) before the search ended."""
        if self.phase in ("idle", "done"):
            return
        st = self.step
        if st is None:
            self._note(f"{why} while switching user classes")
        else:
            self._note(f"{why} during step {st['index']} ({st['users']} users, {self.phase}); step not counted")
        self._finish(f"stopped before the search ended ({why})", final=True)

    def _class_name(self):
        return getattr(self.cls, "__name__", None) if self.cls is not None else None

    def _finish(self, limited_by, final=False):
        """Names the result of the search (of the current class with --capacity-per-class, then
        starts the next class: returns its first tick). Returns None when the search is over."""
        name = self._class_name()
        good = self.good
        steps = [x for x in self.steps if x.get("verdict") in ("ok", "bad") and x.get("user_class") == name]
        peak = max((x for x in steps if x["streams_per_s"] is not None), key=lambda x: x["streams_per_s"], default=None)
        res = {"limited_by": limited_by, "steps_completed": len(steps),
               "capacity_streams_per_s": peak["streams_per_s"] if peak else None,
               "capacity_at_users": peak["users"] if peak else None}
        if good is not None:
            ttft = (good["latency_ms"].get("ttft") or {}).get("p95")
            res.update({"max_users": good["users"], "streams_per_s": good["streams_per_s"],
                        "requests_per_s": good.get("requests_per_s"), "ttft_p95_ms": ttft,
                        "e2e_p95_ms": (good["latency_ms"].get("e2e") or {}).get("p95"),
                        "goodput_per_s": good["goodput_per_s"], "rows": good.get("rows", [])})
            res["summary"] = (f"max sustainable: {good['users']} users, {good['streams_per_s']:g} streams/s, "
                              f"TTFT p95 {ttft if ttft is not None else '-'} ms — limited by {limited_by}")
        elif steps:
            res["summary"] = (f"no sustainable load found: the first step ({steps[0]['users']} users) already "
                              f"breaks the objectives — {limited_by} (are the objectives reachable?)")
        else:
            res["summary"] = f"no step completed — {limited_by}"
        if peak is not None:
            res["summary"] += f"; peak {peak['streams_per_s']:g} streams/s at {peak['users']} users"
        if name is not None:
            res["user_class"] = name
            res["summary"] = f"{name}: {res['summary']}"
            self.class_results.append(res)
            _log.warning("capacity search: %s", res["summary"])
            if self.cls_queue and not final:
                self.cls = self.cls_queue.pop(0)
                self.good = self.bad = None
                self.refining = 0
                self.repeated = False
                # Locust's shapes pick the classes of new users only: stop every user first.
                self._note(f"next user class: {self._class_name()} (stopping the users of {name} first)")
                self.phase = "drain"
                self.step = None
                self.drain_deadline = self.clock() + 4 * REPORT_INTERVAL + 30
                return 0, float(max(self.settings.start, 1))
            for cls in self.cls_queue:
                self.class_results.append({"user_class": getattr(cls, "__name__", str(cls)), "limited_by": limited_by,
                                           "summary": f"{getattr(cls, '__name__', cls)}: not searched ({limited_by})"})
            self.cls_queue = []
            res = {"limited_by": limited_by, "per_class": self.class_results,
                   "steps_completed": sum(r.get("steps_completed", 0) for r in self.class_results),
                   "summary": " | ".join(r["summary"] for r in self.class_results)}
        self.phase = "done"
        self.result = res
        self.step = None
        if name is None:
            _log.warning("capacity search: %s", res["summary"])
        for fn in self.on_finish:
            try:
                fn()
            except Exception:
                _log.exception("capacity search: a finish callback failed")
        return None

    def snapshot(self):
        """JSON-able state for the web UI and the report."""
        cur = None
        if self.step is not None and self.phase not in ("idle", "done"):
            cur = {"index": self.step["index"], "users": self.step["users"], "phase": self.phase,
                   "user_class": self._class_name()}
        return {"enabled": self.settings is not None or self.error is not None, "phase": self.phase,
                "settings": self.settings.as_dict() if self.settings else None, "error": self.error,
                "current": cur, "steps": list(self.steps), "events": list(self.events), "result": self.result}


class CapacityShape(LoadTestShape):
    """Locust's load shape driven by a Search (set as environment.shape_class on the master)."""

    def __init__(self, search):
        super().__init__()
        self.search = search

    def reset_time(self):
        # Locust calls this from start_shape() and again from the first start(): one search.
        super().reset_time()
        sr = self.search
        just_begun = sr.phase == "ramp" and not sr.steps and sr.started is not None and sr.clock() - sr.started < 5
        if not just_begun:
            sr.begin()

    def tick(self):
        return self.search.tick()


def table_rows(snap):
    """The web UI's Capacity table: one row per step, then the result."""
    rows = []
    for m in snap.get("steps", []):
        lat = m.get("latency_ms") or {}
        rows.append({"step": m["index"], "user_class": m.get("user_class") or "all", "users": m["users"],
                     "workers": m.get("workers"),
                     "streams_per_s": m.get("streams_per_s"), "requests_per_s": m.get("requests_per_s"),
                     "ttft_p95": (lat.get("ttft") or {}).get("p95"), "tpot_p95": (lat.get("tpot") or {}).get("p95"),
                     "e2e_p95": (lat.get("e2e") or {}).get("p95"), "ttfe_p95": (lat.get("ttfe") or {}).get("p95", "n/a"),
                     "failure_rate": m.get("failure_rate"), "goodput_per_s": m.get("goodput_per_s"),
                     "verdict": m.get("verdict") + (f": {m['breach']}" if m.get("breach") else "")
                     + (f" ({m['fleet_changed']})" if m.get("fleet_changed") else "")})
    cur = snap.get("current")
    if cur:
        rows.append({"step": cur["index"], "users": cur["users"], "verdict": f"running ({cur['phase']})"})
    res = snap.get("result")
    if res:
        rows.append({"step": "result", "verdict": res.get("summary", "")})
    for e in snap.get("events", []):
        if e["what"] != "search started":
            rows.append({"step": "note", "verdict": e["what"]})
    return rows


TABLE_STRUCTURE = [
    {"key": "step", "title": "Step"}, {"key": "user_class", "title": "Class"}, {"key": "users", "title": "Users"},
    {"key": "workers", "title": "Workers"},
    {"key": "streams_per_s", "title": "Streams/s"}, {"key": "requests_per_s", "title": "Requests/s"},
    {"key": "ttft_p95", "title": "TTFT p95 (ms)"}, {"key": "tpot_p95", "title": "TPOT p95 (ms)"},
    {"key": "e2e_p95", "title": "E2E p95 (ms)"}, {"key": "ttfe_p95", "title": "TTFE p95 (ms)"},
    {"key": "failure_rate", "title": "Failure rate"}, {"key": "goodput_per_s", "title": "Goodput/s"},
    {"key": "verdict", "title": "Verdict"},
]


def _truthy(v):
    return str(v).strip().lower() in ("1", "true", "on", "yes")


def install(events, aggregate, quantile, merge_hist, sync=None):
    """Hooks the search into Locust: options, the master's (or local run's) shape, the payload
    feed from the LLM aggregate, stop handling and the web UI's Capacity view."""
    from locust.runners import WorkerRunner  # noqa: PLC0415

    @events.init_command_line_parser.add_listener
    def _capacity_arguments(parser, **_kw):
        add_arguments(parser)

    @events.init.add_listener
    def _capacity_init(environment, runner=None, web_ui=None, **_kw):
        env = environment
        runner = runner or env.runner
        if isinstance(runner, WorkerRunner):
            return
        search = Search(env, quantile, merge_hist, sync=sync)
        shape = CapacityShape(search)
        shape.runner = runner
        env._difyload_capacity = search
        aggregate(env).listeners.append(search.on_payload)
        opts = getattr(env, "parsed_options", None)
        if opts is not None and getattr(opts, "dify_capacity", False):
            if env.shape_class is not None:
                _log.warning("--dify-capacity replaces the load shape %s", type(env.shape_class).__name__)
            env.shape_class = shape
            if getattr(opts, "headless", False):
                _graceful_signals(search)
        env.events.test_stop.add_listener(lambda **_k: search.stopped("the test was stopped"))
        env.events.quitting.add_listener(lambda **_k: search.stopped("Locust quit"))
        if web_ui is not None:
            try:
                _web(env, web_ui, search, shape)
            except Exception:
                _log.exception("capacity search: the web UI extension failed to load")


def _graceful_signals(search):
    """Headless, Locust waits for a load shape before it installs its own SIGTERM handler (and
    a Ctrl-C there ends 2.12.1 without its quitting event): the first SIGTERM or SIGINT during a
    search ends the search instead, so the test stops and quits normally and the report is
    written. Once the search has ended, the signals are Locust's again."""
    import signal  # noqa: PLC0415

    import gevent  # noqa: PLC0415

    watchers = []

    def handler(name):
        def stop():
            _log.warning("capacity search: %s received, ending the search (again to exit at once)", name)
            search.stopped(f"{name} received")
        return stop

    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        try:
            watchers.append(gevent.signal_handler(sig, handler(name)))
        except Exception:
            _log.exception("capacity search: cannot handle %s", name)

    def release():
        for w in watchers:
            w.cancel()
        del watchers[:]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    search.on_finish.append(release)


def _web(env, web_ui, search, shape):
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415

    import locust  # noqa: PLC0415
    from flask import request  # noqa: PLC0415

    @web_ui.app.before_request
    def _capacity_swarm_toggle():
        # The form's "dify_capacity" custom parameter turns the search on or off for this run.
        if request.method == "POST" and request.path.endswith("/swarm") and "dify_capacity" in request.form:
            on = _truthy(request.form.get("dify_capacity"))
            if on:
                shape.runner = env.runner
                env.shape_class = shape
            elif env.shape_class is shape:
                env.shape_class = None
            if env.parsed_options is not None:
                env.parsed_options.dify_capacity = on

    react_ui = os.path.isdir(os.path.join(os.path.dirname(locust.__file__), "webui"))
    if not react_ui:
        return  # 2.12.1: the Capacity view is drawn under the LLM tab (/llm) by difyload_report's script
    web_ui.template_args.setdefault("extended_tabs", []).append({"title": "Capacity", "key": "capacity"})
    web_ui.template_args.setdefault("extended_tables", []).append({"key": "capacity", "structure": TABLE_STRUCTURE})

    @web_ui.app.after_request
    def _capacity_extend_stats(response):
        try:
            if request.path.endswith("/stats/requests") and response.status_code == 200:
                data = response.get_json(silent=True)
                if isinstance(data, dict):
                    snap = search.snapshot()
                    rows = table_rows(snap) if snap["enabled"] else [
                        {"step": "off", "verdict": "no capacity search in this run (start with --dify-capacity, "
                                                    "or set dify_capacity to true in the start form)"}]
                    data.setdefault("extended_stats", []).append({"key": "capacity", "data": rows})
                    response.set_data(json.dumps(data))
        except Exception:
            _log.exception("capacity search: extending /stats/requests failed")
        return response
