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
"""

import json
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

FIRST_TOKEN_TIMEOUT = 60.0
IDLE_TIMEOUT = 30.0
STREAM_TIMEOUT = 300.0
MAX_EVENT_SIZE = 8 << 20


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


class StreamFailure(Exception):
    """A failed request; str(self) is the short, stable Locust failure text."""


def _fire(env, method, name, start, end, size=0, failure=None, none=False):
    env.events.request.fire(
        request_type=method,
        name=name,
        response_time=None if none else (end - start) * 1000.0,
        response_length=size,
        exception=failure,  # a plain str: the same text and error key as the Go worker
        context={},
        response=None,
        start_time=start,
        url=None,
    )


def _http_failure(resp):
    code = ""
    try:
        body = resp.raw.read(65536, decode_content=True) if resp.raw else b""
        err = json.loads(body or b"{}")
        code = err.get("code") or ""
        if code == "invalid_param" and str(err.get("message", "")).startswith("Too many requests."):
            code = "too_many_requests"  # Dify's app concurrency limit comes as a 400 (sse/doc.go)
    except Exception:  # a non-JSON error body has no code
        code = ""
    return f"HTTP {resp.status_code} {code}".strip()


def _connect_failure(exc):
    text = repr(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return "connect: timeout"
    if "Name or service not known" in text or "NameResolution" in text or "gaierror" in text:
        return "connect: dns lookup failed"
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connect: connection refused"
    if "SSL" in text:
        return "connect: tls handshake failed"
    return "connect: error"


def _fmt_seconds(s):
    # Whole seconds, as the Go worker writes timeouts in failure names: 60 -> "60s".
    return f"{int(s)}s"


_PING = b"event: ping\n\n"


def _only_pings(chunk):
    """Whether a read holds nothing but ping frames (the relay's keep-alive, not data)."""
    return bool(chunk) and len(chunk) % len(_PING) == 0 and chunk == _PING * (len(chunk) // len(_PING))


def _stream_socket(resp):
    """The socket under a streamed requests response, so its read timeout can follow the
    stream's deadlines; None if this urllib3/http.client does not expose it (then the read
    timeout _DifyUser._post set stays: the first-token timeout)."""
    try:
        sock = resp.raw._fp.fp.raw._sock
        sock.gettimeout()
        return sock
    except (AttributeError, OSError):
        return None


class _Stream:
    """Reads a Dify SSE answer and keeps the timings the rows need."""

    def __init__(self, resp, start, mode="chatflow", stream_timeout=None):
        self.resp = resp
        self.start = start
        self.stream_timeout = float(stream_timeout) if stream_timeout else STREAM_TIMEOUT
        self.workflow_app = mode == "workflow"  # answer in text_chunk, ends at workflow_finished
        self.conversation_id = ""  # message_end's, reused by the next turn of a conversation
        self.saw_agent_message = False
        self.first_token = None
        self.first_event = None  # first data event (anything but a ping): TTFE
        self.end = None
        self.completion_tokens = None
        self.chunks = 0
        self.bytes = 0
        self.saw_workflow = False
        self.saw_workflow_finished = False
        self.saw_message_end = False
        self.chunk_times = []  # arrival of every non-empty answer chunk (LLM metrics)
        self.usage = {}  # message_end metadata.usage
        self.message_id = None  # of the first answer chunk (per-request JSONL, benchmarks)
        self.wf_end = None
        self.pings = 0
        # Dify 1.13 relays chatflow and workflow runs: one ping, then silence while the run
        # waits for a job worker. As in the Go client (sse), before the first read that is
        # more than pings only the first-token and stream timeouts apply; then the idle one.
        self.relayed = mode in ("chatflow", "workflow", "")
        self.idle_armed = False
        self.sock = _stream_socket(resp)
        self.bound = None  # the timeout the socket's read timeout stands for

    def _arm(self, now):
        """Sets the socket's read timeout to the nearest deadline and remembers which it is."""
        limits = [(self.start + self.stream_timeout - now, "stream")]
        if self.first_token is None:
            limits.append((self.start + FIRST_TOKEN_TIMEOUT - now, "first"))
        if self.idle_armed:
            limits.append((IDLE_TIMEOUT, "idle"))
        left, self.bound = min(limits)
        if self.sock is not None:
            try:
                self.sock.settimeout(max(left, 0.001))
            except OSError:
                self.sock = None

    def _timed_out(self):
        """The failure name of a read that timed out (the deadline _arm set)."""
        if self.bound == "stream":
            return f"timeout: stream longer than {_fmt_seconds(self.stream_timeout)}"
        if self.bound == "first":
            if self.relayed and self.first_event is None and self.pings > 0:
                return f"timeout: only a ping in {_fmt_seconds(FIRST_TOKEN_TIMEOUT)} (queued, or missing required inputs)"
            return f"timeout: no first token after {_fmt_seconds(FIRST_TOKEN_TIMEOUT)}"
        return f"timeout: no event for {_fmt_seconds(IDLE_TIMEOUT)}"

    def _events(self):
        buf = b""
        data = []
        ping = False  # the event being read is a ping (event: ping, no data)
        self._arm(time.time())
        for chunk in self.resp.iter_content(chunk_size=None):
            now = time.time()
            self.bytes += len(chunk)
            if self.first_token is None and now - self.start > FIRST_TOKEN_TIMEOUT:
                self.bound = "first"
                raise StreamFailure(self._timed_out())
            if now - self.start > self.stream_timeout:
                raise StreamFailure(f"timeout: stream longer than {_fmt_seconds(self.stream_timeout)}")
            if not self.idle_armed and not _only_pings(chunk):
                self.idle_armed = True
            buf += chunk
            while True:
                i = min((p for p in (buf.find(b"\n"), buf.find(b"\r")) if p >= 0), default=-1)
                if i < 0:
                    if len(buf) > MAX_EVENT_SIZE:
                        raise StreamFailure("event too large")
                    break
                line, rest = buf[:i], buf[i + 1:]
                if buf[i:i + 2] == b"\r\n":
                    rest = buf[i + 2:]
                elif buf[i:i + 1] == b"\r" and i + 1 == len(buf):
                    break  # a CR at the end of the buffer may be half of a CRLF
                buf = rest
                if not line:
                    if data:
                        yield b"\n".join(data), now
                        data = []
                    elif ping:
                        self.pings += 1
                    ping = False
                    continue
                if line.startswith(b":"):
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"event":
                    ping = value == b"ping"
                if field == b"data":
                    data.append(value)
                    if sum(len(d) for d in data) > MAX_EVENT_SIZE:
                        raise StreamFailure("event too large")
            self._arm(time.time())
        if buf.startswith(b"data:"):
            value = buf[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        if data:
            yield b"\n".join(data), time.time()

    def run(self):
        """Returns None on success, else the failure text."""
        try:
            for payload, at in self._events():
                if self.first_event is None:
                    self.first_event = at
                try:
                    ev = json.loads(payload)
                    kind = ev["event"]
                except (ValueError, KeyError, TypeError):
                    return "malformed event JSON"
                if kind in ("message", "agent_message") and not self.workflow_app:
                    if kind == "agent_message":
                        self.saw_agent_message = True
                    elif self.saw_agent_message:
                        continue  # a New Agent app repeats the whole answer in one message
                    if ev.get("answer"):
                        self._chunk(at, ev.get("message_id"))
                elif kind == "text_chunk" and self.workflow_app:
                    if (ev.get("data") or {}).get("text"):
                        self._chunk(at, ev.get("workflow_run_id"))
                elif kind == "workflow_started":
                    self.saw_workflow = True
                elif kind == "error":
                    return f"stream error: {ev.get('code') or 'unknown'}"
                elif kind == "workflow_paused":
                    return "workflow paused"
                elif kind == "workflow_finished":
                    status = (ev.get("data") or {}).get("status")
                    if status == "failed":
                        return "workflow failed"
                    if status == "stopped":
                        return "workflow stopped"
                    self.saw_workflow_finished = True
                    if self.workflow_app or self.saw_message_end:
                        self.end = at
                        return None
                    self.wf_end = at
                elif kind == "message_end" and not self.workflow_app:
                    self.saw_message_end = True
                    self.end = at
                    self.conversation_id = ev.get("conversation_id") or ""
                    usage = ((ev.get("metadata") or {}).get("usage")) or {}
                    self.completion_tokens = usage.get("completion_tokens")
                    self.usage = usage if isinstance(usage, dict) else {}
                    if not self.saw_workflow or self.saw_workflow_finished:
                        return None
        except StreamFailure as f:
            return str(f)
        except requests.exceptions.ConnectionError as e:
            if "timed out" in repr(e):  # requests wraps urllib3's ReadTimeoutError
                return self._timed_out()
            if "reset" in repr(e).lower() or "ProtocolError" in repr(e):
                return "connection reset during stream"
            return "read error: connection"
        except requests.exceptions.RequestException as e:
            if "timed out" in repr(e):
                return self._timed_out()
            return "connection reset during stream"
        if self.workflow_app:
            return "stream ended before workflow_finished"
        if self.saw_message_end:
            return None  # EOF after message_end, workflow_finished never came
        if self.saw_workflow_finished:
            self.end = self.wf_end  # EOF after one terminal event (Dify 1.13.0's relay cuts message_end)
            return None
        return "stream ended before message_end"

    def _chunk(self, at, message_id):
        self.chunks += 1
        self.chunk_times.append(at)
        if self.first_token is None:
            self.first_token = at
            self.message_id = message_id


# Optional per-request log for benchmarks (bench/): with DIFYLOAD_PY_REQUESTS_JSONL=PATH every
# successful chat stream appends {"message_id","start","first_token"} (unix seconds) to
# PATH.<pid>; flushed when the buffer fills and when Locust quits.
_REQUESTS_JSONL = {"path": __import__("os").environ.get("DIFYLOAD_PY_REQUESTS_JSONL", ""), "file": None}


def _requests_jsonl(start, stream):
    if not _REQUESTS_JSONL["path"] or stream.first_token is None:
        return
    f = _REQUESTS_JSONL["file"]
    if f is None:
        f = _REQUESTS_JSONL["file"] = open(f"{_REQUESTS_JSONL['path']}.{__import__('os').getpid()}", "a",
                                           buffering=1 << 16, encoding="utf-8")
        events.quitting.add_listener(lambda **_kw: f.flush())
        events.test_stop.add_listener(lambda **_kw: f.flush())
    f.write(json.dumps({"message_id": stream.message_id, "start": start, "first_token": stream.first_token}) + "\n")


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


def _workload_slo(env, w):
    """The workload's [slo] fills the --slo-* options left at 0 (they reach every worker)."""
    opts = env.parsed_options
    for key, opt in (("ttft_ms", "slo_ttft"), ("tpot_ms", "slo_tpot"), ("e2e_ms", "slo_e2e")):
        v = ((w.tree.get("slo") or {}).get(key)) or 0
        if opts is not None and v and not getattr(opts, opt, 0):
            setattr(opts, opt, float(v))


@events.init.add_listener
def _workload_init(environment, runner=None, **_kw):
    """Master: at every test start, re-read --dify-workload and send it (keys resolved,
    datasets inlined) to every worker before the first spawn, so a file edited between two
    starts is what runs next. Workers: run what the master sent."""
    import logging
    import os
    from locust.runners import MasterRunner, WorkerRunner
    log = logging.getLogger("difyload.workload")
    env = environment
    runner = runner or env.runner
    if isinstance(runner, WorkerRunner):
        def on_workload(environment=None, msg=None, **_kw):
            try:
                _CURRENT["workload"] = _dw.from_message(msg.data)
                log.info("workload from the master: %s", _CURRENT["workload"].source)
            except _dw.WorkloadError as e:
                log.error("refusing the master's workload, running the previous one's classes with no targets:\n%s", e)
                _CURRENT["workload"] = _dw.Workload("refused", {"apps": [], "knowledge_bases": [], "users": []}, {})

        runner.register_message(_dw.MESSAGE_TYPE, on_workload)
        return

    def option(name):
        return getattr(env.parsed_options, name, None) or _MOCK_OPTIONS.get(name, "")

    def on_test_start(**_kw):
        path = getattr(env.parsed_options, "dify_workload", "") if env.parsed_options else ""
        if not path:
            _CURRENT["workload"] = _dw.default()
            msg = {"default": True, "source": _dw.DEFAULT_SOURCE}
        else:
            try:
                w = _dw.load(path)
                _dw.check_env(w, os.environ)
                _CURRENT["workload"] = w
                _workload_slo(env, w)
                msg = _dw.message(w, os.environ, option)
            except _dw.WorkloadError as e:
                log.error("the workload cannot run; workers run nothing:\n%s", e)
                msg = {"source": path, "error": str(e)}
        if isinstance(runner, MasterRunner):
            runner.send_message(_dw.MESSAGE_TYPE, msg)

    if env.parsed_options is not None:
        _workload_slo(env, _CURRENT["workload"])
    env.events.test_start.add_listener(on_test_start)


# The Locust user classes: from --dify-workload FILE, else the built-in workload (ChatUser and
# RetrieveUser running the seed's SimpleChatFlow, ComplexChatFlow and FileRetrieval).
_CURRENT = {"workload": _load_workload_or_exit()}
globals().update(_dw.user_classes(_CURRENT["workload"], _DifyUser, tag, _locust_wait, __name__))


# =============================================================================================
# LLM streaming metrics (difyload). Everything below, plus the _llm_observe calls in
# ChatUser._chat and the chunk_times/usage fields of _Stream, belongs to this feature.
#
# Per stream (definitions as in vLLM bench / AIPerf, see README "LLM metrics"):
#   TTFT  = first non-empty answer chunk - request start          (the TTFB row)
#   N     = usage.completion_tokens if present and > 0, else the answer chunk count (flagged)
#   TPOT  = (last answer chunk - first answer chunk) / (N - 1), only when N > 1
#   gaps  = every gap between consecutive answer chunks ("inter-chunk latency", ITL/ICL)
#   E2E   = terminal event - request start                        (the Full Response row)
#   Dify's usage.latency and usage.time_to_first_token where present.
# Failed streams count as streams and failures and against goodput; only successful streams
# feed the histograms. Goodput = successful streams meeting every set --slo-* limit.
#
# Every worker (difyload's Go worker and Python workers running this file) sends one
# "difyload_llm" custom message per stats report and at test stop with the interval's
# histograms; the master merges them (sum of dicts), serves GET /llm/stats (JSON) and
# /llm/stats/csv, shows an "LLM" tab (2.2x+ React UI: a tab of the stock page; 2.12.1: the
# page /llm, the stock page with an extra tab) and writes --llm-report PATH.json/PATH.csv.
# =============================================================================================

import csv  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402

import locust  # noqa: E402
from locust.runners import MasterRunner, WorkerRunner  # noqa: E402

_llm_log = logging.getLogger("difyload.llm")

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


@events.init_command_line_parser.add_listener
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


@events.init.add_listener
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


# Capacity search (--dify-capacity) and run reports (--dify-report, the LLM section of --html):
# difyload_capacity.py and difyload_report.py beside this file (Locust puts its directory on
# sys.path). Without them this file still runs, without those features.
try:
    import difyload_capacity  # noqa: E402
    import difyload_report  # noqa: E402
except ImportError as _e:
    _llm_log.warning("capacity search and run reports unavailable: %s", _e)
else:
    difyload_capacity.install(events, lambda env: _llm_state(env)["aggregate"], llm_quantile, llm_merge_hist,
                              _llm_local_sync)
    difyload_report.install(events, lambda env: _llm_state(env)["aggregate"], _llm_local_sync, llm_quantile,
                            llm_merge_hist)
