"""Locust-worker parity for difyload: loaded by locustfile.py (``import difyload_parity``).

Aggregated counts requests, not rows
    A chat stream is measured by three rows: ``POST /v1/chat-messages`` (the request),
    ``SSE TTFB`` and ``SSE Full Response`` (the same request's stream). Locust adds every
    row to Aggregated, so the header's RPS, the Charts tab and the Aggregated line counted
    each stream three times. Here the rows of Type ``SSE`` are recorded in their own rows
    only; their failures still count in Aggregated (a stream that broke after its headers
    is one failed request). Aggregated then equals what the Dify API served. difyload's Go
    workers apply the same rule to the ``stats_total`` they send (metrics.ServedTotal), so
    a mixed fleet adds up. ``--dify-aggregate-all`` (env DIFY_AGGREGATE_ALL) restores the
    plain sum of every row, on Python and Go workers alike.

Custom messages only where they are understood
    The hidden option ``--difyload-messages`` lists the custom message types this
    locustfile registers on the master. It reaches every worker in the spawn message;
    difyload's Go workers send ``difyload_llm`` only when it is listed, so a master running
    some other locustfile never logs "Unknown message type" for it.

Works with Locust 2.12.1 and 2.46.x.
"""

import argparse

from locust import events

STREAM_METHOD = "SSE"  # the Type of the rows that measure a request's stream
REGISTERED_MESSAGES = "difyload_llm"  # what locustfile.py registers with register_message


def _hidden(parser, *args, **kwargs):
    """add_argument kept out of --help and, where Locust supports it, out of the web UI."""
    kwargs["help"] = argparse.SUPPRESS
    try:
        return parser.add_argument(*args, include_in_web_ui=False, **kwargs)
    except TypeError:
        return parser.add_argument(*args, **kwargs)


@events.init_command_line_parser.add_listener
def _parity_arguments(parser, **_kw):
    parser.add_argument(
        "--dify-aggregate-all", action="store_true", default=False, env_var="DIFY_AGGREGATE_ALL",
        help="Aggregated (header RPS, Charts) sums every row, the SSE rows included, instead of "
             "counting only the requests the target served")
    _hidden(parser, "--difyload-messages", default=REGISTERED_MESSAGES)


def aggregate_all(environment):
    """True when Aggregated should sum every row (the master's option reaches workers)."""
    return bool(getattr(environment.parsed_options, "dify_aggregate_all", False))


def count_served_requests(environment):
    """Make environment.stats keep SSE rows out of the Aggregated request count.

    Locust's request listener calls stats.log_request(method, name, response_time,
    content_length); for a stream row only the row itself is updated. log_error is left
    alone, so failures (one per failed stream) still reach Aggregated.
    """
    stats = environment.stats
    if getattr(stats, "_difyload_served", False):
        return
    plain = stats.log_request

    def log_request(method, name, response_time, content_length):
        if method == STREAM_METHOD and not aggregate_all(environment):
            stats.get(name, method).log(response_time, content_length)
            return
        plain(method, name, response_time, content_length)

    stats.log_request = log_request
    stats._difyload_served = True


@events.init.add_listener
def _parity_init(environment, **_kw):
    count_served_requests(environment)
