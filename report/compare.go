package report

import (
	"fmt"
	"math"
)

// Better says which direction of a metric is an improvement.
type Better int

// Directions of improvement.
const (
	Neutral Better = iota
	Higher
	Lower
)

// Metric is one compared quantity.
type Metric struct {
	Name   string
	Unit   string
	Better Better
	Value  func(*Report) (float64, bool)
}

// Cell is one run's value of a metric and its change against the baseline (the first run).
type Cell struct {
	Value    float64
	OK       bool    // the run has this metric
	Delta    float64 // Value - baseline
	DeltaPct float64 // 100 * Delta / baseline; NaN when the baseline is 0 or missing
	HasDelta bool
	Improved bool // the change goes the metric's better way
	Worse    bool
}

// Line is one metric across the runs.
type Line struct {
	Metric Metric
	Cells  []Cell
}

// Comparison is the runs side by side.
type Comparison struct {
	Runs  []*Report
	Lines []Line
	Notes []string // per-run texts that are not numbers (the capacity verdicts)
}

func ptr(p *float64) (float64, bool) {
	if p == nil || math.IsNaN(*p) {
		return 0, false
	}
	return *p, true
}

func quantile(metric string, pick func(Quantiles) *float64) func(*Report) (float64, bool) {
	return func(r *Report) (float64, bool) {
		q, ok := r.LLM.Metrics[metric]
		if !ok || q.Count == 0 {
			return 0, false
		}
		return ptr(pick(q))
	}
}

func p50(q Quantiles) *float64 { return q.P50 }
func p95(q Quantiles) *float64 { return q.P95 }
func p99(q Quantiles) *float64 { return q.P99 }

// Metrics are the compared metrics, in display order.
func Metrics() []Metric {
	ms := []Metric{
		{"streams", "", Neutral, func(r *Report) (float64, bool) { return float64(r.LLM.Streams), true }},
		{"failed streams", "", Lower, func(r *Report) (float64, bool) { return float64(r.LLM.Failed), true }},
		{"good fraction", "%", Higher, func(r *Report) (float64, bool) {
			v, ok := ptr(r.LLM.GoodFraction)
			return v * 100, ok
		}},
		{"streams/s (run)", "/s", Higher, func(r *Report) (float64, bool) { return ptr(r.LLM.StreamsPerS.Total) }},
		{"goodput/s (run)", "/s", Higher, func(r *Report) (float64, bool) { return ptr(r.LLM.GoodputPerS.Total) }},
		{"output tokens/s (run)", "/s", Higher, func(r *Report) (float64, bool) { return ptr(r.LLM.TokensPerS.Total) }},
	}
	for _, m := range []struct{ key, label string }{{"ttft", "TTFT"}, {"ttfe", "TTFE (first event)"}, {"tpot", "TPOT"}, {"e2e", "E2E"}, {"itl", "inter-chunk"}} {
		for _, q := range []struct {
			name string
			f    func(Quantiles) *float64
		}{{"p50", p50}, {"p95", p95}, {"p99", p99}} {
			ms = append(ms, Metric{m.label + " " + q.name, "ms", Lower, quantile(m.key, q.f)})
		}
	}
	ms = append(ms,
		Metric{"requests (Aggregated)", "", Neutral, func(r *Report) (float64, bool) {
			if r.Locust == nil || len(r.Locust.Rows) == 0 {
				return 0, false
			}
			return float64(r.Locust.Rows[len(r.Locust.Rows)-1].Requests), true
		}},
		Metric{"request failures", "", Lower, func(r *Report) (float64, bool) {
			if r.Locust == nil || len(r.Locust.Rows) == 0 {
				return 0, false
			}
			return float64(r.Locust.Rows[len(r.Locust.Rows)-1].Failures), true
		}},
		Metric{"capacity: max sustainable users", "", Higher, capacity(func(c *Result) *float64 { return c.MaxUsers })},
		Metric{"capacity: streams/s at max", "/s", Higher, capacity(func(c *Result) *float64 { return c.StreamsPerS })},
		Metric{"capacity: TTFT p95 at max", "ms", Lower, capacity(func(c *Result) *float64 { return c.TTFTp95ms })},
		Metric{"capacity: peak streams/s", "/s", Higher, capacity(func(c *Result) *float64 { return c.CapacityStreams })},
	)
	return ms
}

func capacity(pick func(*Result) *float64) func(*Report) (float64, bool) {
	return func(r *Report) (float64, bool) {
		if r.Capacity == nil || r.Capacity.Result == nil {
			return 0, false
		}
		return ptr(pick(r.Capacity.Result))
	}
}

// Compare puts runs side by side; the first run is the baseline. Metrics no run has are left out.
func Compare(runs []*Report) (*Comparison, error) {
	if len(runs) < 2 {
		return nil, fmt.Errorf("compare needs at least two reports, got %d", len(runs))
	}
	c := &Comparison{Runs: runs}
	for _, m := range append(Metrics(), classMetrics(runs)...) {
		line := Line{Metric: m}
		any := false
		for i, r := range runs {
			v, ok := m.Value(r)
			cell := Cell{Value: v, OK: ok, DeltaPct: math.NaN()}
			if ok {
				any = true
			}
			if b := line.cellOf(0); i > 0 && ok && b.OK {
				cell.HasDelta = true
				cell.Delta = v - b.Value
				if b.Value != 0 {
					cell.DeltaPct = 100 * cell.Delta / math.Abs(b.Value)
				}
				cell.Improved = (m.Better == Higher && cell.Delta > 0) || (m.Better == Lower && cell.Delta < 0)
				cell.Worse = (m.Better == Higher && cell.Delta < 0) || (m.Better == Lower && cell.Delta > 0)
			}
			line.Cells = append(line.Cells, cell)
		}
		if any {
			c.Lines = append(c.Lines, line)
		}
	}
	for _, r := range runs {
		note := ""
		if r.Capacity != nil && r.Capacity.Result != nil {
			note = r.Capacity.Result.Summary
		}
		c.Notes = append(c.Notes, note)
	}
	return c, nil
}

func (l Line) cellOf(i int) Cell {
	if i < len(l.Cells) {
		return l.Cells[i]
	}
	return Cell{}
}

// classMetrics are the per-class capacity rows of runs made with --capacity-per-class.
func classMetrics(runs []*Report) []Metric {
	var names []string
	seen := map[string]bool{}
	for _, r := range runs {
		if r.Capacity == nil || r.Capacity.Result == nil {
			continue
		}
		for _, pc := range r.Capacity.Result.PerClass {
			if pc.UserClass != "" && !seen[pc.UserClass] {
				seen[pc.UserClass] = true
				names = append(names, pc.UserClass)
			}
		}
	}
	var out []Metric
	for _, name := range names {
		pick := func(f func(*Result) *float64) func(*Report) (float64, bool) {
			return func(r *Report) (float64, bool) {
				if r.Capacity == nil || r.Capacity.Result == nil {
					return 0, false
				}
				for i := range r.Capacity.Result.PerClass {
					if pc := &r.Capacity.Result.PerClass[i]; pc.UserClass == name {
						return ptr(f(pc))
					}
				}
				return 0, false
			}
		}
		out = append(out,
			Metric{"capacity " + name + ": max sustainable users", "", Higher, pick(func(c *Result) *float64 { return c.MaxUsers })},
			Metric{"capacity " + name + ": streams/s at max", "/s", Higher, pick(func(c *Result) *float64 { return c.StreamsPerS })},
			Metric{"capacity " + name + ": peak streams/s", "/s", Higher, pick(func(c *Result) *float64 { return c.CapacityStreams })},
		)
	}
	return out
}
