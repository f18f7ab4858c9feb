// Package metrics is difyload's Locust-compatible statistics model.
//
// It has five parts, the Locust stats model first and the LLM metrics last:
//
//   - [Stats] collects [Sample]s from many goroutines and, on [Stats.Drain],
//     returns a [Report]: the delta for one reporting interval in exactly the
//     shape a Python Locust worker sends in its "stats" message (entries,
//     the Aggregated total and the error map). The worker package encodes a
//     Report onto the wire; this package knows nothing about msgpack or ZeroMQ.
//   - [BucketMS], [ErrorKey] and [PyRepr] reproduce the small pieces of Python
//     behaviour that must match bit for bit so that a stock Locust master (2.12.1
//     or 2.46.x) merges our rows with the same keys it would use for a Python
//     worker: response-time bucketing with round-half-to-even, and the sha256
//     error key built from repr() of the failure text.
//   - [Cumulative] merges Reports the way the master's StatsEntry.extend does
//     and renders Locust-style console tables ([Cumulative.WriteTable]) and
//     CSV files ([Cumulative.WriteCSV], [Cumulative.WriteFailuresCSV]) for the
//     stand-alone "difyload run" mode and for tests.
//   - [ServedTotal] is the Aggregated entry difyload reports: the request rows
//     summed, the stream rows ([MethodStream], "SSE") left out except for their
//     failures, so Aggregated counts the requests the target served.
//   - The LLM half: [LLM] aggregates one [StreamSample] per stream (TTFT,
//     TTFE, TPOT, inter-chunk gaps, E2E, Dify's own latency figures, output
//     tokens, goodput against an [SLO]) into sparse log-linear histograms
//     ([LLMHistogram], [LLMBucket]) that a master-side locustfile merges by
//     summing dicts; [LLM.Drain] is the "difyload_llm" custom message payload,
//     [LLM.Totals] the run's totals. [NewLLMCollector] exports them to
//     Prometheus and [JSONLWriter] writes one JSON line per stream.
//
// Units: Sample carries time.Duration; the conversion to float milliseconds
// (fractional ms kept) happens only inside Stats, because Locust's wire format
// wants milliseconds. Timestamps on the wire are float unix seconds.
//
// Python version notes (read from locust/stats.py of both versions):
//
//   - Bucketing: 2.12.1 (_log_response_time) computes round(t, -n) on the float
//     and keeps the float key (150.0); 2.46 (bucket_response_time) wraps it in
//     int(). Python dicts treat 150 and 150.0 as one key, so sending the integer
//     merges identically on both masters. BucketMS returns that integer.
//   - Error key and text: 2.46's parse_error returns a str error unchanged
//     (after masking "object at 0x…>" addresses), so the key is
//     sha256(f"{method}.{name}.{error!r}") and the wire "error" is the plain
//     text. 2.12.1's parse_error applied repr() first, so a 2.12.1 Python worker
//     would key repr(repr(error)) and send repr(error). This package follows
//     2.46 (the contract); keys only matter when Go and Python workers report
//     the same failure to one master.
//   - Percentiles and the median follow 2.46's calculate_response_time_percentile
//     (2.12.1 used a different median_from_dict for the median column).
package metrics
