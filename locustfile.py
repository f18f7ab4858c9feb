"""difyload's users for a stock Locust master and for Python workers.

The master loads this file so its web UI knows ChatUser and RetrieveUser and so the custom
arguments below reach every worker in the spawn message (parsed_options). Python workers can
run it beside difyload's Go workers: both report the same rows and the same failure texts,
so the master merges them.

Rows (Type, Name):
  POST /v1/chat-messages          time to the response headers; size = stream bytes
  SSE  TTFB                       time to the first answer token
  SSE  Full Response              time to the terminal event; size = completion tokens
  POST /v1/datasets/[id]/retrieve time to the whole JSON answer

Aggregated (and the header's RPS, the Charts tab) counts the requests the target served: the
SSE rows stay out of it except for their failures (difyload_parity.py; --dify-aggregate-all
for the plain sum of every row).

Works with Locust 2.12.1 (Debian bookworm) and 2.46.x.

This file holds the options and the users; the machinery lives in modules beside it (Locust
puts this file's directory on sys.path), shipped wherever this file is (compose mounts, the
Kubernetes ConfigMap):
  difyload_workload.py  workload files: checks, datasets, user classes, the master-to-worker sync
  difyload_stream.py    the stream client: timeouts, failure names, timings (as the Go worker)
  difyload_llm.py       LLM metrics: the workers' difyload_llm messages, the master's LLM tab
  difyload_parity.py    Aggregated counts served requests, as with Go workers
  difyload_capacity.py  --dify-capacity, the capacity search
  difyload_report.py    --dify-report, the HTML/JSON run reports
"""

import json
import logging as _logging
import os
import random
import time
import uuid

from locust import User, events, tag  # first: Locust monkey-patches the stdlib
from locust.user import wait_time as _locust_wait  # noqa: E402

import requests  # noqa: E402

import difyload_parity  # noqa: E402,F401  Aggregated counts served requests; see its docstring
import difyload_workload as _dw  # noqa: E402  (beside this file; Locust puts its dir on sys.path)

# The Dify-compatible mock's built-in keys (difymock/doc.go); a real Dify needs real keys.
MOCK_SIMPLE_APP_KEY = "app-mocksimplechatflow000000"
MOCK_COMPLEX_APP_KEY = "app-mockcomplexchatflow00000"
MOCK_DATASET_KEY = "dataset-mockdatasetkey0000000000"
MOCK_DATASET_ID = "6f1c2e0a-3b7d-4c5e-9a8f-0d1e2f3a4b5c"

NAME_CHAT = "/v1/chat-messages"
NAME_RETRIEVE = "/v1/datasets/[id]/retrieve"

# The stream client (timeouts, failure names, timings) and the LLM tab live beside this file.
from difyload_stream import (  # noqa: E402
    FIRST_TOKEN_TIMEOUT, IDLE_TIMEOUT, STREAM_TIMEOUT, MAX_EVENT_SIZE,  # noqa: F401
    Stream as _Stream, StreamFailure, fire as _fire, connect_failure as _connect_failure,  # noqa: F401
    http_failure as _http_failure,
    fmt_seconds as _fmt_seconds, requests_jsonl as _requests_jsonl)
import difyload_llm  # noqa: E402

_llm_observe = difyload_llm.observe


def _add(parser, *args, secret=False, **kwargs):
    """add_argument that marks secrets on Locust versions that know is_secret."""
    if secret:
        try:
            return parser.add_argument(*args, is_secret=True, **kwargs)
        except TypeError:
            pass
    return parser.add_argument(*args, **kwargs)


@events.init_command_line_parser.add_listener
def _dify_arguments(parser, **_kw):
    _add(parser, "--dify-simple-app-key", default=MOCK_SIMPLE_APP_KEY, secret=True,
         env_var="DIFY_SIMPLE_APP_KEY", help="App key of the simple chatflow")
    _add(parser, "--dify-complex-app-key", default=MOCK_COMPLEX_APP_KEY, secret=True,
         env_var="DIFY_COMPLEX_APP_KEY", help="App key of the complex chatflow")
    _add(parser, "--dify-dataset-id", default=MOCK_DATASET_ID, env_var="DIFY_DATASET_ID",
         help="Knowledge base (dataset) id for RetrieveUser")
    _add(parser, "--dify-dataset-key", default=MOCK_DATASET_KEY, secret=True,
         env_var="DIFY_DATASET_KEY", help="Knowledge (dataset-) API key for RetrieveUser")
    _add(parser, "--dify-split-flows", action="store_true", default=False,
         help="Report the SSE rows per flow (TTFB SimpleChatFlow, ...)")
    _add(parser, "--dify-workload", default="", env_var="DIFYLOAD_WORKLOAD",
         help="Workload file (.toml or .json): the Dify apps, knowledge bases and user classes to run "
              "(default: the built-in seed workload, ChatUser and RetrieveUser)")


# What key_option / dataset_id_option fall back to when no master option is set.
_MOCK_OPTIONS = {"dify_simple_app_key": MOCK_SIMPLE_APP_KEY, "dify_complex_app_key": MOCK_COMPLEX_APP_KEY,
                 "dify_dataset_key": MOCK_DATASET_KEY, "dify_dataset_id": MOCK_DATASET_ID}


def _load_workload_or_exit():
    """The workload named by --dify-workload (or DIFYLOAD_WORKLOAD), else the built-in one.
    A workload that cannot run stops Locust here, before any class or worker exists."""
    import os
    import sys
    path = _dw.workload_path(sys.argv, os.environ)
    try:
        if not path:
            return _dw.default()
        w = _dw.load(path)
        if "--worker" not in sys.argv:  # workers get the keys from the master
            _dw.check_env(w, os.environ)
        return w
    except _dw.WorkloadError as e:
        sys.stderr.write(f"difyload: the workload cannot run:\n{e}\n")
        sys.exit(1)


class _DifyUser(User):
    """Runs the tasks of a workload user class: each task is one conversation of an app, or
    one knowledge-base query, looked up by name in the current workload (see
    difyload_workload.py; the master sends it to every worker at each test start)."""

    abstract = True

    def on_start(self):
        opts = self.environment.parsed_options
        self.opt = lambda name, default=None: getattr(opts, name, default) if opts else default
        self.session = requests.Session()
        self.user_id = f"difyload-py-{uuid.uuid4().hex[:8]}-{type(self).__name__}-{id(self):x}"
        self.picks = {}  # target name -> next row index

    def on_stop(self):
        self.session.close()

    def _post(self, path, key, body, stream, timeout=None):
        url = self.host.rstrip("/")
        if url.endswith("/v1"):
            url = url[:-3]
        return self.session.post(
            url + path,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            stream=stream,
            # Until the headers, and until the first data of a stream (_Stream then takes
            # over the socket's read timeout), only the first-token and whole-request timeouts
            # apply: a run queued in Dify 1.13 is silent, not idle.
            timeout=(10, min(float(timeout), FIRST_TOKEN_TIMEOUT) if timeout else FIRST_TOKEN_TIMEOUT)
            if stream else (10, min(float(timeout), IDLE_TIMEOUT) if timeout else IDLE_TIMEOUT),
        )

    def _secret(self, t, prefix):
        return _dw.secret(t, prefix, os.environ, lambda name: self.opt(name, _MOCK_OPTIONS.get(name, "")))

    def _pick(self, name, t, w, place):
        """The next (query, row inputs) of a target: sequential from a random start per user,
        or random. (None, None) when the app has no queries (a workflow on inputs alone)."""
        ds = w.dataset(place)
        queries = t.get("queries")
        n = len(ds) if ds is not None else len(queries or [])
        if n == 0:
            return None, None
        if t.get("pick") == "random":
            i = random.randrange(n)
        else:
            i = self.picks.get(name)
            if i is None:
                i = random.randrange(n)
            self.picks[name] = (i + 1) % n
        if ds is not None:
            return ds.row(i)
        return queries[i], None

    def _run_target(self, name):
        w = _CURRENT["workload"]
        kind, t, place = w.targets()[name]
        if kind == "retrieve":
            self._retrieve(name, t, w, place)
        else:
            self._app(name, kind, t, w, place)

    def _app(self, name, mode, t, w, place):
        turns = (t.get("conversation") or {}).get("turns", 1)
        lo, hi = (turns, turns) if not isinstance(turns, list) else turns
        think = (t.get("conversation") or {}).get("think_time", 0)
        tlo, thi = (think, think) if not isinstance(think, list) else think
        n = random.randint(int(lo), int(hi))
        cid = ""
        for turn in range(1, n + 1):
            if turn > 1:
                time.sleep(random.uniform(float(tlo), float(thi)))
            q, row = self._pick(name, t, w, place)
            inputs = dict(t.get("inputs") or {})
            inputs.update(row or {})
            qi = t.get("query_input") or ("query" if mode == "workflow" else "")
            if qi and q is not None:
                inputs[qi] = q
            if mode == "workflow":
                body = {"inputs": inputs, "response_mode": "streaming", "user": self.user_id}
            elif mode == "completion":
                body = {"inputs": inputs, "query": q or "", "response_mode": "streaming", "user": self.user_id}
            else:
                body = {"inputs": inputs, "query": q, "response_mode": "streaming", "user": self.user_id,
                        "conversation_id": cid, "auto_generate_name": False}
            if t.get("files"):
                body["files"] = t["files"]
            stream = self._stream(name, mode, self._secret(t, "key"), body, t.get("timeout"), turn if hi > 1 else 0,
                                  w.post_name(name, bool(self.opt("dify_split_flows", False))))
            if stream is None or not stream.conversation_id:
                return
            cid = stream.conversation_id

    def _stream(self, flow, mode, key, body, timeout, turn, post):
        """One streaming request and its rows (POST row post); the _Stream on success, else None."""
        env = self.environment
        path = _dw.ENDPOINTS[mode]
        split = bool(self.opt("dify_split_flows", False))
        ttfb_name = f"TTFB {flow}" if split else "TTFB"
        full_name = f"Full Response {flow}" if split else "Full Response"
        start = time.time()
        try:
            resp = self._post(path, key, body, stream=True, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            # No headers within the first-token (or a shorter whole-request) timeout: the name
            # the Go worker gives it, on the POST row.
            if timeout and float(timeout) < FIRST_TOKEN_TIMEOUT:
                failure = f"timeout: stream longer than {_fmt_seconds(float(timeout))}"
            else:
                failure = f"timeout: no first token after {_fmt_seconds(FIRST_TOKEN_TIMEOUT)}"
            _fire(env, "POST", post, start, time.time(), failure=failure)
            _llm_observe(env, flow, start, None, "connect", turn)
            return None
        except requests.exceptions.RequestException as e:
            _fire(env, "POST", post, start, time.time(), failure=_connect_failure(e))
            _llm_observe(env, flow, start, None, "connect", turn)
            return None
        headers_at = time.time()
        with resp:
            if resp.status_code != 200:
                _fire(env, "POST", post, start, headers_at, failure=_http_failure(resp))
                _llm_observe(env, flow, start, None, "http", turn)
                return None
            ctype = resp.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                _fire(env, "POST", post, start, headers_at,
                      failure=f"invalid response: content-type {ctype.split(';')[0]}")
                _llm_observe(env, flow, start, None, "content-type", turn)
                return None
            stream = _Stream(resp, start, mode, timeout)
            failure = stream.run()
        end = stream.end or time.time()
        _fire(env, "POST", post, start, headers_at, size=stream.bytes)
        if stream.first_token is not None:
            _fire(env, "SSE", ttfb_name, start, stream.first_token)
        elif failure is None:
            _fire(env, "SSE", ttfb_name, start, start, none=True)
        if failure is not None:
            _fire(env, "SSE", full_name, start, time.time(), failure=failure)
            _llm_observe(env, flow, start, stream, failure, turn)
            return None
        tokens = stream.completion_tokens if stream.completion_tokens is not None else stream.chunks
        _fire(env, "SSE", full_name, start, end, size=tokens)
        _llm_observe(env, flow, start, stream, None, turn)
        _requests_jsonl(start, stream)
        return stream

    def _retrieve(self, name, t, w, place):
        env = self.environment
        row = w.post_name(name, bool(self.opt("dify_split_flows", False)))
        dataset = self._secret(t, "dataset_id")
        key = self._secret(t, "key")
        q, _row = self._pick(name, t, w, place)
        body = {"query": q}
        if t.get("retrieval_model"):
            body["retrieval_model"] = t["retrieval_model"]
        start = time.time()
        try:
            resp = self._post(f"/v1/datasets/{dataset}/retrieve", key, body, stream=False, timeout=t.get("timeout"))
        except requests.exceptions.RequestException as e:
            _fire(env, "POST", row, start, time.time(), failure=_connect_failure(e))
            return
        end = time.time()
        if resp.status_code != 200:
            code = ""
            try:
                code = resp.json().get("code") or ""
            except ValueError:
                pass
            _fire(env, "POST", row, start, end, size=len(resp.content),
                  failure=f"HTTP {resp.status_code} {code}".strip())
            return
        try:
            json.loads(resp.content)
        except ValueError:
            _fire(env, "POST", row, start, end, size=len(resp.content),
                  failure="invalid response: body is not JSON")
            return
        _fire(env, "POST", row, start, end, size=len(resp.content))


# The Locust user classes: from --dify-workload FILE, else the built-in workload (ChatUser and
# RetrieveUser running the seed's SimpleChatFlow, ComplexChatFlow and FileRetrieval).
_CURRENT = {"workload": _load_workload_or_exit()}
globals().update(_dw.user_classes(_CURRENT["workload"], _DifyUser, tag, _locust_wait, __name__))
# The master sends the workload to every worker at each start; workers run what it sent.
_dw.install(events, _CURRENT, _MOCK_OPTIONS)


# The LLM tab's wire format: pure stdlib, mirrored by metrics/llm.go, whose tests run this
# block against it; the rest of the LLM metrics is difyload_llm.py.
# --- llm-wire begin: pure stdlib, mirrored by metrics/llm.go (tested against each other) ---
import math  # noqa: E402

LLM_MESSAGE = "difyload_llm"
LLM_WIRE_VERSION = 1
LLM_SIGNIFICANT_BITS = 11
# Histogram names, in display order; values are integer microseconds except "tokens".
LLM_METRICS = ("ttft", "ttfe", "tpot", "itl", "e2e", "server_latency", "server_ttft", "tokens", "ttft_turn1", "ttft_later")


def llm_bucket(v):
    """Bucket key of v (int >= 0; negative counts as 0): v below 2048, else v with all but its
    11 most significant bits cleared (relative bucket width < 0.1 %)."""
    v = int(v)
    if v < 0:
        return 0
    if v < (1 << LLM_SIGNIFICANT_BITS):
        return v
    e = v.bit_length() - LLM_SIGNIFICANT_BITS
    return (v >> e) << e


def llm_bucket_value(k):
    """The value reported for bucket key k: the bucket's midpoint (k itself below 2048)."""
    k = int(k)
    if k < (1 << LLM_SIGNIFICANT_BITS):
        return k
    e = k.bit_length() - LLM_SIGNIFICANT_BITS
    return k + ((1 << e) >> 1)


def llm_quantile(counts, q):
    """Nearest-rank q-quantile (q in 0..1) of a {bucket key: count} dict: the midpoint of the
    bucket holding rank max(1, ceil(q * N)); 0 when empty."""
    items = sorted((int(k), int(c)) for k, c in counts.items() if int(c) > 0)
    n = sum(c for _, c in items)
    if n == 0:
        return 0
    rank = max(1, math.ceil(q * float(n)))
    cum = 0
    for k, c in items:
        cum += c
        if cum >= rank:
            return llm_bucket_value(k)
    return llm_bucket_value(items[-1][0])


def llm_merge_hist(into, counts):
    """Adds a {bucket key: count} dict into another (keys may arrive as int or str)."""
    for k, c in counts.items():
        k = int(k)
        into[k] = into.get(k, 0) + int(c)
# --- llm-wire end ---

difyload_llm.install(events, {name: globals()[name] for name in (
    "LLM_MESSAGE", "LLM_WIRE_VERSION", "LLM_METRICS", "llm_bucket", "llm_bucket_value", "llm_quantile", "llm_merge_hist")})


# Capacity search (--dify-capacity) and run reports (--dify-report, the LLM section of --html):
# difyload_capacity.py and difyload_report.py beside this file (Locust puts its directory on
# sys.path). Without them this file still runs, without those features.
try:
    import difyload_capacity  # noqa: E402
    import difyload_report  # noqa: E402
except ImportError as _e:
    _logging.getLogger("difyload").warning("capacity search and run reports unavailable: %s", _e)
else:
    difyload_capacity.install(events, difyload_llm.aggregate, llm_quantile, llm_merge_hist,
                              difyload_llm.local_sync)
    difyload_report.install(events, difyload_llm.aggregate, difyload_llm.local_sync, llm_quantile,
                            llm_merge_hist)
