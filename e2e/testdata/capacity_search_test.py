"""Unit tests of difyload_capacity.Search against a simulated fleet (run by e2e/capacity_test.go:
python3 -m unittest with the repository root on sys.path)."""

import math
import types
import unittest

import difyload_capacity as dc


def bucket(v):
    v = int(v)
    if v < 2048:
        return v
    e = v.bit_length() - 11
    return (v >> e) << e


def quantile(counts, q):
    items = sorted((int(k), int(c)) for k, c in counts.items() if int(c) > 0)
    n = sum(c for _, c in items)
    if not n:
        return 0
    rank, cum = max(1, math.ceil(q * n)), 0
    for k, c in items:
        cum += c
        if cum >= rank:
            return k
    return items[-1][0]


def merge(into, counts):
    for k, c in counts.items():
        into[int(k)] = into.get(int(k), 0) + int(c)


class Fleet:
    """A closed-loop system with a hard throughput ceiling: T(u) = min(u * per_user, cap)."""

    def __init__(self, per_user=0.4, cap=16.0, base_ms=500.0, workers=1, fail=0.0):
        self.per_user, self.cap, self.base_ms, self.fail = per_user, cap, base_ms, fail
        self.t = 1000.0
        self.users = 0
        self.workers = workers
        self.runner = types.SimpleNamespace(user_count=0, worker_count=workers, stats=None)
        self.opts = types.SimpleNamespace()
        self.env = types.SimpleNamespace(runner=self.runner, parsed_options=self.opts)
        self.search = dc.Search(self.env, quantile, merge, clock=lambda: self.t)
        self.acc = 0.0

    def rate(self):
        return min(self.users * self.per_user, self.cap)

    def e2e_us(self):
        offered = self.users * self.per_user
        return int(self.base_ms * 1000 * max(1.0, offered / self.cap))

    def payload(self, t0, t1):
        per_sec, n = {}, 0
        for s in range(int(t0), int(t1)):
            self.acc += self.rate()
            k = int(self.acc)
            self.acc -= k
            per_sec[s] = k
            n += k
        failed = int(round(n * self.fail))
        lat = self.e2e_us()
        return {"version": 1, "start": t0, "end": t1, "streams": n, "failed": failed, "good": n - failed,
                "output_tokens": n * 10, "hist": {"e2e": {bucket(lat): n - failed}, "ttft": {bucket(lat // 5): n - failed}},
                "streams_per_sec": per_sec, "good_per_sec": per_sec, "tokens_per_sec": {}}

    def run(self, limit=2000, on_tick=None):
        self.search.begin()
        last = self.t
        while self.t < 1000 + limit:
            tick = self.search.tick()
            if tick is None:
                return self.search.snapshot()
            self.last_tick = tick
            self.users = self.runner.user_count = tick[0]
            if on_tick:
                on_tick(self)
            self.t += 1.0
            if self.t - last >= 3.0:
                for w in range(self.runner.worker_count):
                    p = self.payload(last, self.t) if w == 0 else {**self.payload(last, last), "start": last, "end": self.t}
                    self.search.on_payload(p, f"w{w}")
                last = self.t
        raise AssertionError("search did not end")


def opts(f, **kw):
    base = dict(capacity_per_class=False, capacity_start=10, capacity_growth="x1.5", capacity_max_users=500, capacity_warmup=2,
                capacity_hold=6, capacity_refine=0, capacity_good_fraction=0.95, capacity_max_failure_rate=0.01,
                capacity_saturation=0.5, capacity_spawn_rate=0)
    base.update(kw)
    for k, v in base.items():
        setattr(f.opts, k, v)
    return f


class SearchTest(unittest.TestCase):
    def test_saturation_found_at_the_ceiling(self):
        f = opts(Fleet())
        snap = f.run()
        res = snap["result"]
        self.assertIn("saturation", res["limited_by"])
        self.assertAlmostEqual(res["capacity_streams_per_s"], 16.0, delta=1.6)
        # the knee: the last step before the plateau, below the ceiling's 40 users
        self.assertLessEqual(res["max_users"], 40)
        self.assertTrue(res["summary"].startswith(f"max sustainable: {res['max_users']} users"))

    def test_refinement_bisects_between_good_and_bad(self):
        f = opts(Fleet(), capacity_refine=2)
        snap = f.run()
        kinds = [s["kind"] for s in snap["steps"]]
        self.assertEqual(sum(k.startswith("refine") for k in kinds), 2, kinds)
        users = [s["users"] for s in snap["steps"]]
        self.assertEqual(len(users), len(set(users)), users)

    def test_unmeetable_objective_stops_at_the_first_step(self):
        f = opts(Fleet(fail=0.5))
        snap = f.run()
        self.assertEqual(len(snap["steps"]), 1)
        self.assertIn("no sustainable load found", snap["result"]["summary"])
        self.assertIn("failure rate", snap["result"]["limited_by"])

    def test_slo_goodput(self):
        f = opts(Fleet(), capacity_good_fraction=0.99)
        f.opts.slo_ttft = 50
        f.fleet_good = 0
        orig = f.payload

        def payload(t0, t1):
            p = orig(t0, t1)
            p["good"] = p["streams"] // 2
            return p
        f.payload = payload
        snap = f.run()
        self.assertIn("goodput", snap["result"]["limited_by"])

    def test_fleet_change_repeats_the_step(self):
        f = opts(Fleet(workers=2))
        changed = {"done": False}

        def on_tick(fl):
            st = fl.search.step
            if not changed["done"] and st and st["index"] == 2 and fl.search.phase == "hold":
                fl.runner.worker_count = 1
                changed["done"] = True
        snap = f.run(on_tick=on_tick)
        disc = [s for s in snap["steps"] if s["verdict"] == "discarded"]
        self.assertEqual(len(disc), 1)
        self.assertIn("workers 2 -> 1", disc[0]["fleet_changed"])
        self.assertTrue(any("measuring it again" in e["what"] for e in snap["events"]))
        self.assertEqual(snap["steps"][2]["users"], disc[0]["users"])

    def test_stop_midway_keeps_completed_steps(self):
        f = opts(Fleet())
        f.search.begin()
        for _ in range(40):
            tick = f.search.tick()
            f.users = f.runner.user_count = tick[0]
            f.t += 1
            if int(f.t) % 3 == 0:
                f.search.on_payload(f.payload(f.t - 3, f.t), "w0")
        done = len(f.search.steps)
        self.assertGreaterEqual(done, 1)
        f.search.stopped("the test was stopped")
        snap = f.search.snapshot()
        self.assertEqual(len(snap["steps"]), done)
        self.assertIn("stopped before the search ended", snap["result"]["limited_by"])
        self.assertIsNone(f.search.tick())

    def test_invalid_options_are_named(self):
        f = opts(Fleet(), capacity_growth="x0.5")
        f.search.begin()
        self.assertIsNone(f.search.tick())
        self.assertIn("factor must be > 1", f.search.snapshot()["result"]["summary"])
        f = opts(Fleet(), capacity_hold=0)
        f.search.begin()
        self.assertIn("--capacity-hold", f.search.snapshot()["error"])

    def test_per_class_searches_each_class_alone(self):
        class Small:
            pass

        class Big:
            pass
        f = opts(Fleet(), capacity_per_class=True)
        f.env.user_classes = [Small, Big]
        caps = {"Small": 6.0, "Big": 16.0}
        seen = []

        def on_tick(fl):
            tick = fl.last_tick
            self.assertEqual(len(tick), 3, "per-class ticks name the class")
            fl.cap = caps[tick[2][0].__name__]
            seen.append(tick[2][0].__name__)
        snap = f.run(on_tick=on_tick)
        res = snap["result"]
        self.assertEqual([r["user_class"] for r in res["per_class"]], ["Small", "Big"])
        self.assertAlmostEqual(res["per_class"][0]["capacity_streams_per_s"], 6.0, delta=0.6)
        self.assertAlmostEqual(res["per_class"][1]["capacity_streams_per_s"], 16.0, delta=1.6)
        self.assertIn("Small: max sustainable", res["summary"])
        self.assertIn("Big: max sustainable", res["summary"])
        self.assertEqual({s["user_class"] for s in snap["steps"]}, {"Small", "Big"})
        self.assertEqual(seen[0], "Small")
        self.assertEqual(seen[-1], "Big")

    def test_growth_rules(self):
        self.assertEqual(dc.next_users(10, dc.parse_growth("+5")), 15)
        self.assertEqual(dc.next_users(10, dc.parse_growth("x1.5")), 15)
        self.assertEqual(dc.next_users(1, dc.parse_growth("*1.1")), 2)
        for bad in ("0", "+0", "x1", "abc", ""):
            with self.assertRaises(ValueError):
                dc.parse_growth(bad)


if __name__ == "__main__":
    unittest.main()
