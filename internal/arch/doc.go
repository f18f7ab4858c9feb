// Package arch holds the test that keeps the module's import arrows pointing one
// way. It reads every package's dependencies with `go list -deps` (with and
// without the goczmq build tag) and fails on an arrow the map below forbids.
//
// The package map, leaves first:
//
//	sse/             HTTP POST to Dify, SSE framing, event decoding, per-stream
//	                 timings, the typed stream error. Imports nothing of ours
//	                 but its own sse/internal/jsonscan (the allocation-free JSON
//	                 scanners: validation, top-level fields, raw values) and
//	                 sse/internal/h1 (the lean HTTP/1.1 transport). Both import
//	                 nothing of ours; Go's internal rule keeps other importers out.
//	metrics/         Locust's stats model (entries, buckets, errors, totals) and
//	                 the LLM half (TTFT/TPOT/inter-chunk/E2E histograms, goodput,
//	                 JSONL, Prometheus). Imports nothing of ours.
//	runner/          the users' life cycle: UserClass/User/Env, the Scheduler,
//	                 ramp, weight split, stable tracebacks. Imports nothing of
//	                 ours (it needs no metrics: users record their own samples).
//	difymock/        the Dify-compatible mock, the oracle the client is tested
//	                 against. Imports nothing of ours, sse least of all.
//	report/          capacity reports and their comparison. Imports nothing of ours.
//	workload/        workload files (TOML) and their data sets; sse for the app modes.
//	tasks/           the Dify user classes: runner's interfaces over sse, samples
//	                 into metrics. Never worker.
//	worker/          the Locust worker protocol (wire, loop, transport) over runner
//	                 and metrics. Never tasks, sse or workload: it runs any
//	                 runner.UserClass.
//	cmd/difyload/    flags, signals and wiring of all the above.
//
// internal/locustbin (finding the Locust masters tests run) imports nothing of
// ours either; internal/locusttest (what the Locust test harnesses share: the
// process and master launcher, ports, CSV files) only internal/locustbin. Test
// files may import more (e2e imports everything).
package arch
