"""difyload's LLM streaming metrics on the Locust side: the master's LLM tab and the Python
workers' half of the difyload_llm messages.

Per stream (definitions as in vLLM bench / AIPerf; docs/llm.md):
  TTFT  = first non-empty answer chunk - request start          (the TTFB row)
  N     = usage.completion_tokens if present and > 0, else the answer chunk count (flagged)
  TPOT  = (last answer chunk - first answer chunk) / (N - 1), only when N > 1
  gaps  = every gap between consecutive answer chunks ("inter-chunk latency", ITL/ICL)
  E2E   = terminal event - request start                        (the Full Response row)
  Dify's usage.latency and usage.time_to_first_token where present.
Failed streams count as streams and failures and against goodput; only successful streams
feed the histograms. Goodput = successful streams meeting every set --slo-* limit.

Every worker (difyload's Go worker and Python workers running locustfile.py) sends one
"difyload_llm" custom message per stats report and at test stop with the interval's
histograms; the master merges them (sum of dicts), serves GET /llm/stats (JSON) and
/llm/stats/csv, shows an "LLM" tab (2.2x+ React UI: a tab of the stock page; 2.12.1: the
page /llm, the stock page with an extra tab) and writes --llm-report PATH.json/PATH.csv.

The wire format itself (bucketing, quantiles, merging) stays in locustfile.py, where
metrics/llm_test.go runs it against metrics/llm.go; locustfile.py passes it in with
install(events, wire). Loaded from beside locustfile.py (Locust puts its directory on sys.path).
"""

import csv
import io
import json
import logging
import os
import time

import locust
from locust.runners import MasterRunner, WorkerRunner

_llm_log = logging.getLogger("difyload.llm")

# Filled by install(): the wire names of locustfile.py's llm-wire block.
LLM_MESSAGE = LLM_WIRE_VERSION = LLM_METRICS = None
llm_bucket = llm_bucket_value = llm_quantile = llm_merge_hist = None


def _llm_opt(env, name, default=None):
    opts = getattr(env, "parsed_options", None)
    return getattr(opts, name, default) if opts is not None else default


def _llm_slo_us(env):
    """The goodput objective from --slo-ttft/--slo-tpot/--slo-e2e (ms) in microseconds."""
    out = {}
    for key, opt in (("ttft_us", "slo_ttft"), ("tpot_us", "slo_tpot"), ("e2e_us", "slo_e2e")):
        try:
            v = float(_llm_opt(env, opt, 0) or 0)
        except (TypeError, ValueError):
            v = 0.0
        out[key] = int(v * 1000) if v > 0 else 0
    return out


def _llm_slo_met(s, slo):
    if s["failed"]:
        return False
    if slo["ttft_us"] > 0 and (s["ttft"] is None or s["ttft"] > slo["ttft_us"]):
        return False
    if slo["tpot_us"] > 0 and s["tpot"] is not None and s["tpot"] > slo["tpot_us"]:
        return False
    if slo["e2e_us"] > 0 and s["e2e"] > slo["e2e_us"]:
        return False
    return True


def _us(seconds):
    return max(0, int(seconds * 1e6))


def _llm_sample(start, stream, failure):
    """One stream's LLM values (integer microseconds), as tasks.StreamSampleFrom computes them."""
    now = time.time()
    s = {"failed": failure is not None, "end": now, "ttft": None, "ttfe": None, "tpot": None, "gaps": [],
         "e2e": _us(now - start), "tokens": 0, "from_chunks": False,
         "server_latency": None, "server_ttft": None}
    if stream is None:
        return s
    end = stream.end or now
    s["end"] = end
    s["e2e"] = _us(end - start)
    ct = stream.chunk_times
    if stream.first_token is not None:
        s["ttft"] = _us(stream.first_token - start)
    if stream.first_event is not None:
        s["ttfe"] = _us(stream.first_event - start)
    s["gaps"] = [_us(b - a) for a, b in zip(ct, ct[1:])]
    usage = stream.usage or {}
    n = usage.get("completion_tokens")
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n > 0:
        s["tokens"] = int(n)
    else:
        s["tokens"] = len(ct)
        s["from_chunks"] = True
    if s["tokens"] > 1 and ct:
        s["tpot"] = _us((ct[-1] - ct[0]) / (s["tokens"] - 1))
    for key, field in (("server_latency", "latency"), ("server_ttft", "time_to_first_token")):
        v = usage.get(field)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            s[key] = _us(float(v))
    return s


class _LLMCollector:
    """Per-process interval collector (Python workers and local runs): what metrics.LLM is
    in the Go worker. drain() returns the same wire payload."""

    def __init__(self):
        self.reset(time.time())

    def reset(self, now):
        self.start = now
        self.hist = {m: {} for m in LLM_METRICS}
        self.sum = {m: 0 for m in LLM_METRICS}
        self.max = {m: 0 for m in LLM_METRICS}
        self.count = {m: 0 for m in LLM_METRICS}
        self.streams = self.failed = self.good = self.tokens = self.fallback = 0
        self.tokens_per_sec, self.good_per_sec, self.streams_per_sec = {}, {}, {}

    def _record(self, metric, v):
        v = max(0, int(v))
        h = self.hist[metric]
        k = llm_bucket(v)
        h[k] = h.get(k, 0) + 1
        self.count[metric] += 1
        self.sum[metric] += v
        if v > self.max[metric]:
            self.max[metric] = v

    def observe(self, s, slo):
        sec = int(s["end"])
        self.streams += 1
        self.streams_per_sec[sec] = self.streams_per_sec.get(sec, 0) + 1
        if s["failed"]:
            self.failed += 1
            return
        for metric in ("ttft", "ttfe", "tpot", "server_latency", "server_ttft"):
            if s[metric] is not None:
                self._record(metric, s[metric])
        if s["ttft"] is not None and s.get("turn", 0) > 0:  # multi-turn conversations
            self._record("ttft_turn1" if s["turn"] == 1 else "ttft_later", s["ttft"])
        for g in s["gaps"]:
            self._record("itl", g)
        self._record("e2e", s["e2e"])
        self._record("tokens", s["tokens"])
        self.tokens += s["tokens"]
        if s["tokens"] > 0:
            self.tokens_per_sec[sec] = self.tokens_per_sec.get(sec, 0) + s["tokens"]
        if s["from_chunks"]:
            self.fallback += 1
        if _llm_slo_met(s, slo):
            self.good += 1
            self.good_per_sec[sec] = self.good_per_sec.get(sec, 0) + 1

    def drain(self, now, slo):
        present = [m for m in LLM_METRICS if self.count[m]]
        payload = {
            "version": LLM_WIRE_VERSION,
            "start": float(self.start),
            "end": float(now),
            "streams": self.streams,
            "failed": self.failed,
            "good": self.good,
            "output_tokens": self.tokens,
            "chunk_fallback": self.fallback,
            "hist": {m: self.hist[m] for m in present},
            "sum": {m: self.sum[m] for m in present},
            "max": {m: self.max[m] for m in present},
            "tokens_per_sec": self.tokens_per_sec,
            "good_per_sec": self.good_per_sec,
            "streams_per_sec": self.streams_per_sec,
            "slo": dict(slo),
        }
        self.reset(now)
        return payload


LLM_WINDOW = 10.0  # seconds behind the "current" rates
LLM_REPORT_LAG = 3.0  # the newest seconds are incomplete until every worker has reported

# Display rows of the latency histograms: (metric, label, divisor to the shown unit).
_LLM_ROWS = (
    ("ttft", "TTFT (ms)", 1000.0),
    ("ttfe", "TTFE: first event (ms)", 1000.0),
    ("tpot", "TPOT (ms)", 1000.0),
    ("itl", "Inter-chunk (ms)", 1000.0),
    ("e2e", "E2E (ms)", 1000.0),
    ("server_latency", "Dify latency (ms)", 1000.0),
    ("server_ttft", "Dify TTFT (ms)", 1000.0),
    ("tokens", "Output tokens / stream", 1.0),
    ("ttft_turn1", "TTFT, first turn (ms)", 1000.0),
    ("ttft_later", "TTFT, later turns (ms)", 1000.0),
)
_LLM_PCTS = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))


class _LLMAggregate:
    """The master's merge of every worker's payloads (and of a local run's own collector)."""

    def __init__(self):
        self.listeners = []  # fn(payload, node) per merged payload (difyload_capacity, difyload_report)
        self.reset(None)

    def reset(self, start):
        self.start = start
        self.end = None
        self.hist = {m: {} for m in LLM_METRICS}
        self.sum = {m: 0 for m in LLM_METRICS}
        self.max = {m: 0 for m in LLM_METRICS}
        self.streams = self.failed = self.good = self.tokens = self.fallback = 0
        self.tokens_per_sec, self.good_per_sec, self.streams_per_sec = {}, {}, {}
        self.workers = {}
        self.bad_payloads = 0

    def merge(self, data, node="local"):
        if not isinstance(data, dict) or data.get("version") != LLM_WIRE_VERSION:
            self.bad_payloads += 1
            if self.bad_payloads == 1:
                _llm_log.warning("ignoring a %s message with an unknown version from %s", LLM_MESSAGE, node)
            return
        for m, counts in (data.get("hist") or {}).items():
            llm_merge_hist(self.hist.setdefault(m, {}), counts or {})
        for m, v in (data.get("sum") or {}).items():
            self.sum[m] = self.sum.get(m, 0) + int(v)
        for m, v in (data.get("max") or {}).items():
            self.max[m] = max(self.max.get(m, 0), int(v))
        streams = int(data.get("streams") or 0)
        self.streams += streams
        self.failed += int(data.get("failed") or 0)
        self.good += int(data.get("good") or 0)
        self.tokens += int(data.get("output_tokens") or 0)
        self.fallback += int(data.get("chunk_fallback") or 0)
        for name in ("tokens_per_sec", "good_per_sec", "streams_per_sec"):
            llm_merge_hist(getattr(self, name), data.get(name) or {})
        if self.start is None and streams:
            self.start = float(data.get("start") or time.time())
        w = self.workers.setdefault(str(node), {"payloads": 0, "streams": 0, "output_tokens": 0})
        w["payloads"] += 1
        w["streams"] += streams
        w["output_tokens"] += int(data.get("output_tokens") or 0)
        w["last_seen"] = time.time()
        w["slo"] = data.get("slo") or {}
        for fn in self.listeners:
            try:
                fn(data, node)
            except Exception:
                _llm_log.exception("LLM metrics: a payload listener failed")

    def _window(self, per_sec, now, running):
        t1 = now - LLM_REPORT_LAG if running else (self.end or now)
        t0 = max(t1 - LLM_WINDOW, self.start or t1)
        if t1 - t0 < 1.0:
            return None
        total = sum(c for sec, c in per_sec.items() if t0 <= sec + 0.5 < t1)
        return total / (t1 - t0)

    def summary(self, env, now=None, with_histograms=False):
        now = time.time() if now is None else now
        runner = getattr(env, "runner", None)
        state = getattr(runner, "state", "") if runner is not None else ""
        running = state in ("spawning", "running") and self.end is None
        start = self.start
        end = self.end if self.end is not None else now
        duration = max(0.0, end - start) if start is not None else 0.0

        def rate(n):
            return round(n / duration, 3) if duration >= 1.0 else None

        def rnd(v):
            return None if v is None else round(v, 3)

        metrics = {}
        for m, _label, div in _LLM_ROWS:
            h = self.hist.get(m) or {}
            n = sum(h.values())
            entry = {"unit": "tokens" if m == "tokens" else "ms", "count": n}
            exact_max = self.max.get(m, 0)

            def shown(v, div=div):
                return v if div == 1.0 else round(v / div, 3)

            for key, q in _LLM_PCTS:  # a bucket midpoint may exceed the exact max: clamp
                entry[key] = shown(min(llm_quantile(h, q), exact_max)) if n else None
            entry["max"] = shown(exact_max) if n else None
            entry["mean"] = round(self.sum.get(m, 0) / n / div, 3) if n else None
            metrics[m] = entry
        slo = _llm_slo_us(env)
        out = {
            "version": LLM_WIRE_VERSION,
            "state": state,
            "start": start,
            "end": self.end,
            "duration_s": round(duration, 3),
            "slo_ms": {k[:-3]: v / 1000.0 for k, v in slo.items()},
            "streams": self.streams,
            "failed": self.failed,
            "good": self.good,
            "good_fraction": round(self.good / self.streams, 4) if self.streams else None,
            "output_tokens": self.tokens,
            "chunk_fallback": self.fallback,
            "output_tokens_per_s": {
                "current": rnd(self._window(self.tokens_per_sec, now, running)),
                "total": rate(self.tokens),
                "peak_1s": max(self.tokens_per_sec.values()) if self.tokens_per_sec else 0,
            },
            "goodput_per_s": {"current": rnd(self._window(self.good_per_sec, now, running)), "total": rate(self.good)},
            "streams_per_s": {"current": rnd(self._window(self.streams_per_sec, now, running)),
                              "total": rate(self.streams)},
            "metrics": metrics,
            "workers": self.workers,
        }
        out["rows"] = self.rows(out)
        if with_histograms:
            out["histograms"] = {m: {str(k): c for k, c in sorted(h.items())} for m, h in self.hist.items() if h}
        return out

    @staticmethod
    def rows(summary):
        """The LLM tab's table: one row per histogram, then the rates and counts."""
        def cell(v):
            return "" if v is None else v

        rows = []
        for m, label, _div in _LLM_ROWS:
            e = summary["metrics"][m]
            if not e["count"] and m in ("server_latency", "server_ttft", "ttft_turn1", "ttft_later"):
                continue
            row = {"metric": label, "count": e["count"], "current": "", "total": ""}
            for key, _q in _LLM_PCTS:
                row[key] = cell(e[key])
            row["max"], row["mean"] = cell(e["max"]), cell(e["mean"])
            rows.append(row)
        slo = summary["slo_ms"]
        limits = ", ".join(f"{k.upper()} <= {v:g} ms" for k, v in slo.items() if v > 0) or "no SLO set"
        blank = {"p50": "", "p90": "", "p95": "", "p99": "", "max": "", "mean": ""}
        tps = summary["output_tokens_per_s"]
        rows.append({**blank, "metric": "Output tokens/s", "count": summary["output_tokens"],
                     "max": tps["peak_1s"], "current": cell(tps["current"]), "total": cell(tps["total"])})
        gp = summary["goodput_per_s"]
        rows.append({**blank, "metric": f"Goodput, streams/s ({limits})", "count": summary["good"],
                     "current": cell(gp["current"]), "total": cell(gp["total"])})
        sp = summary["streams_per_s"]
        rows.append({**blank, "metric": "Streams/s (incl. failed)", "count": summary["streams"],
                     "current": cell(sp["current"]), "total": cell(sp["total"])})
        gf = summary["good_fraction"]
        rows.append({**blank, "metric": "Failed streams / good fraction", "count": summary["failed"],
                     "total": "" if gf is None else f"{gf * 100:.1f} % good"})
        if summary["chunk_fallback"]:
            rows.append({**blank, "metric": "Token count from chunks (no usage)", "count": summary["chunk_fallback"],
                         "current": "", "total": ""})
        return rows

    def csv_text(self, summary):
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["Metric", "Unit", "Count", "p50", "p90", "p95", "p99", "Max", "Mean", "Current", "Total"])
        for m, label, _div in _LLM_ROWS:
            e = summary["metrics"][m]
            w.writerow([m, e["unit"], e["count"]] + ["" if e[k] is None else e[k]
                                                     for k in ("p50", "p90", "p95", "p99", "max", "mean")] + ["", ""])
        tps, gp, sp = summary["output_tokens_per_s"], summary["goodput_per_s"], summary["streams_per_s"]
        w.writerow(["output_tokens_per_s", "tokens/s", summary["output_tokens"], "", "", "", "", tps["peak_1s"], "",
                    "" if tps["current"] is None else tps["current"], "" if tps["total"] is None else tps["total"]])
        w.writerow(["goodput_per_s", "streams/s", summary["good"], "", "", "", "", "", "",
                    "" if gp["current"] is None else gp["current"], "" if gp["total"] is None else gp["total"]])
        w.writerow(["streams_per_s", "streams/s", summary["streams"], "", "", "", "", "", "",
                    "" if sp["current"] is None else sp["current"], "" if sp["total"] is None else sp["total"]])
        for name in ("streams", "failed", "good", "output_tokens", "chunk_fallback"):
            w.writerow([name, "count", summary[name], "", "", "", "", "", "", "", ""])
        return buf.getvalue()

    def write_report(self, env, path):
        base = path[:-5] if path.endswith(".json") else path[:-4] if path.endswith(".csv") else path
        summary = self.summary(env, with_histograms=True)
        if os.path.dirname(base):
            os.makedirs(os.path.dirname(base), exist_ok=True)
        with open(base + ".json", "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1, ensure_ascii=False)
        with open(base + ".csv", "w", encoding="utf-8", newline="") as f:
            f.write(self.csv_text(summary))
        _llm_log.info("LLM report written to %s.json and %s.csv", base, base)


def _llm_state(env):
    st = getattr(env, "_difyload_llm", None)
    if st is None:
        st = {"collector": _LLMCollector(), "aggregate": _LLMAggregate()}
        env._difyload_llm = st
    return st


def _llm_observe(env, flow, start, stream, failure, turn=0):
    """Called once per finished stream (success or failure, not cancelled); turn is the turn
    of a multi-turn conversation (1 = first), 0 for single-turn apps."""
    try:
        s = _llm_sample(start, stream, failure)
        s["turn"] = turn
        _llm_state(env)["collector"].observe(s, _llm_slo_us(env))
        if s["failed"] or not _llm_opt(env, "llm_rows", False):
            return
        split = bool(_llm_opt(env, "dify_split_flows", False))
        for base, value in (("TPOT", s["tpot"]),
                            ("Inter-chunk", sum(s["gaps"]) / len(s["gaps"]) if s["gaps"] else None)):
            if value is None:
                continue
            env.events.request.fire(request_type="SSE", name=f"{base} {flow}" if split else base,
                                    response_time=value / 1000.0, response_length=0, exception=None,
                                    context={}, response=None, start_time=start, url=None)
    except Exception:  # metrics must never break a user
        _llm_log.exception("LLM metrics: observing a stream failed")


def _llm_local_sync(env):
    """Local (single-process) runs: fold this process's collector into the aggregate."""
    st = _llm_state(env)
    runner = getattr(env, "runner", None)
    if runner is not None and not isinstance(runner, (MasterRunner, WorkerRunner)):
        st["aggregate"].merge(st["collector"].drain(time.time(), _llm_slo_us(env)), "local")


def _llm_arguments(parser, **_kw):
    parser.add_argument("--slo-ttft", type=float, default=0, env_var="DIFYLOAD_SLO_TTFT",
                        help="Goodput SLO: max time to first token, ms (0 = no limit)")
    parser.add_argument("--slo-tpot", type=float, default=0, env_var="DIFYLOAD_SLO_TPOT",
                        help="Goodput SLO: max time per output token, ms (0 = no limit)")
    parser.add_argument("--slo-e2e", type=float, default=0, env_var="DIFYLOAD_SLO_E2E",
                        help="Goodput SLO: max end-to-end stream time, ms (0 = no limit)")
    parser.add_argument("--llm-report", default="", env_var="DIFYLOAD_LLM_REPORT",
                        help="Master: write the LLM metrics to PATH.json and PATH.csv when Locust quits")
    parser.add_argument("--llm-rows", action="store_true", default=False,
                        help="Also report the rows SSE TPOT and SSE Inter-chunk (per-stream mean gap)")


_LLM_PAGE_212 = """{% extends "index.html" %}
{% block extended_tabs %}<li><a href="#" class="llm-tab-link">LLM</a></li>{% endblock extended_tabs %}
{% block extended_panes %}
<div style="display:none;">
  <table id="llm" class="stats">
    <thead><tr>
      <th class="stats_label">Metric</th><th class="stats_label numeric">Count</th>
      <th class="stats_label numeric">p50</th><th class="stats_label numeric">p90</th>
      <th class="stats_label numeric">p95</th><th class="stats_label numeric">p99</th>
      <th class="stats_label numeric">Max</th><th class="stats_label numeric">Mean</th>
      <th class="stats_label numeric">Current</th><th class="stats_label numeric">Total</th>
    </tr></thead>
    <tbody></tbody>
  </table>
  <p><a href="./llm/stats">JSON</a> &middot; <a href="./llm/stats/csv">Download LLM metrics CSV</a></p>
</div>
{% endblock extended_panes %}
{% block extended_script %}
<script type="text/javascript">
(function () {
  var cols = ["metric", "count", "p50", "p90", "p95", "p99", "max", "mean", "current", "total"];
  function esc(v) { return String(v === null || v === undefined ? "" : v).replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  function refresh() {
    $.get("./llm/stats", function (d) {
      var html = "";
      (d.rows || []).forEach(function (r, i) {
        html += '<tr class="' + (i % 2 ? "dark" : "") + '">';
        cols.forEach(function (c, j) { html += '<td class="' + (j ? "numeric" : "name") + '">' + esc(r[c]) + "</td>"; });
        html += "</tr>";
      });
      $("#llm tbody").html(html);
    }).always(function () { setTimeout(refresh, 2000); });
  }
  refresh();
  // /llm opens on the LLM tab (jQuery Tools tabs API of the 2.12.1 page).
  var tabs = $("ul.tabs").data("tabs");
  if (tabs) { tabs.click($("ul.tabs li").index($("a.llm-tab-link").parent())); }
})();
</script>
{% endblock extended_script %}
"""

_LLM_TABLE_STRUCTURE = [
    {"key": "metric", "title": "Metric"},
    {"key": "count", "title": "Count"},
    {"key": "p50", "title": "p50"},
    {"key": "p90", "title": "p90"},
    {"key": "p95", "title": "p95"},
    {"key": "p99", "title": "p99"},
    {"key": "max", "title": "Max / peak"},
    {"key": "mean", "title": "Mean"},
    {"key": "current", "title": "Current"},
    {"key": "total", "title": "Run average"},
]


def _llm_web(env, web_ui):
    from flask import jsonify, make_response, redirect, render_template_string, request

    react_ui = os.path.isdir(os.path.join(os.path.dirname(locust.__file__), "webui"))
    auth = getattr(web_ui, "auth_required_if_enabled", lambda f: f)
    agg = _llm_state(env)["aggregate"]

    def summary():
        _llm_local_sync(env)
        return agg.summary(env)

    @web_ui.app.route("/llm/stats")
    @auth
    def _llm_stats():
        return jsonify(summary())

    @web_ui.app.route("/llm/stats/csv")
    @auth
    def _llm_stats_csv():
        resp = make_response(agg.csv_text(summary()))
        resp.headers["Content-Type"] = "text/csv"
        resp.headers["Content-Disposition"] = f"attachment;filename=llm_stats_{int(time.time())}.csv"
        return resp

    if react_ui:
        # Locust 2.2x+: documented template_args extension (extended_tabs/_tables/_csv_files);
        # the tab's rows ride on /stats/requests, which the UI polls, as "extended_stats".
        web_ui.template_args["extended_tabs"] = [{"title": "LLM", "key": "llm"}]
        web_ui.template_args["extended_tables"] = [{"key": "llm", "structure": _LLM_TABLE_STRUCTURE}]
        web_ui.template_args["extended_csv_files"] = [{"href": "./llm/stats/csv", "title": "Download LLM metrics CSV"}]

        @web_ui.app.after_request
        def _llm_extend_stats(response):
            try:
                if request.path.endswith("/stats/requests") and response.status_code == 200:
                    data = response.get_json(silent=True)
                    if isinstance(data, dict):
                        data.setdefault("extended_stats", []).append({"key": "llm", "data": summary()["rows"]})
                        response.set_data(json.dumps(data))
            except Exception:
                _llm_log.exception("LLM metrics: extending /stats/requests failed")
            return response

        @web_ui.app.route("/llm")
        @auth
        def _llm_page():
            return redirect("./?tab=llm")
    else:
        # Locust 2.12.1 (Jinja UI): the documented way is a page extending index.html's blocks.
        @web_ui.app.route("/llm")
        @auth
        def _llm_page():
            web_ui.update_template_args()
            return render_template_string(_LLM_PAGE_212, **web_ui.template_args)


def _llm_init(environment, runner=None, web_ui=None, **_kw):
    env = environment
    runner = runner or env.runner
    st = _llm_state(env)
    if isinstance(runner, WorkerRunner):
        def send(final):
            try:
                payload = st["collector"].drain(time.time(), _llm_slo_us(env))
                runner.send_message(LLM_MESSAGE, payload)
            except Exception:
                _llm_log.exception("LLM metrics: sending the %s report failed", "final" if final else "periodic")

        env.events.report_to_master.add_listener(lambda client_id=None, data=None, **kw: send(False))
        env.events.test_stop.add_listener(lambda **kw: send(True))
        env.events.test_start.add_listener(lambda **kw: st["collector"].reset(time.time()))
        return
    if isinstance(runner, MasterRunner):
        def on_message(environment=None, msg=None, **_kw):
            try:  # an exception here would end 2.12.1's master receive loop
                st["aggregate"].merge(msg.data, getattr(msg, "node_id", "?"))
            except Exception:
                _llm_log.exception("LLM metrics: merging a %s message failed", LLM_MESSAGE)

        runner.register_message(LLM_MESSAGE, on_message)

    def on_test_start(**_kw):
        try:
            st["collector"].reset(time.time())
            st["aggregate"].reset(time.time())
        except Exception:
            _llm_log.exception("LLM metrics: test_start")

    def on_test_stop(**_kw):
        try:
            _llm_local_sync(env)
            st["aggregate"].end = time.time()
        except Exception:
            _llm_log.exception("LLM metrics: test_stop")

    def on_reset_stats(**_kw):
        agg = st["aggregate"]
        agg.reset(time.time() if agg.start is not None else None)

    def on_quitting(**_kw):
        path = _llm_opt(env, "llm_report", "")
        if not path:
            return
        try:
            _llm_local_sync(env)
            st["aggregate"].write_report(env, path)
        except Exception:
            _llm_log.exception("LLM metrics: writing the report to %s failed", path)

    env.events.test_start.add_listener(on_test_start)
    env.events.test_stop.add_listener(on_test_stop)
    env.events.reset_stats.add_listener(on_reset_stats)
    env.events.quitting.add_listener(on_quitting)
    if web_ui is not None:
        try:
            _llm_web(env, web_ui)
        except Exception:
            _llm_log.exception("LLM metrics: the web UI extension failed to load")


def install(events, wire):
    """Registers the LLM metrics' arguments and listeners on Locust's events. wire holds the
    llm-wire block's names (LLM_MESSAGE, LLM_WIRE_VERSION, LLM_METRICS, llm_bucket, llm_bucket_value,
    llm_quantile, llm_merge_hist)."""
    g = globals()
    for name in ("LLM_MESSAGE", "LLM_WIRE_VERSION", "LLM_METRICS", "llm_bucket", "llm_bucket_value", "llm_quantile", "llm_merge_hist"):
        g[name] = wire[name]
    events.init_command_line_parser.add_listener(_llm_arguments)
    events.init.add_listener(_llm_init)


def aggregate(env):
    """The master's (or a local run's) merged LLM metrics."""
    return _llm_state(env)["aggregate"]


observe = _llm_observe
local_sync = _llm_local_sync
