package tasks

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/sse"
)

// Extra Locust rows of the LLM observer (Type "SSE"), off by default: each adds one sample
// per successful stream to the Aggregated row.
const (
	// NameTPOT is one sample per stream with more than one token: its TPOT.
	NameTPOT = "TPOT"
	// NameInterChunk is one sample per stream with at least two answer chunks: the mean gap
	// between its chunks. (Every gap is in the LLM tab's inter-chunk histogram; one row
	// sample per gap would multiply the Aggregated counts by the chunk count.)
	NameInterChunk = "Inter-chunk"
)

// Option names locustfile.py defines for the LLM metrics; the master sends their values to
// every worker in spawn's parsed_options.
const (
	OptionSLOTTFT   = "slo_ttft"   // --slo-ttft, milliseconds, 0 = off
	OptionSLOTPOT   = "slo_tpot"   // --slo-tpot, milliseconds, 0 = off
	OptionSLOE2E    = "slo_e2e"    // --slo-e2e, milliseconds, 0 = off
	OptionLLMRows   = "llm_rows"   // --llm-rows, bool
	OptionLLMReport = "llm_report" // --llm-report, master only
)

// StreamSampleFrom converts one finished chat stream into an LLM sample:
//
//	TTFT  = FirstToken − Start (when an answer chunk arrived)
//	N     = usage.completion_tokens when usage is present and positive, else the answer
//	        chunk count (TPOTFromChunks = true)
//	TPOT  = (last chunk − first chunk) / (N − 1), only when N > 1
//	Gaps  = every ChunkTimes[i] − ChunkTimes[i−1]
//	E2E   = End − Start (the terminal event; a little later than vLLM's last content chunk)
//	Failed = err != nil
//
// plus Dify's usage.latency and usage.time_to_first_token when present. res may be nil.
func StreamSampleFrom(flow string, res *sse.Result, err error) metrics.StreamSample {
	if res == nil {
		res = &sse.Result{}
	}
	s := metrics.StreamSample{Flow: flow, Failed: err != nil, Start: res.Start, End: res.End, Chunks: res.Chunks,
		MessageID: res.MessageID, Clock: res.Clock.String()}
	if s.Chunks == 0 {
		s.Chunks = len(res.ChunkTimes)
	}
	if !res.Start.IsZero() && !res.End.IsZero() {
		s.E2E = res.End.Sub(res.Start)
	}
	first, last := res.FirstToken, res.LastToken
	if ct := res.ChunkTimes; len(ct) > 0 {
		first, last = ct[0], ct[len(ct)-1]
		if len(ct) > 1 {
			s.Gaps = make([]time.Duration, len(ct)-1)
			for i := 1; i < len(ct); i++ {
				s.Gaps[i-1] = ct[i].Sub(ct[i-1])
			}
		}
	}
	if !res.FirstToken.IsZero() && !res.Start.IsZero() {
		s.TTFT, s.HasTTFT = res.FirstToken.Sub(res.Start), true
	} else if !first.IsZero() && !res.Start.IsZero() {
		s.TTFT, s.HasTTFT = first.Sub(res.Start), true
	}
	if !res.FirstDataEvent.IsZero() && !res.Start.IsZero() {
		s.TTFE, s.HasTTFE = res.FirstDataEvent.Sub(res.Start), true
	}
	u := res.Usage
	if u.Present && u.CompletionTokens > 0 {
		s.OutputTokens = u.CompletionTokens
	} else {
		s.OutputTokens, s.TPOTFromChunks = int64(s.Chunks), true
	}
	if s.OutputTokens > 1 && !first.IsZero() && !last.IsZero() {
		s.TPOT, s.HasTPOT = last.Sub(first)/time.Duration(s.OutputTokens-1), true
	}
	if u.Present && u.HasLatency {
		s.ServerLatency, s.HasServerLatency = u.Latency, true
	}
	if u.Present && u.HasTTFT {
		s.ServerTTFT, s.HasServerTTFT = u.TimeToFirstToken, true
	}
	return s
}

// LLMObserverConfig configures an LLMObserver.
type LLMObserverConfig struct {
	// LLM receives every sample (required). Its SLO at construction is the worker's own
	// (flag) objective: a zero field there is taken from the master's options.
	LLM *metrics.LLM
	// JSONL, if set, gets one line per stream.
	JSONL *metrics.JSONLWriter
	// Recorder receives the optional extra rows (SSE TPOT, SSE Inter-chunk); nil disables
	// them whatever the options say. Pass the same *metrics.Stats the users record into.
	Recorder Recorder
	// Rows turns the extra rows on (worker flag --llm-rows); the master's llm_rows option
	// can also turn them on.
	Rows bool
	// SplitFlows names the extra rows per flow ("TPOT SimpleChatFlow"), like the TTFB rows.
	SplitFlows bool
}

// LLMObserver is a StreamObserver that feeds the LLM metrics, the optional JSONL file and the
// optional extra Locust rows. It is safe for concurrent use.
type LLMObserver struct {
	llm      *metrics.LLM
	jsonl    *metrics.JSONLWriter
	rec      Recorder
	split    bool
	flagSLO  metrics.SLO
	flagRows bool
	rows     atomic.Bool
}

var (
	_ StreamObserver = (*LLMObserver)(nil)
	_ TurnObserver   = (*LLMObserver)(nil)
)

// NewLLMObserver returns an observer; cfg.LLM must not be nil.
func NewLLMObserver(cfg LLMObserverConfig) *LLMObserver {
	o := &LLMObserver{llm: cfg.LLM, jsonl: cfg.JSONL, rec: cfg.Recorder, split: cfg.SplitFlows,
		flagSLO: cfg.LLM.SLO(), flagRows: cfg.Rows}
	o.rows.Store(cfg.Rows && cfg.Recorder != nil)
	return o
}

// ApplyOptions applies the master's parsed_options (spawn message): slo_ttft, slo_tpot and
// slo_e2e (milliseconds) fill the SLO fields the worker's flags left at zero, and llm_rows
// turns the extra rows on. It is cheap and idempotent; the worker calls it once per spawn
// (worker.Config.OnSpawn). nil opts keep the flag values.
func (o *LLMObserver) ApplyOptions(opts map[string]any) {
	slo := o.flagSLO
	if slo.TTFT == 0 {
		slo.TTFT = optMillis(opts[OptionSLOTTFT])
	}
	if slo.TPOT == 0 {
		slo.TPOT = optMillis(opts[OptionSLOTPOT])
	}
	if slo.E2E == 0 {
		slo.E2E = optMillis(opts[OptionSLOE2E])
	}
	o.llm.SetSLO(slo)
	o.rows.Store(o.rec != nil && (o.flagRows || optBool(opts[OptionLLMRows])))
}

// RowsEnabled reports whether the extra rows are being recorded.
func (o *LLMObserver) RowsEnabled() bool { return o.rows.Load() }

// ObserveStream implements StreamObserver.
func (o *LLMObserver) ObserveStream(flow string, res *sse.Result, err error) {
	o.ObserveTurn(flow, 0, res, err)
}

// ObserveTurn implements TurnObserver: turn 1 and later turns of multi-turn conversations
// also feed the split TTFT histograms.
func (o *LLMObserver) ObserveTurn(flow string, turn int, res *sse.Result, err error) {
	if err != nil && sse.IsCancelled(err) {
		return
	}
	s := StreamSampleFrom(flow, res, err)
	s.Turn = turn
	o.llm.Observe(s)
	if o.jsonl != nil {
		failure := ""
		if err != nil {
			failure = failureName(err)
		}
		o.jsonl.Write(flow, s, failure)
	}
	if s.Failed || !o.rows.Load() {
		return
	}
	now := time.Now()
	if s.HasTPOT {
		o.rec.Record(metrics.Sample{Method: MethodSSE, Name: o.rowName(NameTPOT, flow), Duration: s.TPOT, At: now})
	}
	if len(s.Gaps) > 0 {
		var sum time.Duration
		for _, g := range s.Gaps {
			sum += g
		}
		o.rec.Record(metrics.Sample{Method: MethodSSE, Name: o.rowName(NameInterChunk, flow),
			Duration: sum / time.Duration(len(s.Gaps)), At: now})
	}
}

func (o *LLMObserver) rowName(base, flow string) string {
	if o.split {
		return base + " " + flow
	}
	return base
}

// optMillis reads a millisecond option as msgpack decodes it (int64, float64, ...); anything
// else, or a negative value, is 0.
func optMillis(v any) time.Duration {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	case int32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case float32:
		f = float64(x)
	case string:
		p, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0
		}
		f = p
	default:
		return 0
	}
	if !(f > 0) {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}

func optBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(x)
		return b
	case int64:
		return x != 0
	}
	return false
}
