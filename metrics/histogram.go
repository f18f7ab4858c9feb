package metrics

import (
	"errors"
	"fmt"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram configuration: microsecond values from 1 µs to one hour with
// three significant digits (relative error ≤ 0.1 %).
const (
	histLowestUS  = 1
	histHighestUS = int64(time.Hour / time.Microsecond)
	histSigFigs   = 3
)

// Histogram is an exact (three significant digits), mergeable latency
// histogram for LLM metrics such as time to first token or inter-token gaps,
// where Locust's two-digit buckets are too coarse. It wraps
// github.com/HdrHistogram/hdrhistogram-go with microsecond resolution over
// 1 µs .. 1 h; durations outside that range are clamped (negative → 0,
// above 1 h → 1 h). It is safe for concurrent use; a single mutex is cheap
// next to the work that produces one sample (see BenchmarkHistogramRecordParallel).
//
// The zero value is not usable; call NewHistogram.
type Histogram struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram

	// mergeMu serialises Merge calls into this histogram and guards scratch.
	// Merge never holds two histograms' mu at once, so a.Merge(b) and
	// b.Merge(a) running together cannot deadlock.
	mergeMu sync.Mutex
	scratch *hdrhistogram.Histogram
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: newHDR()}
}

func newHDR() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowestUS, histHighestUS, histSigFigs)
}

func toMicros(d time.Duration) int64 {
	us := d.Microseconds()
	switch {
	case us < 0:
		return 0
	case us > histHighestUS:
		return histHighestUS
	}
	return us
}

// Record adds one duration (truncated to whole microseconds, clamped to
// 0 .. 1 h).
func (h *Histogram) Record(d time.Duration) {
	us := toMicros(d)
	h.mu.Lock()
	_ = h.h.RecordValue(us) // cannot fail: us is within the trackable range
	h.mu.Unlock()
}

// Merge adds all values recorded in other to h. other is not modified and
// may keep recording meanwhile; values it records during the merge may or
// may not be included. h.Merge(h) doubles h's counts.
func (h *Histogram) Merge(other *Histogram) {
	h.mergeMu.Lock()
	defer h.mergeMu.Unlock()
	if h.scratch == nil {
		h.scratch = newHDR()
	} else {
		h.scratch.Reset()
	}
	other.mu.Lock()
	h.scratch.Merge(other.h)
	other.mu.Unlock()

	h.mu.Lock()
	h.h.Merge(h.scratch)
	h.mu.Unlock()
}

// Snapshot returns a deep copy of the counts in hdrhistogram's Snapshot form
// (Import-able; values in microseconds). Its Counts slice has one int64 per
// HDR bucket (about 23.5 k), so prefer Encode for the wire.
func (h *Histogram) Snapshot() *hdrhistogram.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.Export()
}

// HistogramFromSnapshot rebuilds a Histogram from a Snapshot taken by
// Snapshot (or hdrhistogram.Histogram.Export with the same configuration).
// The snapshot must not be used afterwards.
func HistogramFromSnapshot(s *hdrhistogram.Snapshot) (*Histogram, error) {
	if s == nil {
		return nil, errors.New("metrics: nil histogram snapshot")
	}
	if s.LowestTrackableValue != histLowestUS || s.HighestTrackableValue != histHighestUS || s.SignificantFigures != histSigFigs {
		return nil, fmt.Errorf("metrics: histogram snapshot has range %d..%d/%d digits, want %d..%d/%d",
			s.LowestTrackableValue, s.HighestTrackableValue, s.SignificantFigures, histLowestUS, histHighestUS, histSigFigs)
	}
	if want := len(newHDR().Export().Counts); len(s.Counts) != want {
		return nil, fmt.Errorf("metrics: histogram snapshot has %d counts, want %d", len(s.Counts), want)
	}
	return &Histogram{h: hdrhistogram.Import(s)}, nil
}

// Encode returns the compact HdrHistogram V2 compressed, base64 encoding of
// the histogram (typically well under a few KiB), suitable for the wire and
// for other HdrHistogram implementations.
func (h *Histogram) Encode() ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := h.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("metrics: encode histogram: %w", err)
	}
	return b, nil
}

// DecodeHistogram parses the output of Encode. Malformed input yields an
// error, never a panic. A histogram encoded with another range or precision
// is merged into one with this package's configuration (values outside the
// range are dropped and reported as an error).
func DecodeHistogram(b []byte) (h *Histogram, err error) {
	defer func() {
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("metrics: decode histogram: malformed input (%v)", p)
		}
	}()
	if len(b) < 12 { // base64 of the 8-byte header
		return nil, errors.New("metrics: decode histogram: input too short")
	}
	dec, err := hdrhistogram.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("metrics: decode histogram: %w", err)
	}
	out := NewHistogram()
	if dropped := out.h.Merge(dec); dropped > 0 {
		return nil, fmt.Errorf("metrics: decode histogram: %d values outside 0..%d µs", dropped, histHighestUS)
	}
	return out, nil
}

// ValueAtQuantile returns the smallest recorded value (to the histogram's
// precision) that at least the fraction q of all values are less than or
// equal to; q is in 0..1 (0.99 = p99), unlike hdrhistogram's 0..100. It is 0
// when the histogram is empty.
func (h *Histogram) ValueAtQuantile(q float64) time.Duration {
	h.mu.Lock()
	v := h.h.ValueAtQuantile(q * 100)
	h.mu.Unlock()
	return time.Duration(v) * time.Microsecond
}

// Count returns the number of recorded values.
func (h *Histogram) Count() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.h.TotalCount()
}

// Max returns the largest recorded value (the highest value equivalent to it
// at the histogram's precision), or 0 when empty.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.h.Max()) * time.Microsecond
}

// Mean returns the approximate mean of the recorded values, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(h.h.Mean() * float64(time.Microsecond))
}

// Reset removes all recorded values.
func (h *Histogram) Reset() {
	h.mu.Lock()
	h.h.Reset()
	h.mu.Unlock()
}
