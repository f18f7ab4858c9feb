package metrics

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
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
//	 "failure":"","ttft_ms":200.4,"ttfe_ms":3.1,"tpot_ms":5.02,"tpot_from_chunks":false,"e2e_ms":301.2,
//	 "output_tokens":20,"chunks":20,"gaps_ms":[5.01,4.98,...],"server_latency_ms":300.1,
//	 "server_ttft_ms":200.1,"message_id":"5ad4cb98-...","clock":"kernel"}
//
// clock says which clock timed the stream's bytes (see sse.Clock): "kernel" when every read
// carried the kernel's receive timestamp, "user" when none did, "mixed" otherwise.
type JSONLWriter struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	buf []byte // line scratch, reused under mu
	err error
}

// NewJSONLWriter returns a writer that buffers lines for w.
func NewJSONLWriter(w io.Writer) *JSONLWriter {
	return &JSONLWriter{bw: bufio.NewWriterSize(w, 64<<10), buf: make([]byte, 0, 1024)}
}

// Write appends the line for one stream. flow overrides s.Flow when non-empty; failure is
// the stream's Locust failure text ("" for a success).
//
// The line is encoded by hand (same keys, order and number format as encoding/json, which
// cost several microseconds per stream through reflection) into a reused buffer.
func (j *JSONLWriter) Write(flow string, s StreamSample, failure string) {
	if flow == "" {
		flow = s.Flow
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return
	}
	b := j.buf[:0]
	b = append(b, `{"start":`...)
	b = appendUnix(b, s.Start)
	b = append(b, `,"end":`...)
	b = appendUnix(b, s.End)
	b = append(b, `,"flow":`...)
	b = appendJSONString(b, flow)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, !s.Failed)
	b = append(b, `,"failure":`...)
	b = appendJSONString(b, failure)
	b = append(b, `,"ttft_ms":`...)
	b = appendMS(b, s.TTFT, s.HasTTFT)
	b = append(b, `,"ttfe_ms":`...)
	b = appendMS(b, s.TTFE, s.HasTTFE)
	b = append(b, `,"tpot_ms":`...)
	b = appendMS(b, s.TPOT, s.HasTPOT)
	b = append(b, `,"tpot_from_chunks":`...)
	b = strconv.AppendBool(b, s.TPOTFromChunks)
	b = append(b, `,"e2e_ms":`...)
	b = appendMS(b, s.E2E, !s.Start.IsZero() || s.E2E > 0)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, s.OutputTokens, 10)
	b = append(b, `,"chunks":`...)
	b = strconv.AppendInt(b, int64(s.Chunks), 10)
	b = append(b, `,"gaps_ms":[`...)
	for i, g := range s.Gaps {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat(b, float64(g)/float64(time.Millisecond))
	}
	b = append(b, `],"server_latency_ms":`...)
	b = appendMS(b, s.ServerLatency, s.HasServerLatency)
	b = append(b, `,"server_ttft_ms":`...)
	b = appendMS(b, s.ServerTTFT, s.HasServerTTFT)
	b = append(b, `,"message_id":`...)
	b = appendJSONString(b, s.MessageID)
	b = append(b, `,"clock":`...)
	b = appendJSONString(b, s.Clock)
	b = append(b, "}\n"...)
	j.buf = b
	if _, err := j.bw.Write(b); err != nil {
		j.err = fmt.Errorf("metrics: write requests jsonl: %w", err)
	}
}

// appendFloat formats v like encoding/json: shortest representation, exponent form only
// outside [1e-6, 1e21).
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	fmtByte := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		fmtByte = 'e'
	}
	b = strconv.AppendFloat(b, v, fmtByte, -1, 64)
	if fmtByte == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

func appendMS(b []byte, d time.Duration, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return appendFloat(b, float64(d)/float64(time.Millisecond))
}

func appendUnix(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	return appendFloat(b, unixFloat(t))
}

// appendJSONString appends s as a JSON string: quotes, backslashes and control characters
// escaped, everything else (including non-ASCII UTF-8) as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
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
