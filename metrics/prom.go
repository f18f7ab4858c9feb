package metrics

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// promHist describes how one LLM metric is exposed.
type promHist struct {
	name, help string
	buckets    []float64
	div        float64 // raw value / div = exposed unit (µs → s: 1e6; tokens: 1)
}

// promHists is the constant table of how each LLM metric is exposed, indexed like
// llmMetricNames; NewLLMCollector builds it once per collector.
func promHists() [numLLMMetrics]promHist {
	// Classic Prometheus bucket upper bounds. Latencies are in seconds.
	promLatencyBuckets := []float64{.005, .01, .025, .05, .075, .1, .15, .2, .25, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300}
	promTokenGapBucket := []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .025, .03, .04, .05, .075, .1, .15, .2, .3, .5, 1, 2, 5}
	promTokenBuckets := []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 4000, 8000, 16000, 32000}
	return [numLLMMetrics]promHist{
		mTTFT:          {"difyload_llm_time_to_first_token_seconds", "Time from the request start to the first non-empty answer chunk (successful streams).", promLatencyBuckets, 1e6},
		mTPOT:          {"difyload_llm_time_per_output_token_seconds", "(last answer chunk - first answer chunk) / (output tokens - 1), per successful stream with more than one token.", promTokenGapBucket, 1e6},
		mITL:           {"difyload_llm_inter_chunk_latency_seconds", "Every gap between consecutive answer chunks (successful streams).", promTokenGapBucket, 1e6},
		mE2E:           {"difyload_llm_e2e_duration_seconds", "Time from the request start to the terminal event (successful streams).", promLatencyBuckets, 1e6},
		mServerLatency: {"difyload_llm_server_latency_seconds", "Dify's usage.latency as reported in message_end.", promLatencyBuckets, 1e6},
		mTTFE:          {"difyload_llm_time_to_first_event_seconds", "Time from the request start to the first data event (not a ping): Dify's job queue and setup, then the model (successful streams).", promLatencyBuckets, 1e6},
		mServerTTFT:    {"difyload_llm_server_time_to_first_token_seconds", "Dify's usage.time_to_first_token as reported in message_end.", promLatencyBuckets, 1e6},
		mTokens:        {"difyload_llm_output_tokens_per_stream", "Output tokens per successful stream (usage.completion_tokens, else the chunk count).", promTokenBuckets, 1},
		mTTFTFirstTurn: {"difyload_llm_time_to_first_token_first_turn_seconds", "TTFT of the first turn of multi-turn conversations.", promLatencyBuckets, 1e6},
		mTTFTLaterTurn: {"difyload_llm_time_to_first_token_later_turns_seconds", "TTFT of the second and later turns of multi-turn conversations.", promLatencyBuckets, 1e6},
	}
}

// LLMCollector exposes an LLM's cumulative values as Prometheus metrics, labelled by flow:
// one classic histogram per LLM metric (the same values the master's tab shows; a value is
// placed in a classic bucket by the midpoint of its log-linear bucket, < 0.05 % off) and
// counters for streams, failures, good streams, output tokens and chunk-count fallbacks,
// plus gauges with the SLO in force. Register it with a prometheus.Registry.
type LLMCollector struct {
	llm      *LLM
	table    [numLLMMetrics]promHist
	hists    [numLLMMetrics]*prometheus.Desc
	streams  *prometheus.Desc
	failed   *prometheus.Desc
	good     *prometheus.Desc
	tokens   *prometheus.Desc
	fallback *prometheus.Desc
	slo      *prometheus.Desc
}

var _ prometheus.Collector = (*LLMCollector)(nil)

// NewLLMCollector returns a Collector over l.
func NewLLMCollector(l *LLM) *LLMCollector {
	flow := []string{"flow"}
	c := &LLMCollector{
		llm:      l,
		table:    promHists(),
		streams:  prometheus.NewDesc("difyload_llm_streams_total", "Finished chat streams (successful and failed; cancelled streams are not counted).", flow, nil),
		failed:   prometheus.NewDesc("difyload_llm_stream_failures_total", "Failed chat streams (any failure from connect to a mid-stream error).", flow, nil),
		good:     prometheus.NewDesc("difyload_llm_good_streams_total", "Successful streams that met every set SLO (goodput numerator).", flow, nil),
		tokens:   prometheus.NewDesc("difyload_llm_output_tokens_total", "Output tokens of successful streams.", flow, nil),
		fallback: prometheus.NewDesc("difyload_llm_token_count_fallback_total", "Successful streams without usage.completion_tokens, whose token count is the answer chunk count.", flow, nil),
		slo:      prometheus.NewDesc("difyload_llm_slo_seconds", "The goodput objective in force (0 = no limit).", []string{"objective"}, nil),
	}
	for i := range numLLMMetrics {
		c.hists[i] = prometheus.NewDesc(c.table[i].name, c.table[i].help, flow, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *LLMCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.hists {
		ch <- d
	}
	for _, d := range []*prometheus.Desc{c.streams, c.failed, c.good, c.tokens, c.fallback, c.slo} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *LLMCollector) Collect(ch chan<- prometheus.Metric) {
	var out []prometheus.Metric
	c.llm.mu.Lock()
	slo := c.llm.slo
	for flow, t := range c.llm.total {
		for i := range numLLMMetrics {
			ph := &c.table[i]
			h := &t.hist[i]
			out = append(out, prometheus.MustNewConstHistogram(c.hists[i], uint64(h.Count),
				float64(h.Sum)/ph.div, classicBuckets(h.Counts, ph.buckets, ph.div), flow))
		}
		out = append(out,
			prometheus.MustNewConstMetric(c.streams, prometheus.CounterValue, float64(t.streams), flow),
			prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(t.failed), flow),
			prometheus.MustNewConstMetric(c.good, prometheus.CounterValue, float64(t.good), flow),
			prometheus.MustNewConstMetric(c.tokens, prometheus.CounterValue, float64(t.tokens), flow),
			prometheus.MustNewConstMetric(c.fallback, prometheus.CounterValue, float64(t.fallback), flow),
		)
	}
	c.llm.mu.Unlock()
	out = append(out,
		prometheus.MustNewConstMetric(c.slo, prometheus.GaugeValue, slo.TTFT.Seconds(), "ttft"),
		prometheus.MustNewConstMetric(c.slo, prometheus.GaugeValue, slo.TPOT.Seconds(), "tpot"),
		prometheus.MustNewConstMetric(c.slo, prometheus.GaugeValue, slo.E2E.Seconds(), "e2e"),
	)
	for _, m := range out {
		ch <- m
	}
}

// classicBuckets converts a log-linear bucket map into cumulative counts per upper bound:
// a bucket counts towards bound b when its midpoint / div is <= b.
func classicBuckets(counts map[int64]int64, bounds []float64, div float64) map[float64]uint64 {
	keys := make([]int64, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make(map[float64]uint64, len(bounds))
	var cum uint64
	i := 0
	for _, b := range bounds {
		for i < len(keys) && float64(LLMBucketValue(keys[i]))/div <= b {
			cum += uint64(counts[keys[i]])
			i++
		}
		out[b] = cum
	}
	return out
}
