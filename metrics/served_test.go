package metrics

import (
	"testing"
	"time"
)

func TestServedTotal(t *testing.T) {
	s := newStats(4)
	at := time.Unix(1700000000, 0)
	rec := func(method, name string, d time.Duration, failure string) {
		s.Record(Sample{Method: method, Name: name, Duration: d, Failure: failure, At: at})
	}
	// Two streams served: one whole, one that broke after its headers; one refused.
	rec("POST", "/v1/chat-messages", 50*time.Millisecond, "")
	rec("SSE", "TTFB", 200*time.Millisecond, "")
	rec("SSE", "Full Response", 900*time.Millisecond, "")
	rec("POST", "/v1/chat-messages", 40*time.Millisecond, "")
	rec("SSE", "Full Response", 300*time.Millisecond, "stream error: boom")
	rec("POST", "/v1/chat-messages", 10*time.Millisecond, "HTTP 429")
	rec("POST", "/v1/datasets/[id]/retrieve", 30*time.Millisecond, "")
	r := s.Drain(at.Add(time.Second))

	got := ServedTotal(r)
	if got.NumRequests != 4 || got.NumFailures != 2 {
		t.Fatalf("served total: %d requests, %d failures; want 4 and 2", got.NumRequests, got.NumFailures)
	}
	if got.NumReqsPerSec[at.Unix()] != 4 || got.NumFailPerSec[at.Unix()] != 2 {
		t.Fatalf("per second %v / %v", got.NumReqsPerSec, got.NumFailPerSec)
	}
	if got.MaxResponseTime != 50 || got.MinResponseTime != 10 || got.TotalResponseTime != 130 {
		t.Fatalf("times from the request rows only: max %v min %v total %v", got.MaxResponseTime, got.MinResponseTime, got.TotalResponseTime)
	}
	if r.Total.NumRequests != 7 {
		t.Fatalf("the plain total still sums every row: %d", r.Total.NumRequests)
	}
	if got.Name != "Aggregated" || got.StartTime != r.Total.StartTime {
		t.Fatalf("name %q start %v", got.Name, got.StartTime)
	}
	empty := ServedTotal(Report{Total: Entry{StartTime: 5}})
	if empty.NumRequests != 0 || empty.ResponseTimes == nil || empty.HasMin || empty.StartTime != 5 {
		t.Fatalf("empty interval: %+v", empty)
	}
}
