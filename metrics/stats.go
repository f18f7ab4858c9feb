package metrics

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Stats is the Locust-compatible stats model for one process. Record is safe
// for concurrent use by thousands of goroutines: samples go to one of a small
// power-of-two number of mutex-guarded shards chosen by a per-thread random
// number (math/rand/v2 top-level functions use lock-free per-M state), so
// recorders rarely meet on the same lock or cache line. Each sample is applied
// to its shard's entry, the shard's total and (for failures) the shard's error
// table under one lock, so a Report is always internally consistent: Total
// equals the sum of Entries.
//
// Drain returns the delta since the previous Drain and starts a new interval.
// A Record running concurrently with Drain lands wholly in the interval being
// drained or wholly in the next one, never in both and never in neither.
//
// Steady state is allocation-free per Record: per-shard accumulators and their
// maps are kept and cleared (capacity retained) by Drain; accumulators that
// stayed idle for a whole interval are dropped so memory follows the active
// names.
type Stats struct {
	shards []statsShard
	mask   uint32

	drainMu sync.Mutex // serialises Drain calls; guards start
	start   float64    // unix seconds of the current interval's start
}

type entryKey struct{ name, method string }

type errorKey struct{ method, name, failure string }

type statsShard struct {
	mu      sync.Mutex
	entries map[entryKey]*acc
	errors  map[errorKey]*errAcc
	total   acc
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// acc accumulates one StatsEntry inside one shard.
type acc struct {
	numReq, numFail, numNone int64
	totalRT, maxRT, minRT    float64
	hasMin                   bool
	totalCL                  int64
	last                     float64
	hasLast                  bool
	rt, rps, fps             map[int64]int64
}

type errAcc struct {
	key         string // ErrorKey, computed once at the first Drain that sees it
	occurrences int64
	first, last float64
}

// NewStats returns an empty Stats whose first interval starts now.
func NewStats() *Stats {
	n := 4
	for n < 4*runtime.GOMAXPROCS(0) && n < 64 {
		n *= 2
	}
	return newStats(n)
}

// newStats returns a Stats with n shards (a power of two).
func newStats(n int) *Stats {
	s := &Stats{
		shards: make([]statsShard, n),
		mask:   uint32(n - 1),
		start:  unixSeconds(time.Now()),
	}
	for i := range s.shards {
		s.shards[i].entries = make(map[entryKey]*acc)
		s.shards[i].errors = make(map[errorKey]*errAcc)
		s.shards[i].total.init()
	}
	return s
}

func (a *acc) init() {
	a.rt = make(map[int64]int64)
	a.rps = make(map[int64]int64)
	a.fps = make(map[int64]int64)
}

// Record adds one sample to the current interval, like Locust's
// log_request plus, for a failure, log_error.
func (s *Stats) Record(x Sample) {
	at := x.At
	if at.IsZero() {
		at = time.Now()
	}
	ts := unixSeconds(at)
	sec := at.Unix()
	var ms float64
	var bucket int64
	if !x.NoTime {
		ms = durationMS(x.Duration)
		bucket = BucketMS(ms)
	}
	failed := x.Failure != ""

	sh := &s.shards[rand.Uint32()&s.mask]
	sh.mu.Lock()
	e := sh.entries[entryKey{x.Name, x.Method}]
	if e == nil {
		e = new(acc)
		e.init()
		sh.entries[entryKey{x.Name, x.Method}] = e
	}
	e.add(&x, ms, bucket, sec, ts, failed)
	sh.total.add(&x, ms, bucket, sec, ts, failed)
	if failed {
		k := errorKey{x.Method, x.Name, x.Failure}
		ea := sh.errors[k]
		if ea == nil {
			ea = new(errAcc)
			sh.errors[k] = ea
		}
		if ea.occurrences == 0 || ts < ea.first {
			ea.first = ts
		}
		ea.occurrences++
		ea.last = max(ea.last, ts)
	}
	sh.mu.Unlock()
}

func (a *acc) add(x *Sample, ms float64, bucket, sec int64, ts float64, failed bool) {
	a.numReq++
	a.rps[sec]++
	if !a.hasLast || ts > a.last {
		a.last, a.hasLast = ts, true
	}
	if x.NoTime {
		a.numNone++
	} else {
		a.totalRT += ms
		if !a.hasMin || ms < a.minRT {
			a.minRT, a.hasMin = ms, true
		}
		a.maxRT = max(a.maxRT, ms)
		a.rt[bucket]++
	}
	a.totalCL += x.Size
	if failed {
		a.numFail++
		a.fps[sec]++
	}
}

// mergeInto adds a to the report entry e (allocating e's maps on first use).
func (a *acc) mergeInto(e *Entry) {
	if a.hasLast && (!e.HasLast || a.last > e.LastRequestTimestamp) {
		e.LastRequestTimestamp, e.HasLast = a.last, true
	}
	e.NumRequests += a.numReq
	e.NumFailures += a.numFail
	e.NumNoneRequests += a.numNone
	e.TotalResponseTime += a.totalRT
	e.MaxResponseTime = max(e.MaxResponseTime, a.maxRT)
	if a.hasMin && (!e.HasMin || a.minRT < e.MinResponseTime) {
		e.MinResponseTime, e.HasMin = a.minRT, true
	}
	e.TotalContentLength += a.totalCL
	e.ResponseTimes = addCounts(e.ResponseTimes, a.rt)
	e.NumReqsPerSec = addCounts(e.NumReqsPerSec, a.rps)
	e.NumFailPerSec = addCounts(e.NumFailPerSec, a.fps)
}

func (a *acc) reset() {
	rt, rps, fps := a.rt, a.rps, a.fps
	clear(rt)
	clear(rps)
	clear(fps)
	*a = acc{rt: rt, rps: rps, fps: fps}
}

// Drain returns everything recorded since the previous Drain (or since
// NewStats) and starts a new interval at now. Every entry's and the total's
// StartTime is the start of the drained interval. A zero now means time.Now().
// Concurrent Drain calls are serialised.
func (s *Stats) Drain(now time.Time) Report {
	if now.IsZero() {
		now = time.Now()
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	start := s.start
	s.start = unixSeconds(now)

	total := Entry{Name: "Aggregated", StartTime: start}
	entries := make(map[entryKey]*Entry)
	type keyedError struct {
		key string
		ErrorEntry
	}
	errs := make(map[errorKey]*keyedError)
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.total.mergeInto(&total)
		sh.total.reset()
		for k, a := range sh.entries {
			if a.numReq == 0 && a.numFail == 0 {
				delete(sh.entries, k) // idle for a whole interval
				continue
			}
			e := entries[k]
			if e == nil {
				e = &Entry{Name: k.name, Method: k.method, StartTime: start}
				entries[k] = e
			}
			a.mergeInto(e)
			a.reset()
		}
		for k, ea := range sh.errors {
			if ea.occurrences == 0 {
				delete(sh.errors, k)
				continue
			}
			if ea.key == "" {
				ea.key = ErrorKey(k.method, k.name, k.failure)
			}
			e := errs[k]
			if e == nil {
				e = &keyedError{key: ea.key, ErrorEntry: ErrorEntry{
					Name: k.name, Method: k.method, Error: ParseError(k.failure),
					FirstSeen: ea.first, LastSeen: ea.last,
				}}
				errs[k] = e
			}
			e.Occurrences += ea.occurrences
			e.FirstSeen = min(e.FirstSeen, ea.first)
			e.LastSeen = max(e.LastSeen, ea.last)
			ea.occurrences, ea.first, ea.last = 0, 0, 0
		}
		sh.mu.Unlock()
	}
	fillEmptyMaps(&total)

	r := Report{Total: total, Entries: make([]Entry, 0, len(entries)), Errors: make(map[string]ErrorEntry, len(errs))}
	for _, e := range entries {
		fillEmptyMaps(e)
		r.Entries = append(r.Entries, *e)
	}
	slices.SortFunc(r.Entries, compareEntries)
	for _, e := range errs {
		// Texts that differ only in a masked "object at 0x…" address share a
		// key, as they do in Python.
		if prev, ok := r.Errors[e.key]; ok {
			e.Occurrences += prev.Occurrences
			e.FirstSeen = min(e.FirstSeen, prev.FirstSeen)
			e.LastSeen = max(e.LastSeen, prev.LastSeen)
		}
		r.Errors[e.key] = e.ErrorEntry
	}
	return r
}

// fillEmptyMaps makes sure a Report never carries nil maps (the wire wants {}).
func fillEmptyMaps(e *Entry) {
	if e.ResponseTimes == nil {
		e.ResponseTimes = map[int64]int64{}
	}
	if e.NumReqsPerSec == nil {
		e.NumReqsPerSec = map[int64]int64{}
	}
	if e.NumFailPerSec == nil {
		e.NumFailPerSec = map[int64]int64{}
	}
}
