"""difyload run reports: one self-contained HTML file (and its JSON) per run, written by the master.

What the report holds (all of it also in the JSON, schema "difyload_report": 1):
  * Locust's request rows (Aggregated included) and failures,
  * the LLM metrics (the master's merge of every worker's difyload_llm payloads),
  * time series in buckets of --dify-report-bucket seconds: TTFT/TPOT/E2E p50/p95/p99, output
    tokens/s, goodput/s, streams/s, failed streams, users,
  * the capacity search's steps and result when --dify-capacity ran.
The charts are drawn in the page by a small inline script from the JSON embedded in the page: no
network at view time. The same script draws the live charts of the web UI's LLM and Capacity
views (it polls ./difyload/report.json there).

Outputs: --dify-report PATH writes PATH.html and PATH.json when Locust quits (also after an
early stop); the web UI serves ./difyload/report.html and ./difyload/report.json (Download
Data); Locust's own --html report gets the LLM section appended.
Loaded by locustfile.py (install()); the LLM helpers are passed in, nothing is imported from it.
"""

import html
import json
import logging
import math
import os
import time

_log = logging.getLogger("difyload.report")

SCHEMA = 1
SERIES_METRICS = ("ttft", "tpot", "e2e", "ttfe")
SERIES_PCTS = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def add_arguments(parser):
    parser.add_argument("--dify-report", default="", env_var="DIFYLOAD_REPORT",
                        help="Master: write the run report to PATH.html and PATH.json when Locust quits")
    parser.add_argument("--dify-report-bucket", type=float, default=5.0,
                        help="Seconds per point of the report's time series (default 5)")


class Series:
    """Time buckets of the merged LLM payloads (by interval midpoint) and of the user count.
    A bucket's histograms are reduced to percentiles once no payload can still land in it."""

    CLOSE_AFTER = 10.0  # seconds behind the newest payload: every worker has reported by then

    def __init__(self, quantile, merge_hist, bucket=5.0):
        self.quantile, self.merge_hist = quantile, merge_hist
        self.bucket = max(1.0, float(bucket or 5.0))
        self.reset()

    def reset(self):
        self.open = {}  # bucket start -> accumulating dict
        self.closed = {}  # bucket start -> point
        self.per_sec = {"streams": {}, "good": {}, "tokens": {}}
        self.users = {}  # bucket start -> max users seen
        self.latest = 0.0
        self.late = 0
        self.node_end = {}  # node -> end of its newest payload: seconds before every node's are complete

    def _key(self, t):
        return math.floor(t / self.bucket) * self.bucket

    def on_payload(self, data, users, now=None, node="local"):
        if not isinstance(data, dict):
            return
        try:
            mid = (float(data.get("start") or 0) + float(data.get("end") or 0)) / 2.0
            self.node_end[str(node)] = float(data.get("end") or 0)
        except (TypeError, ValueError):
            return
        if mid <= 0:
            return
        for name, key in (("streams", "streams_per_sec"), ("good", "good_per_sec"), ("tokens", "tokens_per_sec")):
            self.merge_hist(self.per_sec[name], data.get(key) or {})
        self.note_users(time.time() if now is None else now, users)
        k = self._key(mid)
        if k in self.closed:
            self.late += 1  # its rates are counted (per second); its latencies are not
            return
        b = self.open.get(k)
        if b is None:
            b = self.open[k] = {"hist": {}, "failed": 0}
        for m, counts in (data.get("hist") or {}).items():
            if m in SERIES_METRICS:
                self.merge_hist(b["hist"].setdefault(m, {}), counts or {})
        b["failed"] += int(data.get("failed") or 0)
        self.latest = max(self.latest, mid)
        for old in [x for x in self.open if x + self.bucket < self.latest - self.CLOSE_AFTER]:
            self.closed[old] = self._latencies(self.open.pop(old))

    def note_users(self, t, users):
        if users is None:
            return
        k = self._key(t)
        self.users[k] = max(self.users.get(k, 0), int(users))

    def _latencies(self, b):
        p = {"failed": b["failed"]}
        for m, counts in b["hist"].items():
            if counts:
                p[m] = {name: round(self.quantile(counts, q) / 1000.0, 3) for name, q in SERIES_PCTS}
        return p

    def export(self):
        lat = dict(self.closed)
        lat.update({k: self._latencies(b) for k, b in self.open.items()})
        keys = set(lat) | set(self.users)
        for name in self.per_sec.values():
            keys |= {self._key(s) for s in name}
        points = []
        # Only whole buckets every recently reporting node has covered get rates.
        ends = list(self.node_end.values())
        recent = [e for e in ends if e >= max(ends) - 3 * self.CLOSE_AFTER] if ends else []
        complete = min(recent) if recent else 0.0
        for k in sorted(keys):
            p = {"t": k, **lat.get(k, {})}
            secs = range(int(k), int(k + self.bucket))
            if k + self.bucket <= complete + 1.0:
                for name, out in (("streams", "streams_per_s"), ("good", "goodput_per_s"), ("tokens", "tokens_per_s")):
                    p[out] = round(sum(self.per_sec[name].get(s, 0) for s in secs) / self.bucket, 3)
            if k in self.users:
                p["users"] = self.users[k]
            points.append(p)
        return {"bucket_s": self.bucket, "points": points, "late_payloads": self.late}


def locust_tables(env):
    """Locust's rows and failures as plain dicts (no keys: the rows carry names only)."""
    runner = getattr(env, "runner", None)
    stats = getattr(runner, "stats", None)
    if stats is None:
        return {"rows": [], "failures": []}

    def row(e):
        def pct(q):
            try:
                return e.get_response_time_percentile(q) if e.num_requests else None
            except Exception:
                return None
        return {"type": e.method or "", "name": e.name, "requests": e.num_requests, "failures": e.num_failures,
                "median_ms": round(e.median_response_time, 2) if e.num_requests else None,
                "avg_ms": round(e.avg_response_time, 2) if e.num_requests else None,
                "min_ms": round(e.min_response_time, 2) if e.num_requests and e.min_response_time is not None else None,
                "max_ms": round(e.max_response_time, 2) if e.num_requests else None,
                "p95_ms": pct(0.95), "p99_ms": pct(0.99),
                "rps": round(e.total_rps, 3), "avg_size": round(e.avg_content_length, 1) if e.num_requests else 0}

    rows = [row(e) for _k, e in sorted(stats.entries.items(), key=lambda kv: (kv[0][1] or "", kv[0][0]))]
    rows.append(row(stats.total))
    fails = [{"type": f.method or "", "name": f.name, "error": str(f.error), "occurrences": f.occurrences}
             for f in sorted(stats.errors.values(), key=lambda f: -f.occurrences)]
    return {"rows": rows, "failures": fails, "start": stats.start_time,
            "last_request": stats.last_request_timestamp}


def _locust_version(locust):
    v = getattr(locust, "__version__", "") or ""
    if not v:
        try:
            from importlib.metadata import version  # noqa: PLC0415
            v = version("locust")
        except Exception:
            v = ""
    return str(v)


def build(env, llm_summary, series, capacity, live=False):
    """The report's JSON object."""
    import locust  # noqa: PLC0415 (only on the master)
    runner = getattr(env, "runner", None)
    out = {"difyload_report": SCHEMA, "generated": time.time(), "locust_version": _locust_version(locust),
           "host": str(getattr(env, "host", "") or ""), "state": getattr(runner, "state", ""),
           "users": getattr(runner, "user_count", None), "llm": llm_summary, "series": series,
           "capacity": capacity}
    if not live:
        out["locust"] = locust_tables(env)
    return out


def _json_for_script(obj):
    # "<" as \u003c: nothing in the data can close or open a tag inside the script element.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


# The chart and table renderer, shared by the report, Locust's --html report and the live UI.
# It draws SVG line charts from the report JSON; no libraries, no network.
RENDER_JS = r"""
(function (root) {
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function nice(v) { var a = Math.abs(v); return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2); }
  function clock(t) { var d = new Date(t * 1000); return d.toISOString().substr(11, 8); }
  // chart(box, {title, x, y, time, series: [{name, pts: [[x, y]], dots}], marks: [{x, label}]})
  function chart(box, o) {
    var W = 560, H = 250, L = 56, R = 12, T = 26, B = 36;
    var wrap = document.createElement("div");
    wrap.className = "dl-chart-box";
    box.appendChild(wrap);
    var svg = el("svg", {"class": "dl-chart", width: W, height: H, viewBox: "0 0 " + W + " " + H,
      "data-title": o.title}, wrap);
    el("text", {x: L, y: 16, "font-size": 13, "font-weight": "bold"}, svg).textContent = o.title;
    var xs = [], ys = [];
    o.series.forEach(function (s) { s.pts.forEach(function (p) {
      if (p[1] !== null && p[1] !== undefined && isFinite(p[1])) { xs.push(p[0]); ys.push(p[1]); } }); });
    if (!xs.length) {
      el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#888"}, svg).textContent = "no data yet";
      return svg;
    }
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var y0 = 0, y1 = Math.max.apply(null, ys);
    if (x1 === x0) { x1 = x0 + 1; }
    if (y1 <= y0) { y1 = y0 + 1; }
    y1 *= 1.08;
    function X(v) { return L + (v - x0) / (x1 - x0) * (W - L - R); }
    function Y(v) { return H - B - (v - y0) / (y1 - y0) * (H - T - B); }
    el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#666"}, svg);
    el("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#666"}, svg);
    for (var i = 0; i <= 4; i++) {
      var yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
      el("line", {x1: L, y1: Y(yv), x2: W - R, y2: Y(yv), stroke: "#ddd"}, svg);
      el("text", {x: L - 4, y: Y(yv) + 4, "text-anchor": "end", "font-size": 10}, svg).textContent = nice(yv);
      el("text", {x: X(xv), y: H - B + 14, "text-anchor": i === 4 ? "end" : i === 0 ? "start" : "middle",
        "font-size": 10}, svg).textContent =
        o.time ? clock(xv) : nice(xv);
    }
    el("text", {x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11}, svg).textContent = o.x;
    el("text", {x: 12, y: (T + H - B) / 2, "font-size": 11, transform: "rotate(-90 12 " + (T + H - B) / 2 + ")",
      "text-anchor": "middle"}, svg).textContent = o.y;
    (o.marks || []).forEach(function (m) {
      el("line", {x1: X(m.x), y1: T, x2: X(m.x), y2: H - B, stroke: "#d62728", "stroke-dasharray": "4 3",
        "class": "dl-knee"}, svg);
      var right = X(m.x) > W - 120;
      el("text", {x: X(m.x) + (right ? -4 : 4), y: T + 10, "font-size": 10, fill: "#d62728",
        "text-anchor": right ? "end" : "start"}, svg).textContent = m.label;
    });
    o.series.forEach(function (s, si) {
      var c = s.color || COLORS[si % COLORS.length];
      var pts = s.pts.filter(function (p) { return p[1] !== null && p[1] !== undefined && isFinite(p[1]); });
      if (!pts.length) { return; }
      el("polyline", {points: pts.map(function (p) { return X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1); }).join(" "),
        fill: "none", stroke: c, "stroke-width": 2, "class": "dl-line", "data-series": s.name}, svg);
      if (s.dots) { pts.forEach(function (p) { el("circle", {cx: X(p[0]), cy: Y(p[1]), r: 3, fill: c}, svg); }); }
      el("rect", {x: L + 8 + si * 120, y: T - 2, width: 10, height: 3, fill: c}, svg);
      el("text", {x: L + 22 + si * 120, y: T + 2, "font-size": 10}, svg).textContent = s.name;
    });
    return svg;
  }
  function pctSeries(points, m, unit) {
    return ["p50", "p95", "p99"].map(function (q) {
      return {name: m.toUpperCase() + " " + q, pts: points.filter(function (p) { return p[m]; })
        .map(function (p) { return [p.t, p[m][q]]; })};
    });
  }
  function rateSeries(points, key, name) {
    return {name: name, pts: points.filter(function (p) { return p[key] !== undefined; })
      .map(function (p) { return [p.t, p[key]]; })};
  }
  function llmCharts(box, d) {
    var pts = (d.series && d.series.points) || [];
    ["ttft", "tpot", "e2e"].forEach(function (m) {
      chart(box, {title: m.toUpperCase() + " over time (ms)", x: "time (UTC)", y: "ms", time: true,
        series: pctSeries(pts, m)});
    });
    if (pts.some(function (p) { return p.ttfe; })) {
      chart(box, {title: "Time to first event over time (ms)", x: "time (UTC)", y: "ms", time: true,
        series: pctSeries(pts, "ttfe")});
    }
    chart(box, {title: "Output tokens/s", x: "time (UTC)", y: "tokens/s", time: true,
      series: [rateSeries(pts, "tokens_per_s", "tokens/s")]});
    chart(box, {title: "Streams/s and goodput/s", x: "time (UTC)", y: "streams/s", time: true,
      series: [rateSeries(pts, "streams_per_s", "streams/s"), rateSeries(pts, "goodput_per_s", "goodput/s")]});
    chart(box, {title: "Users", x: "time (UTC)", y: "users", time: true,
      series: [{name: "users", pts: pts.filter(function (p) { return p.users !== undefined && p.users !== null; })
        .map(function (p) { return [p.t, p.users]; })}]});
  }
  function capacityCharts(box, cap) {
    if (!cap || !cap.steps || !cap.steps.length) { return false; }
    var steps = cap.steps.filter(function (s) { return s.verdict === "ok" || s.verdict === "bad"; })
      .slice().sort(function (a, b) { return a.users - b.users; });
    var res = cap.result || {};
    var classes = [];
    steps.forEach(function (s) { if (classes.indexOf(s.user_class || "") < 0) { classes.push(s.user_class || ""); } });
    if (classes.length > 1) {  // --capacity-per-class: one line per class
      var per = {};
      (res.per_class || []).forEach(function (r) { per[r.user_class] = r; });
      var of = function (c) { return steps.filter(function (s) { return (s.user_class || "") === c; }); };
      chart(box, {title: "Throughput vs users", x: "users", y: "streams/s", series: classes.map(function (c) {
        return {name: c, dots: true, pts: of(c).map(function (s) { return [s.users, s.streams_per_s]; })}; }),
        marks: classes.filter(function (c) { return per[c] && per[c].max_users; }).map(function (c) {
          return {x: per[c].max_users, label: c + " knee"}; })});
      chart(box, {title: "Latency vs throughput (p95)", x: "streams/s", y: "TTFT p95 (ms)", series: classes.map(function (c) {
        return {name: c, dots: true, pts: of(c).map(function (s) { return [s.streams_per_s, ((s.latency_ms || {}).ttft || {}).p95]; })}; }),
        marks: classes.filter(function (c) { return per[c] && per[c].streams_per_s; }).map(function (c) {
          return {x: per[c].streams_per_s, label: c + " knee"}; })});
      return true;
    }
    var marks = res.max_users ? [{x: res.max_users, label: "knee: " + res.max_users + " users"}] : [];
    chart(box, {title: "Throughput vs users", x: "users", y: "per second", series: [
      {name: "streams/s", dots: true, pts: steps.map(function (s) { return [s.users, s.streams_per_s]; })},
      {name: "goodput/s", dots: true, pts: steps.map(function (s) { return [s.users, s.goodput_per_s]; })},
      {name: "requests/s", dots: true, pts: steps.map(function (s) { return [s.users, s.requests_per_s]; })}],
      marks: marks});
    var byT = steps;  // in order of load: the path the search took
    function lat(m) { return byT.map(function (s) { return [s.streams_per_s, ((s.latency_ms || {})[m] || {}).p95]; }); }
    chart(box, {title: "Latency vs throughput (p95)", x: "streams/s", y: "ms", series: [
      {name: "TTFT p95", dots: true, pts: lat("ttft")}, {name: "E2E p95", dots: true, pts: lat("e2e")}]
      .concat(steps.some(function (s) { return (s.latency_ms || {}).ttfe; }) ?
        [{name: "TTFE p95", dots: true, pts: lat("ttfe")}] : []),
      marks: res.streams_per_s ? [{x: res.streams_per_s, label: "knee"}] : []});
    return true;
  }
  function esc(v) { return String(v === null || v === undefined ? "" : v).replace(/[&<>"]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  function table(box, cols, rows) {
    var h = "<table class=\"dl-table\"><thead><tr>" + cols.map(function (c) { return "<th>" + esc(c[1]) + "</th>"; })
      .join("") + "</tr></thead><tbody>";
    rows.forEach(function (r) { h += "<tr>" + cols.map(function (c) { return "<td>" + esc(r[c[0]]) + "</td>"; }).join("") + "</tr>"; });
    var d = document.createElement("div");
    d.innerHTML = h + "</tbody></table>";
    box.appendChild(d);
  }
  function capacityTable(box, cap) {
    if (!cap || !cap.steps) { return; }
    if (cap.result && cap.result.summary) {
      var p = document.createElement("p");
      p.className = "dl-result";
      p.textContent = cap.result.summary;
      box.appendChild(p);
    }
    table(box, [["index", "Step"], ["user_class", "Class"], ["users", "Users"], ["workers", "Workers"], ["streams_per_s", "Streams/s"],
      ["requests_per_s", "Requests/s"], ["ttft", "TTFT p95"], ["tpot", "TPOT p95"], ["e2e", "E2E p95"],
      ["ttfe", "TTFE p95"], ["failure_rate", "Failure rate"], ["goodput_per_s", "Goodput/s"], ["verdict", "Verdict"]],
      cap.steps.map(function (s) {
        var l = s.latency_ms || {};
        return {index: s.index, user_class: s.user_class || "all", users: s.users, workers: s.workers, streams_per_s: s.streams_per_s,
          requests_per_s: s.requests_per_s, ttft: (l.ttft || {}).p95, tpot: (l.tpot || {}).p95, e2e: (l.e2e || {}).p95,
          ttfe: l.ttfe ? l.ttfe.p95 : "n/a", failure_rate: s.failure_rate, goodput_per_s: s.goodput_per_s,
          verdict: s.verdict + (s.breach ? ": " + s.breach : "") + (s.fleet_changed ? " (" + s.fleet_changed + ")" : "")};
      }));
    var results = (cap.result && cap.result.per_class) || (cap.result ? [cap.result] : []);
    results.forEach(function (r) {
      var rows = r.rows || [];
      if (!rows.length) { return; }
      var h = document.createElement("p");
      h.textContent = "Per row (app / flow) at " + r.max_users + " users, the last good step" +
        (r.user_class ? " of " + r.user_class : "") + ":";
      box.appendChild(h);
      table(box, [["type", "Type"], ["name", "Name"], ["requests_per_s", "Requests/s"], ["p50_ms", "p50 (ms)"],
        ["p95_ms", "p95 (ms)"], ["p99_ms", "p99 (ms)"], ["failures_per_s", "Failures/s"]], rows);
    });
    (cap.events || []).forEach(function (e) {
      if (e.what === "search started") { return; }
      var p = document.createElement("p");
      p.className = "dl-note";
      p.textContent = "note: " + e.what;
      box.appendChild(p);
    });
  }
  root.difyloadRender = {chart: chart, llmCharts: llmCharts, capacityCharts: capacityCharts,
    capacityTable: capacityTable, table: table};
})(window);
"""

REPORT_JS = r"""
(function () {
  var d = JSON.parse(document.getElementById("difyload-data").textContent);
  var R = window.difyloadRender;
  var llm = document.getElementById("difyload-llm-charts");
  if (llm) { R.llmCharts(llm, d); }
  var cap = document.getElementById("difyload-capacity-charts");
  if (cap && d.capacity) {
    var t = document.createElement("div");
    cap.parentNode.insertBefore(t, cap);
    R.capacityTable(t, d.capacity);
    R.capacityCharts(cap, d.capacity);
  }
  document.documentElement.setAttribute("data-difyload-drawn", document.querySelectorAll("svg.dl-chart").length);
  // report.html#capacity shows the capacity search alone (for a link or a picture).
  var only = document.getElementById("difyload-capacity");
  if (location.hash === "#capacity" && only) {
    var w = document.createElement("div"); w.className = "dl-wrap"; w.appendChild(only);
    document.body.replaceChildren(w);
  }
})();
"""

CSS = """
.dl-wrap{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#222;background:#fff;padding:8px 16px;
max-width:1200px;margin:0 auto}
.dl-wrap h1{font-size:22px}.dl-wrap h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
.dl-table{border-collapse:collapse;margin:8px 0;font-size:12px}
.dl-table th,.dl-table td{border:1px solid #ccc;padding:3px 6px;text-align:right}
.dl-table th{background:#f0f0f0}.dl-table td:first-child,.dl-table td:nth-child(2){text-align:left}
.dl-charts{display:flex;flex-wrap:wrap;gap:8px}.dl-chart-box{border:1px solid #eee;background:#fff}
.dl-result{font-weight:bold;font-size:15px;color:#0b5394}.dl-note{color:#a61c00;margin:2px 0}
"""


def _fmt(v):
    return "" if v is None else html.escape(str(v))


def _table_html(cols, rows):
    out = ['<table class="dl-table"><thead><tr>']
    out += [f"<th>{html.escape(t)}</th>" for _k, t in cols]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k, _t in cols) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


LLM_COLS = [("metric", "Metric"), ("count", "Count"), ("p50", "p50"), ("p90", "p90"), ("p95", "p95"),
            ("p99", "p99"), ("max", "Max / peak"), ("mean", "Mean"), ("current", "Current"), ("total", "Run average")]


def llm_section(report):
    """The LLM section (tables, chart containers, capacity) as an HTML fragment with its data."""
    llm = report.get("llm") or {}
    parts = [f'<style>{CSS}</style><section id="difyload-llm" class="dl-wrap"><h2>LLM metrics (difyload)</h2>']
    slo = llm.get("slo_ms") or {}
    limits = ", ".join(f"{k.upper()} &le; {v:g} ms" for k, v in slo.items() if v) or "no SLO set"
    parts.append(f"<p>Streams {_fmt(llm.get('streams'))}, failed {_fmt(llm.get('failed'))}, "
                 f"good {_fmt(llm.get('good'))} ({limits}); output tokens {_fmt(llm.get('output_tokens'))}.</p>")
    parts.append(_table_html(LLM_COLS, llm.get("rows") or []))
    parts.append('<div id="difyload-llm-charts" class="dl-charts"></div>')
    if report.get("capacity") and report["capacity"].get("steps") is not None:
        parts.append('<div id="difyload-capacity"><h2>Capacity search</h2>'
                     '<div id="difyload-capacity-charts" class="dl-charts"></div></div>')
    parts.append(f'<script type="application/json" id="difyload-data">{_json_for_script(report)}</script>')
    parts.append(f"<script>{RENDER_JS}</script><script>{REPORT_JS}</script></section>")
    return "".join(parts)


LOCUST_COLS = [("type", "Type"), ("name", "Name"), ("requests", "# Requests"), ("failures", "# Fails"),
               ("median_ms", "Median (ms)"), ("avg_ms", "Average (ms)"), ("min_ms", "Min (ms)"), ("max_ms", "Max (ms)"),
               ("p95_ms", "95%ile (ms)"), ("p99_ms", "99%ile (ms)"), ("rps", "RPS"), ("avg_size", "Avg size")]
FAIL_COLS = [("type", "Type"), ("name", "Name"), ("error", "Error"), ("occurrences", "Occurrences")]


def page(report):
    """The whole self-contained report page."""
    loc = report.get("locust") or {}
    start = loc.get("start")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start)) if start else ""
    cap = report.get("capacity") or {}
    res = (cap.get("result") or {}).get("summary")
    head = [f"<h1>difyload run report</h1><p>Target {_fmt(report.get('host'))} &middot; started {when} &middot; "
            f"Locust {_fmt(report.get('locust_version'))}</p>"]
    if res:
        head.append(f'<p class="dl-result" id="difyload-capacity-result">{html.escape(res)}</p>')
    body = ['<div class="dl-wrap">'] + head
    body.append("<h2>Requests (Locust)</h2>" + _table_html(LOCUST_COLS, loc.get("rows") or []))
    body.append("<h2>Failures</h2>" + (_table_html(FAIL_COLS, loc.get("failures") or []) if loc.get("failures")
                                       else "<p>No failures.</p>"))
    body.append("</div>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>difyload run report</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}{llm_section(report)}</body></html>")


def write(path, report):
    base = path[:-5] if path.endswith(".html") else path[:-5] if path.endswith(".json") else path
    if os.path.dirname(base):
        os.makedirs(os.path.dirname(base), exist_ok=True)
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    with open(base + ".html", "w", encoding="utf-8") as f:
        f.write(page(report))
    return base


# The web UI's live charts: injected into the React UI's page (2.2x+: shown under the LLM and
# Capacity tabs) and into the 2.12.1 /llm page (under the LLM table).
LIVE_JS = r"""
(function () {
  var R = window.difyloadRender, box = document.createElement("div"), last = "";
  box.id = "difyload-live";
  box.className = "dl-wrap";
  var old = document.getElementById("llm");
  if (old && old.parentNode) { old.parentNode.appendChild(box); } else { document.body.appendChild(box); }
  function selected() {
    if (old) { return "llm"; }
    var t = document.querySelector('[role="tab"][aria-selected="true"]');
    var name = t ? (t.textContent || "").trim().toLowerCase() : "";
    return name === "llm" || name === "capacity" ? name : "";
  }
  function draw(d, which) {
    box.innerHTML = "";
    if (which === "llm") {
      var c = document.createElement("div"); c.className = "dl-charts"; box.appendChild(c); R.llmCharts(c, d);
      if (old && d.capacity && d.capacity.enabled) {
        var h = document.createElement("h3"); h.textContent = "Capacity search"; box.appendChild(h);
        R.capacityTable(box, d.capacity);
      }
    }
    if (which === "capacity" || (old && d.capacity && d.capacity.enabled)) {
      var k = document.createElement("div"); k.className = "dl-charts"; box.appendChild(k);
      if (!R.capacityCharts(k, d.capacity)) { k.textContent = "No capacity step finished yet."; }
    }
    var a = document.createElement("p");
    a.innerHTML = '<a href="./difyload/report.html?download=1">Download the run report (HTML)</a> &middot; ' +
      '<a href="./difyload/report.json">JSON</a>';
    box.appendChild(a);
  }
  function place() {
    // React UI: right under the tab's table (re-anchored as React re-renders the tab).
    if (old) { return; }
    var t = document.querySelector("table");
    var a = t && t.parentElement;
    if (a && a.parentNode && box.previousElementSibling !== a) { a.parentNode.insertBefore(box, a.nextSibling); }
    else if (!a && !box.isConnected) { document.body.appendChild(box); }
  }
  function poll() {
    place();
    var which = selected();
    box.style.display = which ? "" : "none";
    if (!which) { last = ""; setTimeout(poll, 1000); return; }
    fetch("./difyload/report.json?live=1", {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (d) { draw(d, which); last = which; })
      .catch(function () {}).then(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
"""


def patch_locust_html(get_section):
    """Appends the LLM section to Locust's own --html report and its web download (both 2.12.1
    and 2.2x+ import get_html_report by name into locust.main and locust.web)."""
    import sys  # noqa: PLC0415

    def wrap(orig):
        if getattr(orig, "_difyload", False):
            return orig

        def get_html_report(environment, *args, **kwargs):
            res = orig(environment, *args, **kwargs)
            try:
                section = get_section(environment)
                i = res.rfind("</body>")
                return res[:i] + section + res[i:] if i >= 0 else res + section
            except Exception:
                _log.exception("difyload: adding the LLM section to Locust's HTML report failed")
                return res

        get_html_report._difyload = True
        return get_html_report

    patched = []
    for name in ("locust.html", "locust.main", "locust.web"):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "get_html_report"):
            mod.get_html_report = wrap(mod.get_html_report)
            patched.append(name)
    return patched


def install(events, aggregate, sync, quantile, merge_hist):
    """Hooks the report into Locust on the master (or a local run): the series feed, the report
    at quit, the LLM section of Locust's --html report and the web UI's routes and live charts."""
    from locust.runners import WorkerRunner  # noqa: PLC0415

    @events.init_command_line_parser.add_listener
    def _report_arguments(parser, **_kw):
        add_arguments(parser)

    @events.init.add_listener
    def _report_init(environment, runner=None, web_ui=None, **_kw):
        env = environment
        runner = runner or env.runner
        if isinstance(runner, WorkerRunner):
            return
        opts = getattr(env, "parsed_options", None)
        series = Series(quantile, merge_hist, getattr(opts, "dify_report_bucket", 5.0) if opts else 5.0)
        agg = aggregate(env)

        def users():
            try:
                return int(env.runner.user_count)
            except Exception:
                return None

        agg.listeners.append(lambda data, node: series.on_payload(data, users(), node=node))
        env.events.test_start.add_listener(lambda **_k: series.reset())

        def report(live=False):
            sync(env)
            search = getattr(env, "_difyload_capacity", None)
            cap = search.snapshot() if search is not None else None
            return build(env, agg.summary(env, with_histograms=not live), series.export(), cap, live=live)

        env._difyload_report = report

        def on_quitting(**_kw):
            path = getattr(opts, "dify_report", "") if opts else ""
            if not path:
                return
            try:
                base = write(path, report())
                _log.info("difyload run report written to %s.html and %s.json", base, base)
            except Exception:
                _log.exception("difyload: writing the run report to %s failed", path)

        env.events.quitting.add_listener(on_quitting)
        patch_locust_html(lambda e: llm_section(report()) if e is env else "")
        if web_ui is not None:
            try:
                _web(env, web_ui, report)
            except Exception:
                _log.exception("difyload: the report's web UI extension failed to load")


def _web(env, web_ui, report):
    import locust  # noqa: PLC0415
    from flask import jsonify, make_response, request  # noqa: PLC0415

    auth = getattr(web_ui, "auth_required_if_enabled", lambda f: f)

    @web_ui.app.route("/difyload/report.json")
    @auth
    def _difyload_report_json():
        return jsonify(report(live=bool(request.args.get("live"))))

    @web_ui.app.route("/difyload/report.html")
    @auth
    def _difyload_report_html():
        resp = make_response(page(report()))
        resp.headers["Content-Type"] = "text/html; charset=utf-8"
        if request.args.get("download"):
            resp.headers["Content-Disposition"] = f"attachment;filename=difyload_report_{int(time.time())}.html"
        return resp

    @web_ui.app.route("/difyload/live.js")
    @auth
    def _difyload_live_js():
        css = json.dumps(CSS)
        js = (RENDER_JS + LIVE_JS + "(function(){var s=document.createElement('style');s.textContent=" + css
              + ";document.head.appendChild(s);})();")
        resp = make_response(js)
        resp.headers["Content-Type"] = "application/javascript; charset=utf-8"
        return resp

    @web_ui.app.after_request
    def _difyload_inject_live(response):
        # The stock page (2.2x+ React UI, tabs LLM and Capacity) and 2.12.1's /llm page.
        try:
            path = request.path.rstrip("/")
            if response.status_code == 200 and response.mimetype == "text/html" and path in ("", "/llm") \
                    and not response.direct_passthrough:
                body = response.get_data(as_text=True)
                i = body.rfind("</body>")
                if i >= 0 and "difyload/live.js" not in body:
                    tag = '<script src="./difyload/live.js"></script>' if path == "" else \
                        '<script src="../difyload/live.js"></script>'
                    response.set_data(body[:i] + tag + body[i:])
        except Exception:
            _log.exception("difyload: injecting the live charts failed")
        return response

    react_ui = os.path.isdir(os.path.join(os.path.dirname(locust.__file__), "webui"))
    if react_ui:
        web_ui.template_args.setdefault("extended_csv_files", []).extend([
            {"href": "./difyload/report.html?download=1", "title": "Download the difyload run report (HTML)"},
            {"href": "./difyload/report.json", "title": "Download the difyload run report (JSON)"}])
