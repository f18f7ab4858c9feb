package metrics

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// numPercentiles is how many percentiles Locust reports.
const numPercentiles = 11

// percentiles are Locust's PERCENTILES_TO_REPORT, the columns of the console
// percentile table and of the *_stats.csv percentile columns.
func percentiles() [numPercentiles]float64 {
	return [...]float64{0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0}
}

// percentileLabels are Python's get_readable_percentiles(percentiles).
func percentileLabels() [numPercentiles]string {
	return [...]string{"50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"}
}

// Console layout constants of locust/stats.py with no terminal attached.
const (
	statsTypeWidth = 8
	statsNameWidth = 80
)

// Cumulative merges Reports the way a Locust master does on "stats" messages
// (StatsEntry.extend per (name, method), the Aggregated row only from each
// Report's Total, error entries summed by key with first/last seen min/max)
// and renders the result like Locust. It is safe for concurrent use.
type Cumulative struct {
	mu       sync.Mutex
	entries  map[entryKey]*Entry
	total    Entry
	hasTotal bool
	errors   map[string]*ErrorEntry
	errOrder []string // keys in first-arrival order, like the master's dict
}

// NewCumulative returns an empty Cumulative.
func NewCumulative() *Cumulative {
	return &Cumulative{
		entries: make(map[entryKey]*Entry),
		errors:  make(map[string]*ErrorEntry),
		total:   Entry{Name: "Aggregated"},
	}
}

// Add merges one Report. The Report is not retained or modified.
func (c *Cumulative) Add(r Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range r.Entries {
		in := &r.Entries[i]
		k := entryKey{in.Name, in.Method}
		if e := c.entries[k]; e != nil {
			e.extend(in)
			continue
		}
		e := copyEntry(in)
		c.entries[k] = &e
	}
	// A Report's Errors is a map; new keys are appended in order of first
	// occurrence (then key), which is the order a Python worker's dict has.
	before := len(c.errOrder)
	for k, in := range r.Errors {
		e := c.errors[k]
		if e == nil {
			cp := in
			c.errors[k] = &cp
			c.errOrder = append(c.errOrder, k)
			continue
		}
		e.Occurrences += in.Occurrences
		// The master reads first/last seen with .get and skips falsy values.
		if in.FirstSeen != 0 {
			if e.FirstSeen == 0 {
				e.FirstSeen = in.FirstSeen
			} else {
				e.FirstSeen = min(e.FirstSeen, in.FirstSeen)
			}
		}
		if in.LastSeen != 0 {
			if e.LastSeen == 0 {
				e.LastSeen = in.LastSeen
			} else {
				e.LastSeen = max(e.LastSeen, in.LastSeen)
			}
		}
	}
	added := c.errOrder[before:]
	slices.SortFunc(added, func(a, b string) int {
		return cmp.Or(cmp.Compare(c.errors[a].FirstSeen, c.errors[b].FirstSeen), cmp.Compare(a, b))
	})
	if !c.hasTotal {
		c.total = copyEntry(&r.Total)
		c.total.Name, c.total.Method = "Aggregated", ""
		c.hasTotal = true
	} else {
		c.total.extend(&r.Total)
	}
}

func copyEntry(e *Entry) Entry {
	cp := *e
	cp.ResponseTimes = maps.Clone(e.ResponseTimes)
	cp.NumReqsPerSec = maps.Clone(e.NumReqsPerSec)
	cp.NumFailPerSec = maps.Clone(e.NumFailPerSec)
	return cp
}

// Row is one line of Locust's statistics for a (method, name) pair or the
// Aggregated total, with the derived values Locust 2.46 computes.
type Row struct {
	Method, Name                              string
	NumRequests, NumFailures, NumNoneRequests int64
	FailRatio                                 float64 // failures/requests; 1 if failures without requests
	AvgResponseTime                           float64 // ms, over timed requests
	MinResponseTime                           float64 // ms; 0 when HasMin is false
	HasMin                                    bool
	MaxResponseTime                           float64 // ms
	// MedianResponseTime is the 50th percentile from the buckets, clamped to
	// [Min, Max] as Locust does ("Med" column).
	MedianResponseTime float64
	TotalContentLength int64
	AvgContentLength   float64
	// CurrentRPS and CurrentFailPerSec average the per-second counts over the
	// seconds [last-12, last-2) where last is the Aggregated last request
	// timestamp (not before the Aggregated start), like StatsEntry.current_rps.
	CurrentRPS, CurrentFailPerSec float64
	// TotalRPS and TotalFailPerSec divide the counts by the Aggregated
	// (last request − start) span, like StatsEntry.total_rps.
	TotalRPS, TotalFailPerSec float64

	buckets          []bucketCount // ascending by bucket
	medianFromBucket bool          // Python's median is an int bucket, not a clamped float
}

type bucketCount struct{ ms, n int64 }

// Percentile returns the response time (a BucketMS key, ms) within which the
// fraction q (0..1) of the timed requests finished, computed from the
// buckets exactly like Locust's calculate_response_time_percentile; 0 when
// nothing was timed.
func (r *Row) Percentile(q float64) int64 {
	return percentileOf(r.buckets, r.NumRequests-r.NumNoneRequests, q)
}

func percentileOf(buckets []bucketCount, n int64, q float64) int64 {
	want := int64(float64(n) * q)
	var processed int64
	for i := len(buckets) - 1; i >= 0; i-- {
		processed += buckets[i].n
		if n-processed <= want {
			return buckets[i].ms
		}
	}
	return 0
}

// Rows returns one Row per (method, name), sorted by (Name, Method), followed
// by the Aggregated row (Name "Aggregated", Method "").
func (c *Cumulative) Rows() []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rowsLocked()
}

func (c *Cumulative) rowsLocked() []Row {
	keys := slices.SortedFunc(maps.Keys(c.entries), func(a, b entryKey) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.method, b.method))
	})
	rows := make([]Row, 0, len(keys)+1)
	for _, k := range keys {
		rows = append(rows, c.row(c.entries[k]))
	}
	return append(rows, c.row(&c.total))
}

func (c *Cumulative) row(e *Entry) Row {
	r := Row{
		Method: e.Method, Name: e.Name,
		NumRequests: e.NumRequests, NumFailures: e.NumFailures, NumNoneRequests: e.NumNoneRequests,
		AvgResponseTime:    e.AvgResponseTime(),
		HasMin:             e.HasMin,
		MaxResponseTime:    e.MaxResponseTime,
		TotalContentLength: e.TotalContentLength,
	}
	if e.HasMin {
		r.MinResponseTime = e.MinResponseTime
	}
	switch {
	case e.NumRequests > 0:
		r.FailRatio = float64(e.NumFailures) / float64(e.NumRequests)
		r.AvgContentLength = float64(e.TotalContentLength) / float64(e.NumRequests)
	case e.NumFailures > 0:
		r.FailRatio = 1
	}
	r.buckets = make([]bucketCount, 0, len(e.ResponseTimes))
	for ms, n := range e.ResponseTimes {
		r.buckets = append(r.buckets, bucketCount{ms, n})
	}
	slices.SortFunc(r.buckets, func(a, b bucketCount) int { return cmp.Compare(a.ms, b.ms) })

	if len(r.buckets) > 0 {
		med := float64(r.Percentile(0.5))
		r.medianFromBucket = true
		switch {
		case med > e.MaxResponseTime:
			med, r.medianFromBucket = e.MaxResponseTime, false
		case e.HasMin && med < e.MinResponseTime:
			med, r.medianFromBucket = e.MinResponseTime, false
		}
		r.MedianResponseTime = med
	}

	if c.total.HasLast {
		last := int64(c.total.LastRequestTimestamp)
		from := max(last-12, int64(c.total.StartTime))
		r.CurrentRPS = windowAvg(e.NumReqsPerSec, from, last-2)
		r.CurrentFailPerSec = windowAvg(e.NumFailPerSec, from, last-2)
		if span := c.total.LastRequestTimestamp - c.total.StartTime; c.total.StartTime != 0 && c.total.LastRequestTimestamp != 0 && span != 0 {
			r.TotalRPS = float64(e.NumRequests) / span
			r.TotalFailPerSec = float64(e.NumFailures) / span
		}
	}
	return r
}

// windowAvg is Python's avg([m.get(t, 0) for t in range(from, to)]).
func windowAvg(m map[int64]int64, from, to int64) float64 {
	var sum float64
	for t := from; t < to; t++ {
		sum += float64(m[t])
	}
	return sum / float64(max(to-from, 1))
}

// Errors returns the merged error entries in first-arrival order (the order
// of Locust's console error report).
func (c *Cumulative) Errors() []ErrorEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ErrorEntry, 0, len(c.errOrder))
	for _, k := range c.errOrder {
		out = append(out, *c.errors[k])
	}
	return out
}

// WriteTable writes Locust's end-of-run console summary: the statistics
// table with whole-run rates (print_stats(current=False)), the response time
// percentile table and, if there were failures, the error report. Layout and
// number formatting follow locust/stats.py 2.46 with no terminal attached
// (name column width 80).
func (c *Cumulative) WriteTable(w io.Writer) error {
	return c.writeTable(w, false)
}

// WriteCurrentTable is WriteTable with the "current" rates (last ~10 s), like
// the periodic console output of a running Locust.
func (c *Cumulative) WriteCurrentTable(w io.Writer) error {
	return c.writeTable(w, true)
}

func (c *Cumulative) writeTable(w io.Writer, current bool) error {
	c.mu.Lock()
	rows := c.rowsLocked()
	errs := make([]ErrorEntry, 0, len(c.errOrder))
	for _, k := range c.errOrder {
		errs = append(errs, *c.errors[k])
	}
	c.mu.Unlock()

	bw := bufio.NewWriter(w)
	nameWidth := statsNameWidth - statsTypeWidth + 4
	fmt.Fprintf(bw, "%-*s %-*s %7s %12s |%7s %7s %7s%7s | %7s %11s\n", statsTypeWidth, "Type", nameWidth, "Name",
		"# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s")
	sep := strings.Repeat("-", statsTypeWidth) + "|" + strings.Repeat("-", nameWidth) + "|" + strings.Repeat("-", 7) + "|" +
		strings.Repeat("-", 13) + "|" + strings.Repeat("-", 7) + "|" + strings.Repeat("-", 7) + "|" + strings.Repeat("-", 7) + "|" +
		strings.Repeat("-", 7) + "|" + strings.Repeat("-", 8) + "|" + strings.Repeat("-", 11) + "\n"
	bw.WriteString(sep)
	for i := range rows {
		if i == len(rows)-1 {
			bw.WriteString(sep)
		}
		r := &rows[i]
		rps, fps := r.TotalRPS, r.TotalFailPerSec
		if current {
			rps, fps = r.CurrentRPS, r.CurrentFailPerSec
		}
		typ := ""
		if r.Method != "" {
			typ = r.Method + " "
		}
		fmt.Fprintf(bw, "%-*s %-*s %7d %12s |%7d %7d %7d%7d | %7.2f %11.2f\n", statsTypeWidth, typ, nameWidth, r.Name,
			r.NumRequests, fmt.Sprintf("%d(%.2f%%)", r.NumFailures, r.FailRatio*100),
			pyInt(r.AvgResponseTime), pyInt(r.MinResponseTime), pyInt(r.MaxResponseTime), pyInt(r.MedianResponseTime), rps, fps)
	}
	bw.WriteString("\n")

	bw.WriteString("Response time percentiles (approximated)\n")
	labels, qs := percentileLabels(), percentiles()
	fmt.Fprintf(bw, "%-*s %-*s %8s", statsTypeWidth, "Type", statsNameWidth, "Name", labels[0])
	for _, l := range labels[1:] {
		fmt.Fprintf(bw, " %6s", l)
	}
	fmt.Fprintf(bw, " %6s\n", "# reqs")
	psep := strings.Repeat("-", statsTypeWidth) + "|" + strings.Repeat("-", statsNameWidth) + "|" + strings.Repeat("-", 8) + "|" +
		strings.TrimSuffix(strings.Repeat("------|", len(qs)), "|") + "\n"
	bw.WriteString(psep)
	for i := range rows {
		r := &rows[i]
		if i == len(rows)-1 {
			bw.WriteString(psep)
		}
		if len(r.buckets) == 0 {
			continue
		}
		fmt.Fprintf(bw, "%-*s %-*s %8d", statsTypeWidth, r.Method, statsNameWidth, r.Name, r.Percentile(qs[0]))
		for _, q := range qs[1:] {
			fmt.Fprintf(bw, " %6d", r.Percentile(q))
		}
		fmt.Fprintf(bw, " %6d\n", r.NumRequests)
	}
	bw.WriteString("\n")

	if len(errs) > 0 {
		bw.WriteString("Error report\n")
		fmt.Fprintf(bw, "%-18s %-100s\n", "# occurrences", "Error")
		esep := strings.Repeat("-", 18) + "|" + strings.Repeat("-", 80+statsNameWidth-19) + "\n"
		bw.WriteString(esep)
		for _, e := range errs {
			fmt.Fprintf(bw, "%-18d %-100s\n", e.Occurrences, errorName(&e))
		}
		bw.WriteString(esep)
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// errorName is StatsError.to_name for a str error (2.46).
func errorName(e *ErrorEntry) string {
	text := e.Error
	if strings.HasPrefix(text, "CatchResponseError(") && len(text) > len("CatchResponseError(") {
		text = text[len("CatchResponseError(") : len(text)-1]
	}
	return e.Method + " " + e.Name + ": " + text
}

// pyInt is Python's "%d" applied to a float: int() truncation toward zero.
func pyInt(f float64) int64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int64(f)
}

// CSVStatsHeader is the header row of Locust 2.46's *_stats.csv.
func CSVStatsHeader() []string {
	h := []string{"Type", "Name", "Request Count", "Failure Count", "Median Response Time",
		"Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
		"Requests/s", "Failures/s"}
	labels := percentileLabels()
	return append(h, labels[:]...)
}

// CSVFailuresHeader is the header row of Locust 2.46's *_failures.csv.
func CSVFailuresHeader() []string {
	return []string{"Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"}
}

// WriteCSV writes the content of Locust 2.46's *_stats.csv: the header, one
// row per (method, name) sorted by (name, method), then the Aggregated row.
// Values are formatted as Python's csv module formats Locust's values
// (floats as repr(), e.g. "150.0"; "N/A" percentiles for rows without
// requests; CRLF line ends; minimal quoting).
func (c *Cumulative) WriteCSV(w io.Writer) error {
	rows := c.Rows()
	bw := bufio.NewWriter(w)
	writeCSVRow(bw, CSVStatsHeader())
	rec := make([]string, 0, 11+numPercentiles)
	for i := range rows {
		r := &rows[i]
		median := pyFloat(r.MedianResponseTime)
		if r.medianFromBucket || len(r.buckets) == 0 {
			median = strconv.FormatInt(int64(r.MedianResponseTime), 10)
		}
		avgSize := "0"
		if r.NumRequests > 0 {
			avgSize = pyFloat(r.AvgContentLength)
		}
		rec = append(rec[:0], r.Method, r.Name,
			strconv.FormatInt(r.NumRequests, 10), strconv.FormatInt(r.NumFailures, 10),
			median, pyFloat(r.AvgResponseTime), pyFloatOrZero(r.MinResponseTime), pyFloatOrZero(r.MaxResponseTime),
			avgSize, pyFloat(r.TotalRPS), pyFloat(r.TotalFailPerSec))
		for _, q := range percentiles() {
			if r.NumRequests == 0 {
				rec = append(rec, "N/A")
			} else {
				rec = append(rec, strconv.FormatInt(r.Percentile(q), 10))
			}
		}
		writeCSVRow(bw, rec)
	}
	return bw.Flush()
}

// WriteFailuresCSV writes the content of Locust 2.46's *_failures.csv: the
// header and one row per error entry, sorted by error key like Locust's
// sort_stats, with First/Last Seen as UTC "2006-01-02T15:04:05Z" (empty when
// unknown).
func (c *Cumulative) WriteFailuresCSV(w io.Writer) error {
	c.mu.Lock()
	keys := slices.Sorted(maps.Keys(c.errors))
	errs := make([]ErrorEntry, len(keys))
	for i, k := range keys {
		errs[i] = *c.errors[k]
	}
	c.mu.Unlock()

	bw := bufio.NewWriter(w)
	writeCSVRow(bw, CSVFailuresHeader())
	for _, e := range errs {
		writeCSVRow(bw, []string{e.Method, e.Name, e.Error, strconv.FormatInt(e.Occurrences, 10),
			utcStamp(e.FirstSeen), utcStamp(e.LastSeen)})
	}
	return bw.Flush()
}

// utcStamp is Locust's format_utc_timestamp (whole seconds), "" for unknown.
func utcStamp(ts float64) string {
	if ts == 0 {
		return ""
	}
	return time.Unix(int64(ts), 0).UTC().Format("2006-01-02T15:04:05Z")
}

// writeCSVRow writes one row like Python's csv.writer with the default
// dialect: fields quoted only when they contain ',', '"', '\r' or '\n',
// quotes doubled, "\r\n" line end. Write errors surface from Flush.
func writeCSVRow(w *bufio.Writer, rec []string) {
	for i, f := range rec {
		if i > 0 {
			w.WriteByte(',')
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			w.WriteString(f)
			continue
		}
		w.WriteByte('"')
		w.WriteString(strings.ReplaceAll(f, `"`, `""`))
		w.WriteByte('"')
	}
	w.WriteString("\r\n")
}

// pyFloatOrZero formats Locust's "x or 0" / int-initialised max: an exact 0
// prints as the int "0", anything else as a float repr.
func pyFloatOrZero(f float64) string {
	if f == 0 {
		return "0"
	}
	return pyFloat(f)
}

// pyFloat is Python's repr() of a float: shortest round-trip digits, fixed
// notation with at least one decimal ("150.0") when the decimal exponent is in
// [-4, 16), scientific ("1e+16", "1.5e-05") otherwise.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		out := digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, out, es, exp)
	}
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}
