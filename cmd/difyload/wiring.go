package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/sse"
	"github.com/difyload/difyload/tasks"
	"github.com/difyload/difyload/workload"
)

// llmFlags configure the LLM streaming metrics (TTFT, TPOT, inter-chunk, goodput).
type llmFlags struct {
	sloTTFT, sloTPOT, sloE2E time.Duration
	rows                     bool
	requestsJSONL            string
	metricsAddr              string
}

func (l *llmFlags) register(fs *flag.FlagSet, env lookupEnv) {
	fs.DurationVar(&l.sloTTFT, "slo-ttft", 0, "goodput objective for time to first token (0: the master's --slo-ttft, else none)")
	fs.DurationVar(&l.sloTPOT, "slo-tpot", 0, "goodput objective for time per output token (0: the master's --slo-tpot, else none)")
	fs.DurationVar(&l.sloE2E, "slo-e2e", 0, "goodput objective for the whole stream (0: the master's --slo-e2e, else none)")
	fs.BoolVar(&l.rows, "llm-rows", envBool(env, "DIFYLOAD_LLM_ROWS"), "also report the rows SSE TPOT and SSE Inter-chunk [env DIFYLOAD_LLM_ROWS]")
	fs.StringVar(&l.requestsJSONL, "requests-jsonl", envString(env, "DIFYLOAD_REQUESTS_JSONL", ""), "write one JSON line per chat stream to this file [env DIFYLOAD_REQUESTS_JSONL]")
	fs.StringVar(&l.metricsAddr, "metrics-addr", envString(env, "DIFYLOAD_METRICS_ADDR", ""), "serve Prometheus metrics at http://ADDR/metrics (off when empty) [env DIFYLOAD_METRICS_ADDR]")
}

// wiring is everything a worker or a standalone run shares: one stats model, one LLM
// aggregate, the user classes, and what must be closed at the end.
type wiring struct {
	stats   *metrics.Stats
	served  *servedStats // stats with the Aggregated rule: what the worker reports
	opts    masterOptions
	llm     *metrics.LLM
	classes []runner.UserClass // the built-in workload's, with the flags applied
	deps    tasks.Deps         // what every workload's classes share
	obs     *tasks.LLMObserver
	closers []func() error
}

// close releases what the wiring opened, returning the first error.
func (w *wiring) close() error {
	var errs []error
	for i := len(w.closers) - 1; i >= 0; i-- {
		errs = append(errs, w.closers[i]())
	}
	return errors.Join(errs...)
}

// build creates ChatUser and RetrieveUser sharing one client, one stats model and one LLM
// aggregate, and starts the optional Prometheus endpoint. ctx bounds that endpoint.
func build(ctx context.Context, uf *userFlags, lf *llmFlags, stderr io.Writer) (*wiring, error) {
	client, cfg, err := uf.build()
	if err != nil {
		return nil, err
	}
	w := &wiring{stats: metrics.NewStats(), llm: metrics.NewLLM(metrics.SLO{TTFT: lf.sloTTFT, TPOT: lf.sloTPOT, E2E: lf.sloE2E})}
	w.served = &servedStats{stats: w.stats}
	w.served.all.Store(uf.aggregateAll)
	w.opts = masterOptions{aggregateAllFlag: uf.aggregateAll, stats: w.served}
	var jsonl *metrics.JSONLWriter
	if lf.requestsJSONL != "" {
		f, err := os.Create(lf.requestsJSONL)
		if err != nil {
			return nil, fmt.Errorf("--requests-jsonl: %w", err)
		}
		jsonl = metrics.NewJSONLWriter(f)
		w.closers = append(w.closers, func() error { return errors.Join(jsonl.Close(), f.Close()) })
	}
	w.obs = tasks.NewLLMObserver(tasks.LLMObserverConfig{LLM: w.llm, JSONL: jsonl, Recorder: w.stats, Rows: lf.rows, SplitFlows: uf.splitFlows})
	w.opts.llmObs = w.obs
	w.deps = cfg.Deps(client, w.stats, observers{llm: w.obs, hints: newStreamHints(nil, stderr)})
	w.deps.ClientFor = uf.clients.forTimeout
	if w.classes, err = w.classesFor(cfg.Workload()); err != nil {
		return nil, errors.Join(err, w.close())
	}
	if lf.metricsAddr != "" {
		stop, err := serveMetrics(ctx, lf.metricsAddr, w.llm, stderr)
		if err != nil {
			return nil, errors.Join(err, w.close())
		}
		w.closers = append(w.closers, stop)
	}
	return w, nil
}

// observers hands every stream to the LLM metrics (with its conversation turn) and to the
// failure hints.
type observers struct {
	llm   *tasks.LLMObserver
	hints *streamHints
}

func (o observers) ObserveStream(flow string, res *sse.Result, err error) {
	o.ObserveTurn(flow, 0, res, err)
}

func (o observers) ObserveTurn(flow string, turn int, res *sse.Result, err error) {
	o.llm.ObserveTurn(flow, turn, res, err)
	o.hints.ObserveStream(flow, res, err)
}

// classesFor builds the user classes of a workload.
func (w *wiring) classesFor(wl *workload.Workload) ([]runner.UserClass, error) {
	cs, err := tasks.NewClasses(wl, w.deps)
	if err != nil {
		return nil, err
	}
	out := make([]runner.UserClass, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out, nil
}

// serveMetrics serves the LLM histograms for Prometheus until stop is called.
func serveMetrics(ctx context.Context, addr string, llm *metrics.LLM, stderr io.Writer) (stop func() error, err error) {
	reg := prometheus.NewRegistry()
	// The Go and process collectors add go_goroutines, process_open_fds,
	// process_resident_memory_bytes and friends: what a leak or a soak is watched by.
	for _, c := range []prometheus.Collector{
		metrics.NewLLMCollector(llm),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	stopSrv := serve(ln, mux, func(err error) { fmt.Fprintln(stderr, "difyload: metrics endpoint:", err) })
	fmt.Fprintf(stderr, "difyload: Prometheus metrics at http://%s/metrics\n", ln.Addr())
	return func() error { return stopSrv(ctx) }, nil
}

// writeLLMSummary prints the run's LLM percentiles per flow (standalone runs).
func writeLLMSummary(out io.Writer, llm *metrics.LLM) {
	totals := llm.Totals()
	all := totals[""]
	if all.Streams == 0 {
		return
	}
	flows := make([]string, 0, len(totals))
	for f := range totals {
		flows = append(flows, f)
	}
	sort.Strings(flows)
	fmt.Fprintf(out, "\nLLM streaming metrics (ms; p50 / p90 / p99 / max)\n")
	fmt.Fprintf(out, "%-18s %8s %8s %8s %10s %-29s %-29s %-29s %-29s\n", "Flow", "streams", "failed", "good", "tokens", "TTFT", "TPOT", "Inter-chunk", "E2E")
	for _, f := range flows {
		t := totals[f]
		name := f
		if f == "" {
			name = "All"
		} else if len(flows) == 2 {
			continue // one flow: the All row says it all
		}
		fmt.Fprintf(out, "%-18s %8d %8d %8d %10d", name, t.Streams, t.Failed, t.Good, t.OutputTokens)
		for _, m := range []string{metrics.LLMMetricTTFT, metrics.LLMMetricTPOT, metrics.LLMMetricInterChunk, metrics.LLMMetricE2E} {
			h := t.Hist[m]
			fmt.Fprintf(out, " %-29s", fmt.Sprintf("%s / %s / %s / %s", ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99)), ms(h.Quantile(1))))
		}
		fmt.Fprintln(out)
	}
	first, later := all.Hist[metrics.LLMMetricTTFTFirstTurn], all.Hist[metrics.LLMMetricTTFTLaterTurn]
	if first.Count > 0 || later.Count > 0 {
		fmt.Fprintf(out, "TTFT of multi-turn conversations: first turn %s, later turns %s (ms; p50 / p90 / p99 / max, %d and %d streams)\n",
			quantiles(first), quantiles(later), first.Count, later.Count)
	}
}

func quantiles(h metrics.LLMHistogram) string {
	return fmt.Sprintf("%s / %s / %s / %s", ms(h.Quantile(0.5)), ms(h.Quantile(0.9)), ms(h.Quantile(0.99)), ms(h.Quantile(1)))
}

func ms(us int64) string { return fmt.Sprintf("%.1f", float64(us)/1000) }
