"""Unit tests of difyload_report (run by e2e/capacity_test.go with the repository root on sys.path)."""

import json
import re
import types
import unittest

import difyload_report as dr
from capacity_search_test import bucket, merge, quantile


def payload(t0, t1, n, lat_us):
    return {"version": 1, "start": t0, "end": t1, "streams": n, "failed": 0, "good": n, "output_tokens": 10 * n,
            "hist": {"ttft": {bucket(lat_us): n}, "e2e": {bucket(lat_us * 3): n}},
            "streams_per_sec": {int(t0) + i: n // int(t1 - t0) for i in range(int(t1 - t0))},
            "good_per_sec": {}, "tokens_per_sec": {}}


class SeriesTest(unittest.TestCase):
    def test_buckets_close_and_rates_wait_for_every_node(self):
        s = dr.Series(quantile, merge, bucket=5)
        for i in range(10):
            s.on_payload(payload(1000 + 3 * i, 1003 + 3 * i, 30, 100_000 + 10_000 * i), users=4, now=1000 + 3 * i, node="a")
        self.assertTrue(s.closed, "old buckets are reduced to points")
        pts = s.export()["points"]
        self.assertEqual([p["t"] for p in pts], sorted(p["t"] for p in pts))
        with_rates = [p for p in pts if "streams_per_s" in p]
        self.assertTrue(with_rates)
        self.assertAlmostEqual(with_rates[1]["streams_per_s"], 10.0)
        self.assertLessEqual(max(p["t"] for p in with_rates) + 5, 1030 + 1)
        self.assertGreater(pts[-1]["ttft"]["p95"], pts[0]["ttft"]["p95"])
        # a second node that is behind holds the rates of newer buckets back
        s.on_payload(payload(1000, 1003, 3, 100_000), users=4, now=1030, node="b")
        self.assertLess(len([p for p in s.export()["points"] if "streams_per_s" in p]), len(with_rates))

    def test_bad_payloads_are_ignored(self):
        s = dr.Series(quantile, merge)
        for bad in (None, [], {"start": "x"}, {"start": 0, "end": 0}):
            s.on_payload(bad, users=1)
        self.assertEqual(s.export()["points"], [])


class PageTest(unittest.TestCase):
    def report(self, host):
        return {"difyload_report": 1, "host": host, "locust_version": "x", "series": {"points": []},
                "llm": {"rows": [{"metric": "<b>m</b>", "count": 1}], "slo_ms": {"ttft": 500}},
                "capacity": None, "locust": {"rows": [], "failures": [{"type": "POST", "name": "n",
                                                                      "error": "<script>x</script>", "occurrences": 2}]}}

    def test_data_cannot_break_out_of_the_page(self):
        page = dr.page(self.report("http://h/</script><script>alert(1)</script>"))
        self.assertNotIn("<script>alert(1)", page)
        self.assertNotIn("<b>m</b>", page)
        self.assertNotIn("<script>x</script>", page)
        data = re.search(r'<script type="application/json" id="difyload-data">(.*?)</script>', page, re.S).group(1)
        self.assertEqual(json.loads(data)["host"], "http://h/</script><script>alert(1)</script>")
        self.assertNotIn("http://", page.replace("http://www.w3.org/2000/svg", "").replace("http://h/", ""))

    def test_locust_html_gets_the_section(self):
        import sys
        mod = types.ModuleType("locust.fake_html")
        mod.get_html_report = lambda env, **kw: "<html><body><p>locust</p></body></html>"
        sys.modules["locust.html"] = mod
        try:
            self.assertIn("locust.html", dr.patch_locust_html(lambda env: "<section>LLM</section>"))
            out = mod.get_html_report(object())
            self.assertEqual(out, "<html><body><p>locust</p><section>LLM</section></body></html>")
            dr.patch_locust_html(lambda env: "<section>LLM</section>")  # idempotent
            self.assertEqual(mod.get_html_report(object()).count("LLM"), 1)
        finally:
            del sys.modules["locust.html"]


if __name__ == "__main__":
    unittest.main()
