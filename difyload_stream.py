"""difyload's Python stream client: one Dify SSE answer read the way the Go worker reads it.

locustfile.py's users call it; the failure texts, the timeouts and the timings are the Go
worker's (sse/ and tasks/), so a mixed fleet's rows and failures merge on the master:

  fire(env, ...)        one Locust request event (a plain-string failure: the Go worker's error key)
  http_failure(resp)    "HTTP <status> <code>" from a Dify error body
  connect_failure(exc)  "connect: ..." for an exception before the response headers
  Stream(resp, ...)     reads the SSE body: first token, first event, chunk times, usage, terminal
  requests_jsonl(...)   DIFYLOAD_PY_REQUESTS_JSONL: one line per successful stream (bench/)

Loaded by locustfile.py from beside it (Locust puts the locustfile's directory on sys.path).
"""

import json
import time

from locust import events

import requests

FIRST_TOKEN_TIMEOUT = 60.0
IDLE_TIMEOUT = 30.0
STREAM_TIMEOUT = 300.0
MAX_EVENT_SIZE = 8 << 20


class StreamFailure(Exception):
    """A failed request; str(self) is the short, stable Locust failure text."""


def fire(env, method, name, start, end, size=0, failure=None, none=False):
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


def http_failure(resp):
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


def connect_failure(exc):
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


def fmt_seconds(s):
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


class Stream:
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
            return f"timeout: stream longer than {fmt_seconds(self.stream_timeout)}"
        if self.bound == "first":
            if self.relayed and self.first_event is None and self.pings > 0:
                return f"timeout: only a ping in {fmt_seconds(FIRST_TOKEN_TIMEOUT)} (queued, or missing required inputs)"
            return f"timeout: no first token after {fmt_seconds(FIRST_TOKEN_TIMEOUT)}"
        return f"timeout: no event for {fmt_seconds(IDLE_TIMEOUT)}"

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
                raise StreamFailure(f"timeout: stream longer than {fmt_seconds(self.stream_timeout)}")
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


def requests_jsonl(start, stream):
    if not _REQUESTS_JSONL["path"] or stream.first_token is None:
        return
    f = _REQUESTS_JSONL["file"]
    if f is None:
        f = _REQUESTS_JSONL["file"] = open(f"{_REQUESTS_JSONL['path']}.{__import__('os').getpid()}", "a",
                                           buffering=1 << 16, encoding="utf-8")
        events.quitting.add_listener(lambda **_kw: f.flush())
        events.test_stop.add_listener(lambda **_kw: f.flush())
    f.write(json.dumps({"message_id": stream.message_id, "start": start, "first_token": stream.first_token}) + "\n")
