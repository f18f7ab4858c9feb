package metrics

import (
	"cmp"
	"time"
)

// Sample is one measurement for a Locust row.
type Sample struct {
	Method   string        // Locust "Type" column: "POST", "SSE"
	Name     string        // "/v1/chat-messages", "TTFB", "Full Response", "/v1/datasets/[id]/retrieve"
	Duration time.Duration // response time; ignored when NoTime; negative counts as 0
	NoTime   bool          // Locust "none" request (num_none_requests): counted, not timed
	Size     int64         // content length column (bytes, or completion tokens for Full Response)
	Failure  string        // "" = success; else the stable failure text
	At       time.Time     // when it was logged (wall clock; num_reqs_per_sec key = At.Unix()); zero → time.Now()
}

// Report is the delta of one reporting interval, shaped like the "stats",
// "stats_total" and "errors" keys of a Locust worker's stats message.
type Report struct {
	// Entries holds only entries with requests or failures, sorted by
	// (Name, Method) as Python's sorted() orders (name, method) tuples.
	Entries []Entry
	// Total is the true interval total over all samples: Name "Aggregated",
	// Method "". For an empty interval HasLast and HasMin are false.
	Total Entry
	// Errors maps ErrorKey(method, name, failure) to its entry.
	Errors map[string]ErrorEntry
}

// Entry is one Locust StatsEntry for one interval (or, inside Cumulative,
// for the whole run).
type Entry struct {
	Name, Method         string
	LastRequestTimestamp float64 // unix seconds; valid only if HasLast
	HasLast              bool    // false → wire nil
	StartTime            float64 // unix seconds of interval start (never 0)

	NumRequests, NumFailures, NumNoneRequests int64

	TotalResponseTime  float64 // ms
	MaxResponseTime    float64 // ms
	MinResponseTime    float64 // ms; valid only if HasMin
	HasMin             bool    // false → wire nil
	TotalContentLength int64

	ResponseTimes map[int64]int64 // BucketMS(ms) → count
	NumReqsPerSec map[int64]int64 // unix second → count
	NumFailPerSec map[int64]int64 // unix second → count
}

// ErrorEntry is one Locust StatsError: how often a failure text occurred for
// a (method, name) pair. FirstSeen and LastSeen are unix seconds (Locust 2.44+
// "first_seen"/"last_seen"; older masters ignore them); 0 means unknown.
type ErrorEntry struct {
	Name, Method string
	Error        string // ParseError(failure): the plain text, as a 2.46 worker sends it
	Occurrences  int64
	FirstSeen    float64
	LastSeen     float64
}

// AvgResponseTime is total_response_time / (num_requests - num_none_requests),
// or 0 when nothing was timed.
func (e *Entry) AvgResponseTime() float64 {
	n := e.NumRequests - e.NumNoneRequests
	if n == 0 {
		return 0
	}
	return e.TotalResponseTime / float64(n)
}

// extend merges o into e like Locust's StatsEntry.extend: counts, sums and
// dicts are summed, max and last timestamp take the maximum, start time and
// min response time the (nil-aware) minimum.
func (e *Entry) extend(o *Entry) {
	switch {
	case e.HasLast && o.HasLast:
		e.LastRequestTimestamp = max(e.LastRequestTimestamp, o.LastRequestTimestamp)
	case o.HasLast:
		e.LastRequestTimestamp, e.HasLast = o.LastRequestTimestamp, true
	}
	e.StartTime = min(e.StartTime, o.StartTime)
	e.NumRequests += o.NumRequests
	e.NumNoneRequests += o.NumNoneRequests
	e.NumFailures += o.NumFailures
	e.TotalResponseTime += o.TotalResponseTime
	e.MaxResponseTime = max(e.MaxResponseTime, o.MaxResponseTime)
	switch {
	case e.HasMin && o.HasMin:
		e.MinResponseTime = min(e.MinResponseTime, o.MinResponseTime)
	case o.HasMin:
		e.MinResponseTime, e.HasMin = o.MinResponseTime, true
	}
	e.TotalContentLength += o.TotalContentLength
	e.ResponseTimes = addCounts(e.ResponseTimes, o.ResponseTimes)
	e.NumReqsPerSec = addCounts(e.NumReqsPerSec, o.NumReqsPerSec)
	e.NumFailPerSec = addCounts(e.NumFailPerSec, o.NumFailPerSec)
}

func addCounts(dst, src map[int64]int64) map[int64]int64 {
	if dst == nil {
		dst = make(map[int64]int64, len(src))
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func compareEntries(a, b Entry) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Method, b.Method))
}

// unixSeconds converts t to float unix seconds like Python's time.time().
func unixSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// durationMS converts d to float milliseconds, keeping fractions.
func durationMS(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return float64(d) / float64(time.Millisecond)
}
