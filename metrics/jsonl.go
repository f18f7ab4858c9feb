package metrics

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// JSONLWriter writes one JSON object per finished stream, for offline analysis. It is safe
// for concurrent use and buffered; Close (or Flush) writes the buffer out. It never closes
// the underlying writer. Write errors are sticky and returned by Flush, Close and Err.
//
// One line (durations in float milliseconds; null when not available):
//
//	{"start":1724900000.123456,"end":1724900000.456789,"flow":"SimpleChatFlow","ok":true,
//	 "failure":"","ttft_ms":200.4,"tpot_ms":5.02,"tpot_from_chunks":false,"e2e_ms":301.2,
//	 "output_tokens":20,"chunks":20,"gaps_ms":[5.01,4.98,...],"server_latency_ms":300.1,
//	 "server_ttft_ms":200.1}
type JSONLWriter struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	enc *json.Encoder
	err error
}

// NewJSONLWriter returns a writer that buffers lines for w.
func NewJSONLWriter(w io.Writer) *JSONLWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &JSONLWriter{bw: bw, enc: enc}
}

type jsonlLine struct {
	Start          *float64  `json:"start"`
	End            *float64  `json:"end"`
	Flow           string    `json:"flow"`
	OK             bool      `json:"ok"`
	Failure        string    `json:"failure"`
	TTFT           *float64  `json:"ttft_ms"`
	TPOT           *float64  `json:"tpot_ms"`
	TPOTFromChunks bool      `json:"tpot_from_chunks"`
	E2E            *float64  `json:"e2e_ms"`
	OutputTokens   int64     `json:"output_tokens"`
	Chunks         int       `json:"chunks"`
	Gaps           []float64 `json:"gaps_ms"`
	ServerLatency  *float64  `json:"server_latency_ms"`
	ServerTTFT     *float64  `json:"server_ttft_ms"`
}

func msPtr(d time.Duration, ok bool) *float64 {
	if !ok {
		return nil
	}
	v := float64(d) / float64(time.Millisecond)
	return &v
}

func unixPtr(t time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	v := unixFloat(t)
	return &v
}

// Write appends the line for one stream. flow overrides s.Flow when non-empty; failure is
// the stream's Locust failure text ("" for a success).
func (j *JSONLWriter) Write(flow string, s StreamSample, failure string) {
	if flow == "" {
		flow = s.Flow
	}
	line := jsonlLine{
		Start: unixPtr(s.Start), End: unixPtr(s.End), Flow: flow, OK: !s.Failed, Failure: failure,
		TTFT: msPtr(s.TTFT, s.HasTTFT), TPOT: msPtr(s.TPOT, s.HasTPOT), TPOTFromChunks: s.TPOTFromChunks,
		E2E: msPtr(s.E2E, !s.Start.IsZero() || s.E2E > 0), OutputTokens: s.OutputTokens, Chunks: s.Chunks,
		Gaps:          make([]float64, len(s.Gaps)),
		ServerLatency: msPtr(s.ServerLatency, s.HasServerLatency), ServerTTFT: msPtr(s.ServerTTFT, s.HasServerTTFT),
	}
	for i, g := range s.Gaps {
		line.Gaps[i] = float64(g) / float64(time.Millisecond)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	if err := j.enc.Encode(&line); err != nil {
		j.err = fmt.Errorf("metrics: write requests jsonl: %w", err)
	}
}

// Flush writes buffered lines to the underlying writer.
func (j *JSONLWriter) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if err := j.bw.Flush(); err != nil {
		j.err = fmt.Errorf("metrics: flush requests jsonl: %w", err)
	}
	return j.err
}

// Close flushes; it does not close the underlying writer. Writes after Close are buffered
// again and need another Flush.
func (j *JSONLWriter) Close() error { return j.Flush() }

// Err returns the first write error, if any.
func (j *JSONLWriter) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}
