package metrics

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// LLM streaming metrics: the per-worker side of the master's "LLM" tab.
//
// Wire histogram: a sparse log-linear histogram that Python merges by summing dicts. A value
// v (integer microseconds, or tokens for the per-stream token histogram; clamped to >= 0)
// goes to bucket key LLMBucket(v): v itself below 2048, else v with all but its 11 most
// significant bits cleared (relative bucket width < 2^-10, so < 0.1 %). locustfile.py has the
// same function; metrics/llm_test.go runs both on the same values.
//
// Percentiles (LLMHistogram.Quantile, and llm_quantile in locustfile.py): nearest rank over
// the cumulative counts in ascending key order, rank = max(1, ceil(q·N)); the reported value
// is the midpoint of the bucket holding that rank (key + width/2, integer; exact below 2048),
// so the error is at most half a bucket width (< 0.05 %). Max and mean are exact: the payload
// carries each metric's exact maximum and sum beside the buckets.

// Wire constants shared with locustfile.py.
const (
	// LLMMessageType is the Locust custom message type that carries a Drain payload from a
	// worker to the master ("difyload_llm"); the master's locustfile registers a handler.
	LLMMessageType = "difyload_llm"
	// LLMWireVersion is the payload's "version" value.
	LLMWireVersion = 1
	// LLMSignificantBits is how many leading bits of a value its bucket key keeps.
	LLMSignificantBits = 11
)

// Metric names: the keys of a payload's "hist", "sum" and "max" maps. All are microseconds
// except LLMMetricTokens.
const (
	LLMMetricTTFT          = "ttft"           // time to the first answer chunk
	LLMMetricTTFE          = "ttfe"           // time to the first data event (Dify's queue + setup)
	LLMMetricTPOT          = "tpot"           // (last chunk − first chunk) / (tokens − 1)
	LLMMetricInterChunk    = "itl"            // every gap between consecutive answer chunks
	LLMMetricE2E           = "e2e"            // request start → terminal event
	LLMMetricServerLatency = "server_latency" // Dify usage.latency
	LLMMetricServerTTFT    = "server_ttft"    // Dify usage.time_to_first_token
	LLMMetricTokens        = "tokens"         // output tokens per stream (a count, not µs)
	// TTFT split by turn, for apps holding multi-turn conversations (workload
	// conversation.turns > 1): where Dify's memory cost shows.
	LLMMetricTTFTFirstTurn = "ttft_turn1" // TTFT of a conversation's first turn
	LLMMetricTTFTLaterTurn = "ttft_later" // TTFT of its second and later turns
)

type llmMetric int

const (
	mTTFT llmMetric = iota
	mTTFE
	mTPOT
	mITL
	mE2E
	mServerLatency
	mServerTTFT
	mTokens
	mTTFTFirstTurn
	mTTFTLaterTurn
	numLLMMetrics
)

// llmMetricNames is the constant table metric index → wire name.
func llmMetricNames() [numLLMMetrics]string {
	return [numLLMMetrics]string{
		LLMMetricTTFT, LLMMetricTTFE, LLMMetricTPOT, LLMMetricInterChunk, LLMMetricE2E,
		LLMMetricServerLatency, LLMMetricServerTTFT, LLMMetricTokens,
		LLMMetricTTFTFirstTurn, LLMMetricTTFTLaterTurn,
	}
}

// LLMMetricNames returns the metric names in their canonical order.
func LLMMetricNames() []string {
	names := llmMetricNames()
	return names[:]
}

// LLMBucket returns the wire bucket key of v: v for 0 <= v < 2048; for larger v, v with all
// but its LLMSignificantBits most significant bits cleared. Negative v counts as 0.
func LLMBucket(v int64) int64 {
	if v < 0 {
		return 0
	}
	if v < 1<<LLMSignificantBits {
		return v
	}
	e := bits.Len64(uint64(v)) - LLMSignificantBits
	return v >> e << e
}

// LLMBucketValue is the value reported for bucket key k: the bucket's midpoint (k + width/2
// rounded down; k itself when the width is 1).
func LLMBucketValue(k int64) int64 {
	if k < 1<<LLMSignificantBits {
		return k
	}
	e := bits.Len64(uint64(k)) - LLMSignificantBits
	return k + (int64(1)<<e)>>1
}

func micros(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64(d / time.Microsecond)
}

// LLMHistogram is one metric's sparse histogram: bucket key → count, plus the exact count,
// sum and maximum of the raw values. The zero value is empty and ready to use; it is not
// safe for concurrent use.
type LLMHistogram struct {
	// Counts maps LLMBucket keys to counts.
	Counts map[int64]int64
	// Count, Sum and Max are over the raw (clamped) values.
	Count, Sum, Max int64
}

// Record adds one value (clamped to >= 0).
func (h *LLMHistogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if h.Counts == nil {
		h.Counts = make(map[int64]int64)
	}
	h.Counts[LLMBucket(v)]++
	h.Count++
	h.Sum += v
	if v > h.Max {
		h.Max = v
	}
}

// Merge adds o's values to h.
func (h *LLMHistogram) Merge(o *LLMHistogram) {
	if o.Count == 0 && len(o.Counts) == 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = make(map[int64]int64, len(o.Counts))
	}
	for k, n := range o.Counts {
		h.Counts[k] += n
	}
	h.Count += o.Count
	h.Sum += o.Sum
	if o.Max > h.Max {
		h.Max = o.Max
	}
}

// Clone returns a deep copy.
func (h *LLMHistogram) Clone() LLMHistogram {
	c := *h
	if h.Counts != nil {
		c.Counts = make(map[int64]int64, len(h.Counts))
		for k, n := range h.Counts {
			c.Counts[k] = n
		}
	}
	return c
}

// Quantile returns the nearest-rank q-quantile (q in 0..1) as the midpoint of the bucket
// holding rank max(1, ceil(q·N)), N being the sum of Counts, clamped to the exact Max (a
// midpoint can lie above it); 0 when empty. The master's tab clamps the same way.
func (h LLMHistogram) Quantile(q float64) int64 {
	v := LLMQuantile(h.Counts, q)
	if h.Count > 0 && v > h.Max {
		v = h.Max
	}
	return v
}

// LLMQuantile is Quantile over a bare bucket map (the same computation as llm_quantile in
// locustfile.py).
func LLMQuantile(counts map[int64]int64, q float64) int64 {
	var n int64
	keys := make([]int64, 0, len(counts))
	for k, c := range counts {
		if c > 0 {
			keys = append(keys, k)
			n += c
		}
	}
	if n == 0 {
		return 0
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	rank := int64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for _, k := range keys {
		cum += counts[k]
		if cum >= rank {
			return LLMBucketValue(k)
		}
	}
	return LLMBucketValue(keys[len(keys)-1])
}

// Mean returns Sum/Count, or 0 when empty.
func (h LLMHistogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return float64(h.Sum) / float64(h.Count)
}

// SLO is the service-level objective a stream must meet to count as good (goodput). A zero
// field means no limit on that metric.
type SLO struct {
	TTFT, TPOT, E2E time.Duration
}

// Met reports whether s counts towards goodput: it did not fail, and every set limit holds.
// A TTFT limit fails a stream without any answer chunk; a TPOT limit ignores streams without
// a TPOT (one token or fewer), as vLLM does.
func (slo SLO) Met(s StreamSample) bool {
	if s.Failed {
		return false
	}
	if slo.TTFT > 0 && (!s.HasTTFT || s.TTFT > slo.TTFT) {
		return false
	}
	if slo.TPOT > 0 && s.HasTPOT && s.TPOT > slo.TPOT {
		return false
	}
	if slo.E2E > 0 && s.E2E > slo.E2E {
		return false
	}
	return true
}

// StreamSample is what one finished (not cancelled) chat stream contributes to the LLM
// metrics; tasks.StreamSampleFrom builds it from an sse.Result.
type StreamSample struct {
	// TTFT is request start → first answer chunk; valid if HasTTFT.
	TTFT time.Duration
	// TPOT is (last answer chunk − first answer chunk) / (OutputTokens − 1); valid if HasTPOT
	// (OutputTokens > 1 and at least one chunk).
	TPOT time.Duration
	// E2E is request start → end of the stream (terminal event, or the failure).
	E2E time.Duration
	// HasTTFT and HasTPOT report whether TTFT and TPOT are valid.
	HasTTFT, HasTPOT bool
	// TTFE is the time to the first data event (anything but a ping), valid if HasTTFE: on
	// Dify 1.13 the wait in the job queue plus the run's setup, so TTFT − TTFE is the model.
	TTFE    time.Duration
	HasTTFE bool
	// TPOTFromChunks is set when OutputTokens (and hence TPOT) is the answer chunk count
	// because Dify's usage gave no completion_tokens (chunk ≠ token; flagged and counted).
	TPOTFromChunks bool
	// Gaps are the gaps between consecutive answer chunks (len = chunks − 1).
	Gaps []time.Duration
	// OutputTokens is usage.completion_tokens, or the chunk count (see TPOTFromChunks).
	OutputTokens int64
	// ServerLatency and ServerTTFT are Dify's usage.latency and usage.time_to_first_token;
	// valid if HasServerLatency / HasServerTTFT.
	ServerLatency, ServerTTFT       time.Duration
	HasServerLatency, HasServerTTFT bool
	// Failed marks a failed stream (any failure, from connect to a mid-stream error). A
	// failed stream counts in the stream and failure counts and against goodput; its
	// timings are not put into the histograms.
	Failed bool
	// Flow is the chat flow ("SimpleChatFlow", ...), a label for Prometheus and JSONL.
	Flow string
	// Turn is the stream's turn in a multi-turn conversation (1 = first); 0 for apps
	// without multi-turn conversations. It splits TTFT into LLMMetricTTFTFirstTurn and
	// LLMMetricTTFTLaterTurn.
	Turn int
	// Start and End are the request start and the stream's end (wall clock). End picks the
	// per-second bucket of the token and goodput rates; zero means "now".
	Start, End time.Time
	// Chunks is the number of non-empty answer chunks.
	Chunks int
	// MessageID is Dify's message_id of the stream ("" if none arrived); JSONL only, for
	// matching a stream with the server's own records.
	MessageID string
	// Clock names the clock that timed the stream's bytes ("kernel": the kernel's receive
	// timestamps, "user": time.Now after each read, "mixed"; "" if nothing was read). JSONL only.
	Clock string
}

// llmCounts are the additive stream counters.
type llmCounts struct {
	streams, failed, good, tokens, fallback int64
}

type llmSet struct {
	hist [numLLMMetrics]LLMHistogram
	llmCounts
}

func (t *llmSet) add(s *StreamSample, good bool) {
	t.streams++
	if s.Failed {
		t.failed++
		return
	}
	if s.HasTTFT {
		t.hist[mTTFT].Record(micros(s.TTFT))
		switch {
		case s.Turn == 1:
			t.hist[mTTFTFirstTurn].Record(micros(s.TTFT))
		case s.Turn > 1:
			t.hist[mTTFTLaterTurn].Record(micros(s.TTFT))
		}
	}
	if s.HasTTFE {
		t.hist[mTTFE].Record(micros(s.TTFE))
	}
	if s.HasTPOT {
		t.hist[mTPOT].Record(micros(s.TPOT))
	}
	for _, g := range s.Gaps {
		t.hist[mITL].Record(micros(g))
	}
	t.hist[mE2E].Record(micros(s.E2E))
	if s.HasServerLatency {
		t.hist[mServerLatency].Record(micros(s.ServerLatency))
	}
	if s.HasServerTTFT {
		t.hist[mServerTTFT].Record(micros(s.ServerTTFT))
	}
	tok := s.OutputTokens
	if tok < 0 {
		tok = 0
	}
	t.hist[mTokens].Record(tok)
	t.tokens += tok
	if s.TPOTFromChunks {
		t.fallback++
	}
	if good {
		t.good++
	}
}

type llmInterval struct {
	llmSet
	start                               time.Time
	tokensPerSec, goodPerSec, streamSec map[int64]int64
}

func newLLMInterval(start time.Time) llmInterval {
	return llmInterval{start: start, tokensPerSec: map[int64]int64{}, goodPerSec: map[int64]int64{}, streamSec: map[int64]int64{}}
}

// LLM collects StreamSamples from many goroutines: per reporting interval for the master
// (Drain) and cumulatively per flow for Prometheus (Collector) and stand-alone summaries
// (Totals). One mutex guards it; Observe runs once per stream, not per chunk, so contention
// is negligible next to reading a stream. Create it with NewLLM.
type LLM struct {
	mu    sync.Mutex
	slo   SLO
	cur   llmInterval
	total map[string]*llmSet
}

// NewLLM returns an empty collector that judges goodput by slo.
func NewLLM(slo SLO) *LLM {
	return &LLM{slo: slo, cur: newLLMInterval(time.Now()), total: map[string]*llmSet{}}
}

// SLO returns the objective streams are judged by.
func (l *LLM) SLO() SLO {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slo
}

// SetSLO changes the objective for streams observed from now on (e.g. from the master's
// parsed_options at spawn).
func (l *LLM) SetSLO(slo SLO) {
	l.mu.Lock()
	l.slo = slo
	l.mu.Unlock()
}

// Observe adds one finished stream.
func (l *LLM) Observe(s StreamSample) {
	end := s.End
	if end.IsZero() {
		end = time.Now()
	}
	sec := end.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	good := l.slo.Met(s)
	l.cur.add(&s, good)
	l.cur.streamSec[sec]++
	if !s.Failed {
		if s.OutputTokens > 0 {
			l.cur.tokensPerSec[sec] += s.OutputTokens
		}
		if good {
			l.cur.goodPerSec[sec]++
		}
	}
	flow := s.Flow
	if flow == "" {
		flow = LLMNoFlow
	}
	t := l.total[flow]
	if t == nil {
		t = &llmSet{}
		l.total[flow] = t
	}
	t.add(&s, good)
}

func unixFloat(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Drain returns the wire payload for everything observed since the previous Drain (or
// NewLLM) and starts a new interval at now. The payload (msgpack-encodable; integer-keyed
// maps are map[int64]int64, like Locust's response_times):
//
//	"version"         int64 LLMWireVersion
//	"start", "end"    float64 unix seconds of the interval
//	"streams"         int64 finished streams (successful + failed)
//	"failed"          int64 failed streams
//	"good"            int64 successful streams meeting the SLO (goodput numerator)
//	"output_tokens"   int64 Σ output tokens of successful streams
//	"chunk_fallback"  int64 successful streams whose token count is the chunk count
//	"hist"            map[string]any: metric name → map[int64]int64 (bucket key → count)
//	"sum", "max"      map[string]any: metric name → int64 (exact sum and max of the values)
//	"tokens_per_sec"  map[int64]int64: unix second of stream end → output tokens
//	"good_per_sec"    map[int64]int64: unix second → good streams
//	"streams_per_sec" map[int64]int64: unix second → finished streams
//	"slo"             map[string]any: "ttft_us", "tpot_us", "e2e_us" → int64 (0 = off)
//
// Only metrics with values appear in "hist", "sum" and "max". The payload is sent even when
// empty, so the master sees every worker's interval.
func (l *LLM) Drain(now time.Time) map[string]any {
	l.mu.Lock()
	cur := l.cur
	slo := l.slo
	l.cur = newLLMInterval(now)
	l.mu.Unlock()

	hist := map[string]any{}
	sum := map[string]any{}
	max := map[string]any{}
	names := llmMetricNames()
	for i := range numLLMMetrics {
		h := &cur.hist[i]
		if h.Count == 0 {
			continue
		}
		name := names[i]
		hist[name] = h.Counts
		sum[name] = h.Sum
		max[name] = h.Max
	}
	return map[string]any{
		"version":         int64(LLMWireVersion),
		"start":           unixFloat(cur.start),
		"end":             unixFloat(now),
		"streams":         cur.streams,
		"failed":          cur.failed,
		"good":            cur.good,
		"output_tokens":   cur.tokens,
		"chunk_fallback":  cur.fallback,
		"hist":            hist,
		"sum":             sum,
		"max":             max,
		"tokens_per_sec":  cur.tokensPerSec,
		"good_per_sec":    cur.goodPerSec,
		"streams_per_sec": cur.streamSec,
		"slo": map[string]any{
			"ttft_us": micros(slo.TTFT),
			"tpot_us": micros(slo.TPOT),
			"e2e_us":  micros(slo.E2E),
		},
	}
}

// LLMTotals is a cumulative snapshot (since NewLLM) for one flow or for all flows.
type LLMTotals struct {
	// Streams, Failed, Good, OutputTokens and ChunkFallback are as in the Drain payload.
	Streams, Failed, Good, OutputTokens, ChunkFallback int64
	// Hist maps metric names (LLMMetricTTFT, ...) to deep copies of their histograms; every
	// metric is present.
	Hist map[string]LLMHistogram
}

func (t *llmSet) snapshot() LLMTotals {
	out := LLMTotals{Streams: t.streams, Failed: t.failed, Good: t.good, OutputTokens: t.tokens,
		ChunkFallback: t.fallback, Hist: make(map[string]LLMHistogram, numLLMMetrics)}
	for i, name := range llmMetricNames() {
		out.Hist[name] = t.hist[i].Clone()
	}
	return out
}

// LLMNoFlow is the flow label of samples with an empty Flow.
const LLMNoFlow = "none"

// Totals returns cumulative snapshots per flow (an empty Flow is filed as LLMNoFlow) and,
// under the key "", over all flows.
func (l *LLM) Totals() map[string]LLMTotals {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all llmSet
	out := make(map[string]LLMTotals, len(l.total)+1)
	for flow, t := range l.total {
		out[flow] = t.snapshot()
		all.streams += t.streams
		all.failed += t.failed
		all.good += t.good
		all.tokens += t.tokens
		all.fallback += t.fallback
		for i := range numLLMMetrics {
			all.hist[i].Merge(&t.hist[i])
		}
	}
	out[""] = all.snapshot()
	return out
}
