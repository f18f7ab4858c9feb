package metrics

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// t0 is a fixed wall clock for tests.
func t0() time.Time { return time.Unix(1_700_000_000, 250_000_000) }

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestStatsDrain(t *testing.T) {
	t.Parallel()
	at := t0().Add(time.Second)
	sec := at.Unix()
	ts := unixSeconds(at)
	tests := []struct {
		name    string
		samples []Sample
		entries []Entry
		total   Entry
		errors  map[string]ErrorEntry
	}{
		{
			name:  "empty interval",
			total: Entry{Name: "Aggregated"},
		},
		{
			name: "one success",
			samples: []Sample{
				{Method: "POST", Name: "/v1/chat-messages", Duration: ms(147.25), Size: 10, At: at},
			},
			entries: []Entry{{
				Name: "/v1/chat-messages", Method: "POST", LastRequestTimestamp: ts, HasLast: true,
				NumRequests: 1, TotalResponseTime: 147.25, MaxResponseTime: 147.25, MinResponseTime: 147.25, HasMin: true,
				TotalContentLength: 10, ResponseTimes: map[int64]int64{150: 1}, NumReqsPerSec: map[int64]int64{sec: 1},
			}},
			total: Entry{
				Name: "Aggregated", LastRequestTimestamp: ts, HasLast: true,
				NumRequests: 1, TotalResponseTime: 147.25, MaxResponseTime: 147.25, MinResponseTime: 147.25, HasMin: true,
				TotalContentLength: 10, ResponseTimes: map[int64]int64{150: 1}, NumReqsPerSec: map[int64]int64{sec: 1},
			},
		},
		{
			name: "none request only",
			samples: []Sample{
				{Method: "SSE", Name: "Full Response", NoTime: true, Duration: time.Hour, Size: 3, At: at},
			},
			entries: []Entry{{
				Name: "Full Response", Method: "SSE", LastRequestTimestamp: ts, HasLast: true,
				NumRequests: 1, NumNoneRequests: 1, TotalContentLength: 3, NumReqsPerSec: map[int64]int64{sec: 1},
			}},
			total: Entry{
				Name: "Aggregated", LastRequestTimestamp: ts, HasLast: true,
				NumRequests: 1, NumNoneRequests: 1, TotalContentLength: 3, NumReqsPerSec: map[int64]int64{sec: 1},
			},
		},
		{
			name: "failure is timed, counted and keyed; entries sorted by name then method",
			samples: []Sample{
				{Method: "SSE", Name: "TTFB", Duration: ms(12.5), At: at},
				{Method: "POST", Name: "/v1/chat-messages", Duration: ms(3432), Failure: "HTTP 429 too_many_requests", At: at},
				{Method: "GET", Name: "/v1/chat-messages", Duration: ms(-5), At: at.Add(time.Second)},
			},
			entries: []Entry{
				{
					Name: "/v1/chat-messages", Method: "GET", LastRequestTimestamp: ts + 1, HasLast: true,
					NumRequests: 1, HasMin: true,
					ResponseTimes: map[int64]int64{0: 1}, NumReqsPerSec: map[int64]int64{sec + 1: 1},
				},
				{
					Name: "/v1/chat-messages", Method: "POST", LastRequestTimestamp: ts, HasLast: true,
					NumRequests: 1, NumFailures: 1, TotalResponseTime: 3432, MaxResponseTime: 3432, MinResponseTime: 3432, HasMin: true,
					ResponseTimes: map[int64]int64{3400: 1}, NumReqsPerSec: map[int64]int64{sec: 1}, NumFailPerSec: map[int64]int64{sec: 1},
				},
				{
					Name: "TTFB", Method: "SSE", LastRequestTimestamp: ts, HasLast: true,
					NumRequests: 1, TotalResponseTime: 12.5, MaxResponseTime: 12.5, MinResponseTime: 12.5, HasMin: true,
					ResponseTimes: map[int64]int64{12: 1}, NumReqsPerSec: map[int64]int64{sec: 1},
				},
			},
			total: Entry{
				Name: "Aggregated", LastRequestTimestamp: ts + 1, HasLast: true,
				NumRequests: 3, NumFailures: 1, TotalResponseTime: 3444.5, MaxResponseTime: 3432, MinResponseTime: 0, HasMin: true,
				ResponseTimes: map[int64]int64{0: 1, 12: 1, 3400: 1}, NumReqsPerSec: map[int64]int64{sec: 2, sec + 1: 1},
				NumFailPerSec: map[int64]int64{sec: 1},
			},
			errors: map[string]ErrorEntry{
				ErrorKey("POST", "/v1/chat-messages", "HTTP 429 too_many_requests"): {
					Name: "/v1/chat-messages", Method: "POST", Error: "HTTP 429 too_many_requests",
					Occurrences: 1, FirstSeen: ts, LastSeen: ts,
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewStats()
			for _, x := range tc.samples {
				s.Record(x)
			}
			r := s.Drain(t0().Add(3 * time.Second))
			start := r.Total.StartTime
			if start == 0 {
				t.Fatal("Total.StartTime is 0")
			}
			for i := range tc.entries {
				tc.entries[i].StartTime = start
				fillEmptyMaps(&tc.entries[i])
			}
			tc.total.StartTime = start
			fillEmptyMaps(&tc.total)
			if len(r.Entries) != len(tc.entries) {
				t.Fatalf("got %d entries, want %d: %+v", len(r.Entries), len(tc.entries), r.Entries)
			}
			for i := range tc.entries {
				assertEntry(t, r.Entries[i], tc.entries[i])
			}
			assertEntry(t, r.Total, tc.total)
			if tc.errors == nil {
				tc.errors = map[string]ErrorEntry{}
			}
			if !maps.Equal(r.Errors, tc.errors) {
				t.Errorf("errors = %+v, want %+v", r.Errors, tc.errors)
			}

			// The next interval starts at the drain time and is empty.
			r2 := s.Drain(t0().Add(6 * time.Second))
			if want := unixSeconds(t0().Add(3 * time.Second)); r2.Total.StartTime != want {
				t.Errorf("second interval StartTime = %v, want %v", r2.Total.StartTime, want)
			}
			if len(r2.Entries) != 0 || len(r2.Errors) != 0 || r2.Total.NumRequests != 0 || r2.Total.HasLast || r2.Total.HasMin {
				t.Errorf("second interval not empty: %+v", r2)
			}
		})
	}
}

func assertEntry(t *testing.T, got, want Entry) {
	t.Helper()
	const eps = 1e-9
	floatsOK := math.Abs(got.TotalResponseTime-want.TotalResponseTime) < eps &&
		math.Abs(got.MaxResponseTime-want.MaxResponseTime) < eps &&
		math.Abs(got.MinResponseTime-want.MinResponseTime) < eps
	g, w := got, want
	g.TotalResponseTime, g.MaxResponseTime, g.MinResponseTime = 0, 0, 0
	w.TotalResponseTime, w.MaxResponseTime, w.MinResponseTime = 0, 0, 0
	g.ResponseTimes, g.NumReqsPerSec, g.NumFailPerSec = nil, nil, nil
	w.ResponseTimes, w.NumReqsPerSec, w.NumFailPerSec = nil, nil, nil
	if !floatsOK || !reflect.DeepEqual(g, w) || !maps.Equal(got.ResponseTimes, want.ResponseTimes) ||
		!maps.Equal(got.NumReqsPerSec, want.NumReqsPerSec) || !maps.Equal(got.NumFailPerSec, want.NumFailPerSec) {
		t.Errorf("entry\n got %+v\nwant %+v", got, want)
	}
}

func TestStatsStartTimeNeverZero(t *testing.T) {
	t.Parallel()
	s := NewStats()
	before := unixSeconds(time.Now())
	r := s.Drain(time.Time{}) // zero now → time.Now()
	if r.Total.StartTime == 0 || r.Total.StartTime > before {
		t.Errorf("first StartTime = %v, want creation time ≤ %v", r.Total.StartTime, before)
	}
	r = s.Drain(time.Time{})
	if r.Total.StartTime < before {
		t.Errorf("second StartTime = %v, want ≥ %v", r.Total.StartTime, before)
	}
	s.Record(Sample{Name: "x", Duration: time.Millisecond}) // zero At → now
	r = s.Drain(time.Time{})
	if len(r.Entries) != 1 || r.Entries[0].StartTime == 0 || !r.Entries[0].HasLast || r.Entries[0].LastRequestTimestamp < before {
		t.Errorf("entry = %+v", r.Entries)
	}
}

// TestStatsConcurrentDrainConservation records from many goroutines while
// another goroutine drains repeatedly, then checks that the sum of all Reports
// equals what was recorded (nothing lost, nothing counted twice) and that
// every Report is internally consistent (Total = sum of Entries).
func TestStatsConcurrentDrainConservation(t *testing.T) {
	t.Parallel()
	const (
		workers   = 64
		perWorker = 2000
	)
	names := []string{"/v1/chat-messages", "TTFB", "Full Response", "/v1/datasets/[id]/retrieve"}
	failures := []string{"", "", "", "HTTP 429 too_many_requests", "connect: connection refused"}

	s := NewStats()
	sum := NewCumulative()
	var reports []Report
	var stop atomic.Bool
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for i := 0; !stop.Load(); i++ {
			r := s.Drain(t0().Add(time.Duration(i) * time.Millisecond))
			reports = append(reports, r)
		}
	}()

	var wg sync.WaitGroup
	want := NewStats() // the same samples recorded sequentially into one interval
	var wantMu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				n := w*perWorker + i
				x := Sample{
					Method:   []string{"POST", "SSE"}[n%2],
					Name:     names[n%len(names)],
					Duration: time.Duration(n%5000) * 137 * time.Microsecond,
					NoTime:   n%11 == 0,
					Size:     int64(n % 100),
					Failure:  failures[n%len(failures)],
					At:       t0().Add(time.Duration(n%7) * time.Second),
				}
				s.Record(x)
				wantMu.Lock()
				want.Record(x)
				wantMu.Unlock()
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	<-drained
	reports = append(reports, s.Drain(t0().Add(time.Hour)))
	if len(reports) < 2 {
		t.Logf("only %d drains happened", len(reports))
	}

	var nonEmpty int
	for _, r := range reports {
		checkConsistent(t, r)
		if r.Total.NumRequests > 0 {
			nonEmpty++
		}
		sum.Add(r)
	}
	t.Logf("%d drains, %d non-empty", len(reports), nonEmpty)
	exp := NewCumulative()
	exp.Add(want.Drain(t0().Add(time.Hour)))

	got, wantRows := sum.Rows(), exp.Rows()
	if len(got) != len(wantRows) {
		t.Fatalf("rows: got %d, want %d", len(got), len(wantRows))
	}
	for i := range got {
		g, w := got[i], wantRows[i]
		if g.Name != w.Name || g.Method != w.Method || g.NumRequests != w.NumRequests || g.NumFailures != w.NumFailures ||
			g.NumNoneRequests != w.NumNoneRequests || g.TotalContentLength != w.TotalContentLength ||
			g.MaxResponseTime != w.MaxResponseTime || g.MinResponseTime != w.MinResponseTime ||
			math.Abs(g.AvgResponseTime-w.AvgResponseTime) > 1e-6 {
			t.Errorf("row %d\n got %+v\nwant %+v", i, g, w)
		}
		for _, q := range percentiles() {
			if g.Percentile(q) != w.Percentile(q) {
				t.Errorf("row %s %s: p%v = %d, want %d", g.Method, g.Name, q, g.Percentile(q), w.Percentile(q))
			}
		}
	}
	ge, we := sum.entriesCopy(), exp.entriesCopy()
	for k, w := range we {
		g := ge[k]
		if !maps.Equal(g.ResponseTimes, w.ResponseTimes) || !maps.Equal(g.NumReqsPerSec, w.NumReqsPerSec) ||
			!maps.Equal(g.NumFailPerSec, w.NumFailPerSec) {
			t.Errorf("%v: dicts differ", k)
		}
	}
	gErr, wErr := errorCounts(sum.Errors()), errorCounts(exp.Errors())
	if !maps.Equal(gErr, wErr) {
		t.Errorf("errors = %v, want %v", gErr, wErr)
	}
	if total := sum.Rows()[len(got)-1].NumRequests; total != workers*perWorker {
		t.Errorf("total requests = %d, want %d", total, workers*perWorker)
	}
}

func errorCounts(es []ErrorEntry) map[string]int64 {
	m := map[string]int64{}
	for _, e := range es {
		m[e.Method+" "+e.Name+" "+e.Error] += e.Occurrences
	}
	return m
}

// entriesCopy is a test helper exposing the merged entries.
func (c *Cumulative) entriesCopy() map[entryKey]Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[entryKey]Entry{}
	for k, e := range c.entries {
		out[k] = copyEntry(e)
	}
	out[entryKey{"Aggregated", ""}] = copyEntry(&c.total)
	return out
}

// checkConsistent asserts that Total is the sum of Entries and errors sum to
// the failures.
func checkConsistent(t *testing.T, r Report) {
	t.Helper()
	var sum Entry
	for i := range r.Entries {
		e := &r.Entries[i]
		if e.NumRequests == 0 && e.NumFailures == 0 {
			t.Errorf("empty entry %s %s reported", e.Method, e.Name)
		}
		if e.StartTime != r.Total.StartTime || e.StartTime == 0 {
			t.Errorf("entry StartTime %v, total %v", e.StartTime, r.Total.StartTime)
		}
		sum.extend(e)
	}
	tot := r.Total
	if sum.NumRequests != tot.NumRequests || sum.NumFailures != tot.NumFailures || sum.NumNoneRequests != tot.NumNoneRequests ||
		sum.TotalContentLength != tot.TotalContentLength || sum.MaxResponseTime != tot.MaxResponseTime ||
		sum.HasMin != tot.HasMin || sum.MinResponseTime != tot.MinResponseTime || sum.HasLast != tot.HasLast ||
		sum.LastRequestTimestamp != tot.LastRequestTimestamp ||
		!maps.Equal(nonNil(sum.ResponseTimes), tot.ResponseTimes) || !maps.Equal(nonNil(sum.NumReqsPerSec), tot.NumReqsPerSec) ||
		!maps.Equal(nonNil(sum.NumFailPerSec), tot.NumFailPerSec) {
		t.Errorf("total is not the sum of entries:\nsum   %+v\ntotal %+v", sum, tot)
	}
	var occ int64
	for k, e := range r.Errors {
		if k != ErrorKey(e.Method, e.Name, e.Error) {
			t.Errorf("error key %s does not match %+v", k, e)
		}
		occ += e.Occurrences
	}
	if occ != tot.NumFailures {
		t.Errorf("error occurrences %d != failures %d", occ, tot.NumFailures)
	}
}

func nonNil(m map[int64]int64) map[int64]int64 {
	if m == nil {
		return map[int64]int64{}
	}
	return m
}

func BenchmarkRecord(b *testing.B) {
	b.ReportAllocs()
	s := NewStats()
	x := Sample{Method: "POST", Name: "/v1/chat-messages", Duration: 147 * time.Millisecond, Size: 100, At: t0()}
	for b.Loop() {
		s.Record(x)
	}
}

func BenchmarkRecordFailure(b *testing.B) {
	b.ReportAllocs()
	s := NewStats()
	x := Sample{Method: "POST", Name: "/v1/chat-messages", Duration: 147 * time.Millisecond, Failure: "HTTP 502", At: t0()}
	for b.Loop() {
		s.Record(x)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	for _, bc := range []struct {
		name        string
		shards      int
		parallelism int
	}{
		{"default", 0, 1}, {"default/64xP", 0, 64}, {"1shard", 1, 1}, {"1shard/64xP", 1, 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewStats()
			if bc.shards > 0 {
				s = newStats(bc.shards)
			}
			benchRecordParallel(b, s, bc.parallelism)
		})
	}
}

func benchRecordParallel(b *testing.B, s *Stats, parallelism int) {
	names := []string{"/v1/chat-messages", "TTFB", "Full Response", "/v1/datasets/[id]/retrieve"}
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	var id atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		n := id.Add(1)
		x := Sample{Method: "SSE", Name: names[n%4], Size: 10, At: t0()}
		i := 0
		for pb.Next() {
			i++
			x.Duration = time.Duration(i%3000) * time.Millisecond
			s.Record(x)
		}
	})
}

func BenchmarkDrain10Entries(b *testing.B) {
	b.ReportAllocs()
	s := NewStats()
	for b.Loop() {
		b.StopTimer()
		for i := range 1000 {
			s.Record(Sample{
				Method: "POST", Name: fmt.Sprint("/e", i%10), Duration: time.Duration(i) * time.Millisecond,
				At: t0().Add(time.Duration(i%3) * time.Second),
			})
		}
		b.StartTimer()
		_ = s.Drain(t0())
	}
}
