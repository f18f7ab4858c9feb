"""Benchmark users for bench/run.sh: the project's locustfile.py, closed loop, simple chatflow.

  BenchChatUser      the project's ChatUser (requests, like HttpUser) with no wait and only the
                     simple chatflow, so every generator streams the same answer.
  FastBenchChatUser  the same flow on Locust's FastHttpUser (geventhttpclient), parsed by the
                     project's _Stream; same rows (POST /v1/chat-messages, SSE TTFB, SSE Full
                     Response), same per-request JSONL (DIFYLOAD_PY_REQUESTS_JSONL).

FastHttpUser note: FastResponse.iter_content(n) (and FastHttpSession.iter_lines, built on it)
blocks until n bytes have arrived, which would delay every SSE event; this file reads the
underlying geventhttpclient response line by line (readline), which returns each line as soon
as it is in.
"""

import json
import time

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

import locustfile as project  # the project's users, options and LLM metrics listeners


# The seed's simple chatflow question (the built-in workload's SimpleChatFlow app).
SIMPLE_QUERY = "请简单介绍一下你自己"


class BenchChatUser(project.ChatUser):
    """The built-in workload's ChatUser, closed loop, only its simple_chat_flow task."""

    wait_time = constant(0)


# Set after the class exists: Locust's metaclass would add ChatUser's tasks to a `tasks` list
# given in the class body.
BenchChatUser.tasks = [t for t in project.ChatUser.tasks if t.__name__ == "simple_chat_flow"]
if len(BenchChatUser.tasks) != 1:
    raise RuntimeError("locustfile_bench: the built-in ChatUser has no simple_chat_flow task")


class _LineBody:
    """What project._Stream needs from a response: iter_content yielding bytes as they come."""

    def __init__(self, resp):
        self._r = resp._response

    def iter_content(self, chunk_size=None):
        while True:
            line = self._r.readline(b"\n")
            if not line:
                return
            yield line


class FastBenchChatUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = project.IDLE_TIMEOUT
    connection_timeout = 10.0

    def on_start(self):
        opts = self.environment.parsed_options
        self.key = getattr(opts, "dify_simple_app_key", project.MOCK_SIMPLE_APP_KEY) if opts else project.MOCK_SIMPLE_APP_KEY
        self.user_id = f"difyload-pyfast-{id(self):x}"
        self.n = 0

    @task
    def simple_chat_flow(self):
        env = self.environment
        flow = "SimpleChatFlow"
        query = SIMPLE_QUERY
        self.n += 1
        body = {"inputs": {}, "query": query, "response_mode": "streaming", "user": self.user_id,
                "conversation_id": "", "auto_generate_name": False}
        start = time.time()
        # FastHttpSession fires the POST row itself (time to headers, like stream=True requests).
        resp = self.client.request("POST", "/v1/chat-messages", name=project.NAME_CHAT, stream=True,
                                   data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                   headers={"Authorization": f"Bearer {self.key}",
                                            "Content-Type": "application/json"})
        if resp.status_code != 200 or getattr(resp, "_response", None) is None:
            project._llm_observe(env, flow, start, None, "http")
            return
        stream = project._Stream(_LineBody(resp), start)
        try:
            failure = stream.run()
        except Exception as e:  # geventhttpclient errors are not requests errors
            failure = f"read error: {type(e).__name__}"
        end = stream.end or time.time()
        if stream.first_token is not None:
            project._fire(env, "SSE", "TTFB", start, stream.first_token)
        elif failure is None:
            project._fire(env, "SSE", "TTFB", start, start, none=True)
        if failure is not None:
            project._fire(env, "SSE", "Full Response", start, time.time(), failure=failure)
            project._llm_observe(env, flow, start, stream, failure)
            return
        tokens = stream.completion_tokens if stream.completion_tokens is not None else stream.chunks
        project._fire(env, "SSE", "Full Response", start, end, size=tokens)
        project._llm_observe(env, flow, start, stream, None)
        project._requests_jsonl(start, stream)
