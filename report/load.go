package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Schema is the report schema this package reads.
const Schema = 1

// Report is the part of a run report that comparisons use.
type Report struct {
	Schema        int       `json:"difyload_report"`
	Generated     float64   `json:"generated"`
	LocustVersion string    `json:"locust_version"`
	Host          string    `json:"host"`
	LLM           LLM       `json:"llm"`
	Series        Series    `json:"series"`
	Capacity      *Capacity `json:"capacity"`
	Locust        *Locust   `json:"locust"`

	// Name labels the run in comparisons (the file name without .json unless set).
	Name string `json:"-"`
}

// LLM is the master's LLM summary.
type LLM struct {
	Start        *float64             `json:"start"`
	DurationS    float64              `json:"duration_s"`
	Streams      int64                `json:"streams"`
	Failed       int64                `json:"failed"`
	Good         int64                `json:"good"`
	GoodFraction *float64             `json:"good_fraction"`
	OutputTokens int64                `json:"output_tokens"`
	TokensPerS   Rate                 `json:"output_tokens_per_s"`
	GoodputPerS  Rate                 `json:"goodput_per_s"`
	StreamsPerS  Rate                 `json:"streams_per_s"`
	Metrics      map[string]Quantiles `json:"metrics"`
	SLOms        map[string]float64   `json:"slo_ms"`
}

// Rate is a per-second rate: over the run and over the last window.
type Rate struct {
	Total   *float64 `json:"total"`
	Current *float64 `json:"current"`
}

// Quantiles of one LLM histogram, in its unit (ms, or tokens).
type Quantiles struct {
	Count int64    `json:"count"`
	P50   *float64 `json:"p50"`
	P90   *float64 `json:"p90"`
	P95   *float64 `json:"p95"`
	P99   *float64 `json:"p99"`
	Max   *float64 `json:"max"`
	Mean  *float64 `json:"mean"`
}

// Series is the report's time series.
type Series struct {
	BucketS float64 `json:"bucket_s"`
	Points  []Point `json:"points"`
}

// Point is one time bucket.
type Point struct {
	T           float64             `json:"t"`
	Users       *float64            `json:"users"`
	StreamsPerS *float64            `json:"streams_per_s"`
	GoodputPerS *float64            `json:"goodput_per_s"`
	TokensPerS  *float64            `json:"tokens_per_s"`
	TTFT        map[string]*float64 `json:"ttft"`
	TPOT        map[string]*float64 `json:"tpot"`
	E2E         map[string]*float64 `json:"e2e"`
}

// Capacity is the capacity search's steps and result.
type Capacity struct {
	Steps  []Step  `json:"steps"`
	Result *Result `json:"result"`
}

// Step is one measured step of the search.
type Step struct {
	Index        int                            `json:"index"`
	Users        int                            `json:"users"`
	Verdict      string                         `json:"verdict"`
	StreamsPerS  *float64                       `json:"streams_per_s"`
	GoodputPerS  *float64                       `json:"goodput_per_s"`
	RequestsPerS *float64                       `json:"requests_per_s"`
	FailureRate  *float64                       `json:"failure_rate"`
	LatencyMS    map[string]map[string]*float64 `json:"latency_ms"`
}

// Result is the search's verdict.
type Result struct {
	Summary         string   `json:"summary"`
	LimitedBy       string   `json:"limited_by"`
	MaxUsers        *float64 `json:"max_users"`
	StreamsPerS     *float64 `json:"streams_per_s"`
	TTFTp95ms       *float64 `json:"ttft_p95_ms"`
	CapacityStreams *float64 `json:"capacity_streams_per_s"`
	// UserClass and PerClass: with --capacity-per-class, one result per user class.
	UserClass string   `json:"user_class"`
	PerClass  []Result `json:"per_class"`
}

// Locust holds Locust's rows (the last row is Aggregated).
type Locust struct {
	Rows     []Row `json:"rows"`
	Failures []struct {
		Error       string `json:"error"`
		Occurrences int64  `json:"occurrences"`
	} `json:"failures"`
}

// Row is one Locust stats row.
type Row struct {
	Type     string   `json:"type"`
	Name     string   `json:"name"`
	Requests int64    `json:"requests"`
	Failures int64    `json:"failures"`
	RPS      *float64 `json:"rps"`
	P95ms    *float64 `json:"p95_ms"`
}

// ErrNotReport is returned for JSON that is not a difyload run report.
var ErrNotReport = errors.New("not a difyload run report (want the PATH.json of --dify-report)")

// Load reads one report file.
func Load(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Name = strings.TrimSuffix(filepath.Base(path), ".json")
	return r, nil
}

// Parse decodes a report.
func Parse(b []byte) (*Report, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReport, err)
	}
	if _, ok := probe["difyload_report"]; !ok {
		return nil, ErrNotReport
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("report schema %d, this difyload reads schema %d", r.Schema, Schema)
	}
	return &r, nil
}
